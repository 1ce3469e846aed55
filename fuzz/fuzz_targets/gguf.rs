//! The GGUF reader on arbitrary bytes: it never panics, never allocates from a size the input
//! merely claims, and whatever it accepts it writes back to a file that reads the same
//! (metadata, tensor names, dims, types and data), with the ternary payloads decoded by the
//! block codecs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ternary_kernels::format::gguf::{GgmlType, GgufFile, GgufWriter};
use ternary_kernels::format::{i2s, tq};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::parse(data) else {
        return;
    };
    let mut w = GgufWriter::new();
    for (k, v) in &file.metadata {
        w.add_metadata(k.clone(), v.clone())
            .expect("what the reader accepts, the writer accepts");
    }
    for t in &file.tensors {
        let bytes = file.data(t);
        w.add_tensor(t.name.clone(), t.ty, &t.dims, bytes)
            .expect("what the reader accepts, the writer accepts");
        let elements = t.elements() as usize;
        let mut codes = vec![0i8; elements];
        if t.ty == GgmlType::TQ2_0 || t.ty == GgmlType::TQ1_0 {
            let mut d = vec![0u16; elements / tq::QK_K];
            let decoded = if t.ty == GgmlType::TQ2_0 {
                tq::decode_tq2_0(bytes, &mut codes, &mut d)
            } else {
                tq::decode_tq1_0(bytes, &mut codes, &mut d)
            };
            if decoded.is_ok() {
                assert!(codes.iter().all(|c| (-1..=1).contains(c)));
            }
        } else if t.ty == GgmlType::I2_S && !t.dims.is_empty() {
            let k = t.dims[0] as usize;
            let n = if k == 0 { 0 } else { elements / k };
            if i2s::decode_i2_s(bytes, n, k, &mut codes).is_ok() {
                assert!(codes.iter().all(|c| (-1..=1).contains(c)));
            }
        }
    }
    let out = w.to_bytes();
    let again = GgufFile::parse(&out).expect("the writer's output reads back");
    assert_eq!(again.alignment, file.alignment);
    assert_eq!(format!("{:?}", again.metadata), format!("{:?}", file.metadata));
    assert_eq!(again.tensors.len(), file.tensors.len());
    for (a, b) in again.tensors.iter().zip(&file.tensors) {
        assert_eq!((&a.name, &a.dims, a.ty, a.size), (&b.name, &b.dims, b.ty, b.size));
        assert_eq!(again.data(a), file.data(b));
    }
});
