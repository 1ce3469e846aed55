//! Runtime ISA detection (once, cached) and the list of the host's trit kernels.

use std::sync::OnceLock;

use super::logic::{BinaryOp, UnaryOp};

/// Raw binary kernel. Contract: [`super::scalar::binary`].
pub(crate) type BinaryFn = unsafe fn(BinaryOp, *const u8, *const u8, *mut u8, usize);
/// Raw unary kernel. Contract: [`super::scalar::unary`].
pub(crate) type UnaryFn = unsafe fn(UnaryOp, *const u8, *mut u8, usize);
/// Raw select kernel. Contract: [`super::scalar::select`].
pub(crate) type SelectFn = unsafe fn(*const u8, *const u8, *const u8, *mut u8, usize);
/// Raw count kernel. Contract: [`super::scalar::count`].
pub(crate) type CountFn = unsafe fn(*const u8, usize) -> [u64; 2];
/// Raw dot kernel. Contract: [`super::scalar::dot`].
pub(crate) type DotFn = unsafe fn(*const u8, *const u8, usize) -> i64;

/// An instruction set a trit kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust on `u64` words; the reference every other kernel must match.
    Scalar,
    /// AVX2: 256-bit registers, counts by `vpshufb` nibble tables.
    Avx2,
    /// AVX-512 F/BW: 512-bit registers (`vpternlogq`), counts by nibble tables.
    Avx512Bw,
    /// AVX-512 F/BW with VPOPCNTDQ: counts by `vpopcntq` on bit planes.
    Avx512Vpopcnt,
}

impl Isa {
    /// Short lowercase name, as printed by the report and accepted by `TERNARY_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Bw => "avx512bw",
            Isa::Avx512Vpopcnt => "avx512vpopcnt",
        }
    }
}

/// One implementation of every trit kernel for one ISA. Only constructed for ISAs the host
/// supports, which is what makes calling its function pointers sound. The safe operations
/// are its methods (`binary`, `count`, `dot`, …).
#[derive(Clone, Copy)]
pub struct Kernel {
    pub(crate) isa: Isa,
    pub(crate) binary: BinaryFn,
    pub(crate) unary: UnaryFn,
    pub(crate) select: SelectFn,
    pub(crate) count: CountFn,
    pub(crate) dot: DotFn,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("trit::Kernel")
            .field("isa", &self.isa)
            .finish()
    }
}

impl Kernel {
    /// The instruction set.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

fn detect() -> Vec<Kernel> {
    use super::scalar;
    let mut v = vec![Kernel {
        isa: Isa::Scalar,
        binary: scalar::binary,
        unary: scalar::unary,
        select: scalar::select,
        count: scalar::count,
        dot: scalar::dot,
    }];
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_64::{avx2, avx512};
        if is_x86_feature_detected!("avx2") {
            v.push(Kernel {
                isa: Isa::Avx2,
                binary: avx2::binary,
                unary: avx2::unary,
                select: avx2::select,
                count: avx2::count,
                dot: avx2::dot,
            });
        }
        let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        if avx512 {
            v.push(Kernel {
                isa: Isa::Avx512Bw,
                binary: avx512::binary,
                unary: avx512::unary,
                select: avx512::select,
                count: avx512::count_bw,
                dot: avx512::dot_bw,
            });
        }
        if avx512 && is_x86_feature_detected!("avx512vpopcntdq") {
            v.push(Kernel {
                isa: Isa::Avx512Vpopcnt,
                binary: avx512::binary,
                unary: avx512::unary,
                select: avx512::select,
                count: avx512::count_vpopcnt,
                dot: avx512::dot_vpopcnt,
            });
        }
    }
    v
}

/// Every trit kernel the host can run, scalar first, fastest last.
pub fn kernels() -> &'static [Kernel] {
    static ALL: OnceLock<Vec<Kernel>> = OnceLock::new();
    ALL.get_or_init(detect)
}

/// The kernel the `PackedTrits` methods use: the fastest the host supports, or the one
/// named by the `TERNARY_ISA` environment variable (read once) when the host supports it.
pub fn best() -> &'static Kernel {
    static BEST: OnceLock<&'static Kernel> = OnceLock::new();
    BEST.get_or_init(|| {
        let all = kernels();
        std::env::var("TERNARY_ISA")
            .ok()
            .and_then(|name| all.iter().find(|k| k.isa.name() == name))
            .unwrap_or_else(|| all.last().expect("scalar is always present"))
    })
}
