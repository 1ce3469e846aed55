//! Runtime ISA detection (once, cached) and the list of the host's kernels.

use std::sync::OnceLock;

/// Raw W2A8 kernel: unscaled code × activation sums. Contract: [`super::scalar`].
pub(crate) type W2a8Fn =
    unsafe fn(*const u8, usize, usize, *const i8, usize, usize, *mut i32, usize);
/// Raw exact-f32 kernel: unscaled ternary × f32 sums. Contract: [`super::scalar`].
pub(crate) type F32Fn =
    unsafe fn(*const u8, usize, usize, *const f32, usize, usize, *mut f32, usize);
/// Raw group-scaled kernel on activations of type `T`: scaled f32 results. Contract:
/// [`super::scalar`].
pub(crate) type GroupFn<T> =
    unsafe fn(*const u8, usize, usize, *const T, usize, usize, *mut f32, usize, &Groups);
/// Raw group-scaled W2A8 kernel (int8 activations).
pub(crate) type W2a8GroupFn = GroupFn<i8>;
/// Raw group-scaled exact-f32 kernel.
pub(crate) type F32GroupFn = GroupFn<f32>;

/// The scale operands of a raw group-scaled kernel call (see [`super::scalar`], "Group
/// scales"): pointers into the caller's buffers, offset to the call's first weight row and
/// first activation row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Groups {
    /// Columns per group: 64, 128 or 256.
    pub size: usize,
    /// Groups per weight row (`ceil(k / size)`), and the row stride of `ws` and `xsum`.
    pub count: usize,
    /// Weight scales: `ws[j·count + g]` for weight row `j` of the call and group `g`.
    pub ws: *const f32,
    /// W2A8: the scale of activation row `i` at `xs[i]`. Unused (may dangle) for f32.
    pub xs: *const f32,
    /// W2A8: `Σ x` over the columns of group `g` of activation row `i` at
    /// `xsum[i·count + g]`. Unused (may dangle) for f32.
    pub xsum: *const i32,
}

/// An instruction set a kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust; the reference every other kernel must match.
    Scalar,
    /// AVX2 + FMA (`vpmaddubsw`, `vfmadd`).
    Avx2,
    /// AVX-512 F/BW/VL without VNNI (`vpmaddubsw` on zmm).
    Avx512Bw,
    /// AVX-512 with VNNI (`vpdpbusd`).
    Avx512Vnni,
}

impl Isa {
    /// Short lowercase name, as printed by the report and accepted by `TERNARY_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Bw => "avx512bw",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }
}

/// One implementation of every kernel for one ISA. Only constructed for ISAs the host
/// supports, which is what makes calling its function pointers sound.
#[derive(Clone, Copy)]
pub struct Kernel {
    pub(crate) isa: Isa,
    pub(crate) w2a8: W2a8Fn,
    pub(crate) f32: F32Fn,
    pub(crate) w2a8_group: W2a8GroupFn,
    pub(crate) f32_group: F32GroupFn,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("isa", &self.isa).finish()
    }
}

impl Kernel {
    /// The instruction set.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

fn detect() -> Vec<Kernel> {
    let mut v = vec![Kernel {
        isa: Isa::Scalar,
        w2a8: super::scalar::w2a8,
        f32: super::scalar::f32,
        w2a8_group: super::scalar::w2a8_group,
        f32_group: super::scalar::f32_group,
    }];
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_64::{avx2, avx512};
        // The exact-f32 kernel multiplies by ±1/0 with FMA: every AVX2 core has it.
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(Kernel {
                isa: Isa::Avx2,
                w2a8: avx2::w2a8,
                f32: avx2::f32,
                w2a8_group: avx2::w2a8_group,
                f32_group: avx2::f32_group,
            });
        }
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl");
        if avx512 {
            v.push(Kernel {
                isa: Isa::Avx512Bw,
                w2a8: avx512::w2a8_bw,
                f32: avx512::f32,
                w2a8_group: avx512::w2a8_group_bw,
                f32_group: avx512::f32_group,
            });
        }
        if avx512 && is_x86_feature_detected!("avx512vnni") {
            v.push(Kernel {
                isa: Isa::Avx512Vnni,
                w2a8: avx512::w2a8_vnni,
                f32: avx512::f32,
                w2a8_group: avx512::w2a8_group_vnni,
                f32_group: avx512::f32_group,
            });
        }
    }
    v
}

/// Every kernel the host can run, scalar first, fastest last.
pub fn kernels() -> &'static [Kernel] {
    static ALL: OnceLock<Vec<Kernel>> = OnceLock::new();
    ALL.get_or_init(detect)
}

/// The kernel the free functions use: the fastest the host supports, or the one named by
/// the `TERNARY_ISA` environment variable (read once) when the host supports it.
pub fn best() -> &'static Kernel {
    static BEST: OnceLock<&'static Kernel> = OnceLock::new();
    BEST.get_or_init(|| {
        let all = kernels();
        let wanted = std::env::var("TERNARY_ISA").ok();
        wanted
            .and_then(|name| all.iter().find(|k| k.isa.name() == name))
            .unwrap_or_else(|| all.last().expect("scalar is always present"))
    })
}

/// Int8 MACs one round of [`dpbusd_peak`] performs.
pub const DPBUSD_PEAK_MACS_PER_ITER: usize = 16 * 64;

/// The int8 MAC ceiling of this core, the reference of the kernel report's `%peak`: runs
/// `iters` rounds of independent `vpdpbusd` on zmm registers ([`DPBUSD_PEAK_MACS_PER_ITER`]
/// MACs each) and returns a value that depends on all of them, or `None` when the host has no
/// AVX-512 VNNI. Time it to get MAC/s.
pub fn dpbusd_peak(iters: usize) -> Option<i64> {
    #[cfg(target_arch = "x86_64")]
    if kernels().iter().any(|k| k.isa == Isa::Avx512Vnni) {
        // SAFETY: the Avx512Vnni kernel is listed only when the host has avx512f and vnni.
        return Some(unsafe { super::x86_64::avx512::dpbusd_peak(iters) });
    }
    let _ = iters;
    None
}
