//! Raw-kernel checks that need crate internals: unaligned pointers and strided tiles.

use super::kernels;

#[test]
fn raw_kernels_match_scalar_at_unaligned_offsets_and_strides() {
    let (n, rb, m) = (11usize, 96usize, 5usize); // K = 384 = 3 blocks
    let kp = rb * 4;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Bytes whose 2-bit lanes are all valid codes (0, 1, 2).
    let mut w = vec![0u8; n * rb + 8];
    for b in w.iter_mut() {
        *b = (0..4).map(|s| ((next() % 3) as u8) << (2 * s)).sum();
    }
    let ldx = kp + 3; // a stride that is not a multiple of any vector width
    let mut x = vec![0i8; m * ldx + 8];
    for v in x.iter_mut() {
        *v = ((next() % 255) as i8).max(-127);
    }
    let xf: Vec<f32> = x.iter().map(|&v| f32::from(v) / 7.0).collect();
    let ldo = n + 2;
    let scalar = kernels()[0];
    for wo in 0..4 {
        for xo in 0..4 {
            let mut expect = vec![0i32; m * ldo];
            let mut expect_f = vec![0f32; m * ldo];
            // SAFETY: w+wo has n rows of rb bytes, x+xo has m rows of stride ldx ≥ kp, the
            // outputs have m rows of stride ldo ≥ n; scalar runs everywhere.
            unsafe {
                (scalar.w2a8)(
                    w.as_ptr().add(wo),
                    rb,
                    n,
                    x.as_ptr().add(xo),
                    ldx,
                    m,
                    expect.as_mut_ptr(),
                    ldo,
                );
                (scalar.f32)(
                    w.as_ptr().add(wo),
                    rb,
                    n,
                    xf.as_ptr().add(xo),
                    ldx,
                    m,
                    expect_f.as_mut_ptr(),
                    ldo,
                );
            }
            for k in kernels() {
                let mut got = vec![0i32; m * ldo];
                let mut got_f = vec![0f32; m * ldo];
                // SAFETY: as above; `k` exists only for ISAs the host supports.
                unsafe {
                    (k.w2a8)(
                        w.as_ptr().add(wo),
                        rb,
                        n,
                        x.as_ptr().add(xo),
                        ldx,
                        m,
                        got.as_mut_ptr(),
                        ldo,
                    );
                    (k.f32)(
                        w.as_ptr().add(wo),
                        rb,
                        n,
                        xf.as_ptr().add(xo),
                        ldx,
                        m,
                        got_f.as_mut_ptr(),
                        ldo,
                    );
                }
                assert_eq!(got, expect, "{:?} w+{wo} x+{xo}", k.isa());
                for (a, b) in got_f.iter().zip(&expect_f) {
                    assert!(
                        (a - b).abs() <= 1e-3,
                        "{:?} f32 w+{wo} x+{xo}: {a} vs {b}",
                        k.isa()
                    );
                }
            }
        }
    }
}
