//! The packed-format readers on arbitrary bytes: never a panic, and whatever is accepted
//! serializes back to exactly the bytes read (the header and payload are fully validated, so
//! no two inputs decode to the same matrix).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ternary_kernels::{PackedI2, PackedT1};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PackedI2::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
        let t = p.to_ternary();
        assert_eq!(t.len(), p.n() * p.k());
    }
    if let Ok(p) = PackedT1::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
    }
});
