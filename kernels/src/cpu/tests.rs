//! Raw-kernel checks that need crate internals: unaligned pointers, strided tiles, and
//! shapes the threaded driver never hands a single kernel call (wide column blocks, many K
//! chunks), as the convolution's direct calls can.

use proptest::prelude::*;

use super::dispatch::Groups;
use super::kernels;
use crate::random::XorShift;

/// Sentinel in output padding: a kernel must write exactly its `m × n` tile.
const UNTOUCHED: u32 = 0x7FC0_DEAD;

/// A raw-kernel case: packed bytes with valid codes, int8 and f32 activations with row stride
/// `ldx`, everything offset by `off` bytes/elements from the allocation start.
struct Case {
    w: Vec<u8>,
    x: Vec<i8>,
    xf: Vec<f32>,
    rb: usize,
    n: usize,
    m: usize,
    ldx: usize,
    ldo: usize,
    off: usize,
    /// Group scales: random, zeros of both signs and subnormals among them (enough for the
    /// largest group count, 64-column groups), activation scales and group sums.
    ws: Vec<f32>,
    xs: Vec<f32>,
    xsum: Vec<i32>,
    /// The logical K the group count derives from: `4·rb − 128 < k ≤ 4·rb`.
    k: usize,
}

impl Case {
    fn new(m: usize, n: usize, blocks: usize, pad: (usize, usize), off: usize, seed: u64) -> Self {
        let rb = blocks * 32;
        let (ldx, ldo) = (rb * 4 + pad.0, n + pad.1);
        let mut rng = XorShift::new(seed);
        // Bytes whose 2-bit lanes are all valid codes (0, 1, 2).
        let w = (0..n * rb + off)
            .map(|_| {
                (0..4)
                    .map(|s| ((rng.next_u64() % 3) as u8) << (2 * s))
                    .sum()
            })
            .collect();
        let x: Vec<i8> = (0..m * ldx + off)
            .map(|_| ((rng.next_u64() % 255) as i8).max(-127))
            .collect();
        // Wide dynamic range, so a different summation order would change the rounding.
        let xf = (0..m * ldx + off)
            .map(|_| rng.next_f32() * 2f32.powi((rng.next_u64() % 40) as i32 - 20))
            .collect();
        let most = n * blocks * 2;
        let ws = (0..most)
            .map(|_| match rng.next_u64() % 8 {
                0 => -0.0,
                1 => f32::from_bits(rng.next_u64() as u32 & 0x7F_FFFF),
                _ => rng.next_f32().abs() * 4.0,
            })
            .collect();
        let xs = (0..m).map(|_| rng.next_f32().abs()).collect();
        // Any i32 will do for the kernels' arithmetic (the driver passes the true sums).
        let xsum = (0..m * blocks * 2)
            .map(|_| (rng.next_u64() % 20001) as i32 - 10000)
            .collect();
        let k = (rb * 4).saturating_sub((rng.next_u64() % 128) as usize);
        Self {
            w,
            x,
            xf,
            rb,
            n,
            m,
            ldx,
            ldo,
            off,
            ws,
            xs,
            xsum,
            k,
        }
    }

    /// Runs both raw group kernels of `k` with groups of `size` columns, like [`Case::run`].
    fn run_groups(&self, k: &super::Kernel, size: usize) -> (Vec<u32>, Vec<u32>) {
        let len = self.m * self.ldo;
        let mut o = vec![f32::from_bits(UNTOUCHED); len];
        let mut of = vec![f32::from_bits(UNTOUCHED); len];
        let count = self.k.div_ceil(size);
        let gr = Groups {
            size,
            count,
            ws: self.ws.as_ptr(),
            xs: self.xs.as_ptr(),
            xsum: self.xsum.as_ptr(),
        };
        assert!(self.ws.len() >= self.n * count && self.xsum.len() >= self.m * count);
        // SAFETY: as in `run`; ws holds n rows of `count` scales, xs m values, xsum m rows
        // of `count` sums (asserted), and count = ceil(k / size) for 4·rb − 128 < k ≤ 4·rb.
        unsafe {
            (k.w2a8_group)(
                self.w.as_ptr().add(self.off),
                self.rb,
                self.n,
                self.x.as_ptr().add(self.off),
                self.ldx,
                self.m,
                o.as_mut_ptr(),
                self.ldo,
                &gr,
            );
            (k.f32_group)(
                self.w.as_ptr().add(self.off),
                self.rb,
                self.n,
                self.xf.as_ptr().add(self.off),
                self.ldx,
                self.m,
                of.as_mut_ptr(),
                self.ldo,
                &gr,
            );
        }
        (
            o.iter().map(|v| v.to_bits()).collect(),
            of.iter().map(|v| v.to_bits()).collect(),
        )
    }

    /// Runs both raw kernels of `k` into sentinel-filled outputs of `m` rows of stride `ldo`.
    fn run(&self, k: &super::Kernel) -> (Vec<u32>, Vec<u32>) {
        let len = self.m * self.ldo;
        let mut o = vec![UNTOUCHED as i32; len];
        let mut of = vec![f32::from_bits(UNTOUCHED); len];
        // SAFETY: w + off has n rows of rb bytes; x + off and xf + off have m rows of stride
        // ldx ≥ 4·rb; the outputs have m rows of stride ldo ≥ n; `k` exists only for ISAs the
        // host supports.
        unsafe {
            (k.w2a8)(
                self.w.as_ptr().add(self.off),
                self.rb,
                self.n,
                self.x.as_ptr().add(self.off),
                self.ldx,
                self.m,
                o.as_mut_ptr(),
                self.ldo,
            );
            (k.f32)(
                self.w.as_ptr().add(self.off),
                self.rb,
                self.n,
                self.xf.as_ptr().add(self.off),
                self.ldx,
                self.m,
                of.as_mut_ptr(),
                self.ldo,
            );
        }
        (
            o.iter().map(|&v| v as u32).collect(),
            of.iter().map(|v| v.to_bits()).collect(),
        )
    }
}

/// Every kernel equals the scalar twin bit for bit and leaves the output padding alone.
fn check(case: &Case) -> Result<(), TestCaseError> {
    let (expect, expect_f) = case.run(&kernels()[0]);
    for (i, row) in expect.chunks(case.ldo.max(1)).enumerate() {
        prop_assert!(
            row[case.n..].iter().all(|&v| v == UNTOUCHED),
            "scalar wrote padding of row {i}"
        );
    }
    // NaN payloads are unspecified (huge scales can overflow to ∞ and meet −∞).
    let at = |a: &[u32], b: &[u32]| {
        let nan = |v: u32| f32::from_bits(v).is_nan();
        a.iter()
            .zip(b)
            .position(|(&x, &y)| x != y && !(nan(x) && nan(y)))
    };
    for size in crate::format::GROUP_SIZES {
        let (expect, expect_f) = case.run_groups(&kernels()[0], size);
        for k in kernels() {
            let (got, got_f) = case.run_groups(k, size);
            for out in [&got, &got_f] {
                for (i, row) in out.chunks(case.ldo.max(1)).enumerate() {
                    prop_assert!(
                        row[case.n..].iter().all(|&v| v == UNTOUCHED),
                        "{:?} group kernel wrote padding of row {}",
                        k.isa(),
                        i
                    );
                }
            }
            prop_assert_eq!(
                at(&got, &expect),
                None,
                "{:?} w2a8 groups of {} m={} n={} rb={} k={}",
                k.isa(),
                size,
                case.m,
                case.n,
                case.rb,
                case.k
            );
            prop_assert_eq!(
                at(&got_f, &expect_f),
                None,
                "{:?} f32 groups of {} m={} n={} rb={} k={}",
                k.isa(),
                size,
                case.m,
                case.n,
                case.rb,
                case.k
            );
        }
    }
    for k in kernels() {
        let (got, got_f) = case.run(k);
        prop_assert_eq!(
            at(&got, &expect),
            None,
            "{:?} w2a8 m={} n={} rb={}",
            k.isa(),
            case.m,
            case.n,
            case.rb
        );
        prop_assert_eq!(
            at(&got_f, &expect_f),
            None,
            "{:?} f32 m={} n={} rb={}",
            k.isa(),
            case.m,
            case.n,
            case.rb
        );
    }
    Ok(())
}

#[test]
fn raw_kernels_match_scalar_at_unaligned_offsets_and_strides() {
    for off in 0..4 {
        for pad in [(0, 0), (3, 2), (61, 17)] {
            for (m, n, blocks) in [(5, 11, 3), (1, 70, 2), (13, 40, 5), (8, 33, 1)] {
                check(&Case::new(m, n, blocks, pad, off, (off * 7 + m) as u64)).unwrap();
            }
        }
    }
}

#[test]
fn raw_kernels_match_scalar_when_panels_are_decoded_once_per_row_block() {
    // Past 32 (W2A8) and 128 (f32) rows the panel kernels decode a block of panels once and
    // pass it by row blocks; the group kernels too.
    for (m, n, blocks) in [(33, 70, 5), (40, 33, 9), (129, 20, 3), (140, 50, 6)] {
        check(&Case::new(m, n, blocks, (5, 3), 1, m as u64)).unwrap();
    }
}

#[test]
fn raw_kernels_handle_empty_k_and_empty_tiles() {
    for (m, n) in [(0, 0), (0, 7), (3, 0), (9, 40), (2, 5)] {
        check(&Case::new(m, n, 0, (1, 1), 1, 3)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Single calls wider than a block of column panels (256) and deeper than a W2A8 K chunk
    /// (4 blocks), at every row count around the row tiles, with unaligned strides.
    #[test]
    fn raw_kernels_match_scalar_on_wide_and_deep_single_calls(
        m in prop_oneof![0usize..=14, 23usize..=26],
        n in prop_oneof![1usize..=70, 250usize..=300],
        blocks in 1usize..=10,
        pad in (0usize..70, 0usize..20),
        off in 0usize..4,
        seed in any::<u64>(),
    ) {
        check(&Case::new(m, n, blocks, pad, off, seed))?;
    }
}
