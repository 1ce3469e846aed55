//! The algebra of packed trits: every element-wise op as a few bitwise operations on whole
//! words of 2-bit codes, written once over [`Lanes`] (a `u64`, an AVX2 or an AVX-512
//! register) so every ISA evaluates the same formula.
//!
//! # Codes and planes
//!
//! A trit `t ∈ {−1, 0, +1}` is stored as the 2-bit code `c = t + 1` (`00`, `01`, `10`; `11`
//! never occurs). Write `M = 0x5555…` for the mask of the low bit of every lane. From a word
//! `x` of codes, the two *planes* (one bit per lane, at the lane's low bit) are
//!
//! ```text
//! P = (x >> 1) & M            lane is +1 (code 10)
//! N = !(x | x >> 1) & M       lane is −1 (code 00)
//! ```
//!
//! and a result given by its planes `(P', N')` (disjoint) is encoded back as
//! `c' = (P' << 1) | (!(P' | N') & M)`. The shifts never mix lanes: `x >> 1` brings lane
//! `i + 1`'s low bit into lane `i`'s high bit, which `& M` discards.
//!
//! # Formulas (per lane; `a`, `b` operands, `Pa`, `Na`, `Pb`, `Nb` their planes)
//!
//! | op | `P'` (result is +1) | `N'` (result is −1) |
//! |----|----|----|
//! | `add` (saturating `clamp(a + b, −1, 1)`) | `Pa & !Nb \| Pb & !Na` | `Na & !Pb \| Nb & !Pa` |
//! | `sub` (saturating) | `add(a, neg b)`: swap `Pb`, `Nb` | |
//! | `mul` | `Pa & Pb \| Na & Nb` | `Pa & Nb \| Na & Pb` |
//! | `min_pair` | `Pa & Pb` | `Na \| Nb` |
//! | `max_pair` | `Pa \| Pb` | `Na & Nb` |
//! | `lt` (`a < b`) | `Na & !Nb \| Pb & !Pa` | 0 |
//! | `gt` (`a > b`) | `Pa & !Pb \| Nb & !Na` | 0 |
//! | `le`, `ge` | `!gt`, `!lt` (within `M`) | 0 |
//!
//! Equality needs no planes: with `d = a ^ b`, the lanes are equal iff both bits of `d` are
//! 0, so `eq: P' = !(d | d >> 1) & M` and `ne: P' = (d | d >> 1) & M`. Comparisons give
//! +1 for true and 0 for false, so `c' = (P' << 1) | (P' ^ M)`.
//!
//! The unary ops keep the low bit (zero stays zero): `neg: c' = (N << 1) | (x & M)`,
//! `abs: c' = ((!x & M) << 1) | (x & M)`. `select(c, a, b)` takes `a` where the trit `c` is
//! non-zero (its low bit is 0) and `b` elsewhere: with `s = !c & M`, `S = s | s << 1`,
//! `c' = (a & S) | (b & !S)`.
//!
//! Zero operands give zero for every op but the comparisons (`0 == 0` is true), so padding
//! codes are restored by the callers after a comparison (see `PackedTrits`).

/// A vector of 64-bit words of 2-bit trit codes, with the bitwise operations the formulas
/// need. Implemented by `u64` (the scalar twin) and by each ISA's register type.
pub(crate) trait Lanes: Copy {
    /// Bytes per vector.
    const BYTES: usize;
    /// Every 64-bit word set to `v`.
    fn splat(v: u64) -> Self;
    /// `self & o`.
    fn and(self, o: Self) -> Self;
    /// `self | o`.
    fn or(self, o: Self) -> Self;
    /// `self ^ o`.
    fn xor(self, o: Self) -> Self;
    /// `!self & o`.
    fn andnot(self, o: Self) -> Self;
    /// Each 64-bit word shifted right by one bit.
    fn shr1(self) -> Self;
    /// Each 64-bit word shifted left by one bit.
    fn shl1(self) -> Self;
    /// Loads `BYTES` bytes.
    ///
    /// # Safety
    /// `p` is valid for reads of `BYTES` bytes (any alignment).
    unsafe fn load(p: *const u8) -> Self;
    /// Stores `BYTES` bytes.
    ///
    /// # Safety
    /// `p` is valid for writes of `BYTES` bytes (any alignment).
    unsafe fn store(self, p: *mut u8);
    /// Stores `BYTES` bytes around the caches (a non-temporal store: no read of the line
    /// before it is written). The default is [`Lanes::store`].
    ///
    /// # Safety
    /// `p` is valid for writes of `BYTES` bytes and aligned to `BYTES`.
    #[inline(always)]
    unsafe fn store_stream(self, p: *mut u8) {
        // SAFETY: forwarded.
        unsafe { self.store(p) }
    }
    /// Hints that the line [`PREFETCH_BYTES`] past `p` will be read soon (any address: a
    /// prefetch never faults). The default does nothing.
    #[inline(always)]
    fn prefetch(p: *const u8) {
        let _ = p;
    }
}

/// How far ahead of the loads the SIMD loops prefetch: 128 lines. On the dev VM a sum over
/// DRAM (100 M trits) read at 56 % of the read bandwidth without prefetches, and at 70, 83,
/// 89 and 85 % with 2, 4, 8 and 16 KiB.
pub(crate) const PREFETCH_BYTES: usize = 8192;

/// Low bit of every 2-bit lane.
pub(crate) const LO: u64 = 0x5555_5555_5555_5555;
/// High bit of every 2-bit lane.
pub(crate) const HI: u64 = 0xAAAA_AAAA_AAAA_AAAA;

/// The element-wise operations of two operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// Saturating sum, `clamp(a + b, −1, 1)`.
    Add,
    /// Saturating difference, `clamp(a − b, −1, 1)`.
    Sub,
    /// Product.
    Mul,
    /// Element-wise minimum.
    Min,
    /// Element-wise maximum.
    Max,
    /// `a == b`: +1 for true, 0 for false.
    Eq,
    /// `a != b`: +1 for true, 0 for false.
    Ne,
    /// `a < b`: +1 for true, 0 for false.
    Lt,
    /// `a <= b`: +1 for true, 0 for false.
    Le,
    /// `a > b`: +1 for true, 0 for false.
    Gt,
    /// `a >= b`: +1 for true, 0 for false.
    Ge,
}

impl BinaryOp {
    /// Every binary op, in declaration order.
    pub const ALL: [BinaryOp; 11] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];

    /// Short lowercase name (`add`, `sub`, `mul`, `min`, `max`, `eq`, `ne`, `lt`, `le`, `gt`,
    /// `ge`), as printed by the report.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
        }
    }

    /// Whether the op is a comparison (its result is 0 or +1, and 0 op 0 may be +1).
    pub fn is_comparison(self) -> bool {
        !matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Min | BinaryOp::Max
        )
    }

    /// The op on single trits in {−1, 0, +1}: the definition the packed formulas implement.
    pub fn apply(self, a: i8, b: i8) -> i8 {
        match self {
            BinaryOp::Add => (a + b).clamp(-1, 1),
            BinaryOp::Sub => (a - b).clamp(-1, 1),
            BinaryOp::Mul => a * b,
            BinaryOp::Min => a.min(b),
            BinaryOp::Max => a.max(b),
            BinaryOp::Eq => (a == b) as i8,
            BinaryOp::Ne => (a != b) as i8,
            BinaryOp::Lt => (a < b) as i8,
            BinaryOp::Le => (a <= b) as i8,
            BinaryOp::Gt => (a > b) as i8,
            BinaryOp::Ge => (a >= b) as i8,
        }
    }
}

/// The element-wise operations of one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `−a`.
    Neg,
    /// `|a|`.
    Abs,
}

impl UnaryOp {
    /// Every unary op.
    pub const ALL: [UnaryOp; 2] = [UnaryOp::Neg, UnaryOp::Abs];

    /// Short lowercase name (`neg`, `abs`).
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
        }
    }

    /// The op on a single trit: the definition the packed formulas implement.
    pub fn apply(self, a: i8) -> i8 {
        match self {
            UnaryOp::Neg => -a,
            UnaryOp::Abs => a.abs(),
        }
    }
}

/// `(P, N)`: the +1 and −1 planes of a word of codes.
#[inline(always)]
fn planes<W: Lanes>(x: W) -> (W, W) {
    let m = W::splat(LO);
    let s = x.shr1();
    (s.and(m), x.or(s).andnot(m))
}

/// Codes of the result with planes `(p, n)` (disjoint, within `M`).
#[inline(always)]
fn encode<W: Lanes>(p: W, n: W) -> W {
    p.shl1().or(p.or(n).andnot(W::splat(LO)))
}

/// Codes of a comparison whose true lanes are `p` (within `M`): +1 or 0.
#[inline(always)]
fn encode_bool<W: Lanes>(p: W) -> W {
    p.shl1().or(p.xor(W::splat(LO)))
}

#[inline(always)]
fn add_planes<W: Lanes>(pa: W, na: W, pb: W, nb: W) -> W {
    let p = nb.andnot(pa).or(na.andnot(pb));
    let n = pb.andnot(na).or(pa.andnot(nb));
    encode(p, n)
}

/// Saturating sum.
#[inline(always)]
pub(crate) fn add<W: Lanes>(a: W, b: W) -> W {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    add_planes(pa, na, pb, nb)
}

/// Saturating difference.
#[inline(always)]
pub(crate) fn sub<W: Lanes>(a: W, b: W) -> W {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    add_planes(pa, na, nb, pb)
}

/// Product.
#[inline(always)]
pub(crate) fn mul<W: Lanes>(a: W, b: W) -> W {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    encode(pa.and(pb).or(na.and(nb)), pa.and(nb).or(na.and(pb)))
}

/// The +1 and −1 planes of the product, for `dot`.
#[inline(always)]
pub(crate) fn mul_planes<W: Lanes>(a: W, b: W) -> (W, W) {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    (pa.and(pb).or(na.and(nb)), pa.and(nb).or(na.and(pb)))
}

/// `(nz, neg)` for a dot product without the product's codes: `nz` marks the lanes where
/// both trits are non-zero (both low bits 0: `!(a | b) & M`) and `neg` those of them whose
/// signs differ (high bits differ: `nz & (a ^ b) >> 1`). `Σ a·b = |nz| − 2·|neg|`.
#[inline(always)]
pub(crate) fn dot_masks<W: Lanes>(a: W, b: W) -> (W, W) {
    let nz = a.or(b).andnot(W::splat(LO));
    (nz, nz.and(a.xor(b).shr1()))
}

/// Element-wise minimum.
#[inline(always)]
pub(crate) fn min<W: Lanes>(a: W, b: W) -> W {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    encode(pa.and(pb), na.or(nb))
}

/// Element-wise maximum.
#[inline(always)]
pub(crate) fn max<W: Lanes>(a: W, b: W) -> W {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    encode(pa.or(pb), na.and(nb))
}

/// Lanes where the codes differ (within `M`).
#[inline(always)]
fn differ<W: Lanes>(a: W, b: W) -> W {
    let d = a.xor(b);
    d.or(d.shr1()).and(W::splat(LO))
}

/// `a == b`.
#[inline(always)]
pub(crate) fn eq<W: Lanes>(a: W, b: W) -> W {
    encode_bool(differ(a, b).xor(W::splat(LO)))
}

/// `a != b`.
#[inline(always)]
pub(crate) fn ne<W: Lanes>(a: W, b: W) -> W {
    encode_bool(differ(a, b))
}

/// Lanes where `a < b` (within `M`).
#[inline(always)]
fn less<W: Lanes>(a: W, b: W) -> W {
    let ((pa, na), (pb, nb)) = (planes(a), planes(b));
    nb.andnot(na).or(pa.andnot(pb))
}

/// `a < b`.
#[inline(always)]
pub(crate) fn lt<W: Lanes>(a: W, b: W) -> W {
    encode_bool(less(a, b))
}

/// `a <= b`.
#[inline(always)]
pub(crate) fn le<W: Lanes>(a: W, b: W) -> W {
    encode_bool(less(b, a).xor(W::splat(LO)))
}

/// `a > b`.
#[inline(always)]
pub(crate) fn gt<W: Lanes>(a: W, b: W) -> W {
    encode_bool(less(b, a))
}

/// `a >= b`.
#[inline(always)]
pub(crate) fn ge<W: Lanes>(a: W, b: W) -> W {
    encode_bool(less(a, b).xor(W::splat(LO)))
}

/// `−a`.
#[inline(always)]
pub(crate) fn neg<W: Lanes>(a: W) -> W {
    let (_, n) = planes(a);
    n.shl1().or(a.and(W::splat(LO)))
}

/// `|a|`.
#[inline(always)]
pub(crate) fn abs<W: Lanes>(a: W) -> W {
    let m = W::splat(LO);
    a.andnot(m).shl1().or(a.and(m))
}

/// `a` where `c ≠ 0`, else `b`.
#[inline(always)]
pub(crate) fn select<W: Lanes>(c: W, a: W, b: W) -> W {
    let s = c.andnot(W::splat(LO));
    let s = s.or(s.shl1());
    a.and(s).or(s.andnot(b))
}

/// Applies `f` to `n / W::BYTES` whole vectors of `a` and `b`, writing `out`; returns the
/// bytes done (the caller finishes the tail).
///
/// # Safety
/// `a`, `b` valid for reads and `out` for writes of `n` bytes.
#[inline(always)]
unsafe fn zip_with<W: Lanes, const STREAM: bool>(
    a: *const u8,
    b: *const u8,
    out: *mut u8,
    n: usize,
    f: impl Fn(W, W) -> W,
) -> usize {
    let whole = n / W::BYTES * W::BYTES;
    let mut i = 0;
    while i < whole {
        W::prefetch(a.wrapping_add(i));
        W::prefetch(b.wrapping_add(i));
        // SAFETY: i + BYTES ≤ whole ≤ n, within the caller's buffers; with STREAM the
        // caller aligned `out` to BYTES.
        unsafe {
            let r = f(W::load(a.add(i)), W::load(b.add(i)));
            if STREAM {
                r.store_stream(out.add(i))
            } else {
                r.store(out.add(i))
            }
        };
        i += W::BYTES;
    }
    whole
}

/// The binary op over whole vectors (see [`zip_with`]); returns the bytes done. `STREAM`
/// writes with non-temporal stores.
///
/// # Safety
/// `a`, `b` valid for reads and `out` for writes of `n` bytes; `W`'s instructions are
/// available (the caller's `#[target_feature]`); with `STREAM`, `out` is aligned to
/// `W::BYTES`.
#[inline(always)]
pub(crate) unsafe fn binary<W: Lanes, const STREAM: bool>(
    op: BinaryOp,
    a: *const u8,
    b: *const u8,
    out: *mut u8,
    n: usize,
) -> usize {
    // SAFETY: forwarded from the caller; one monomorphic loop per op.
    unsafe {
        match op {
            BinaryOp::Add => zip_with::<W, STREAM>(a, b, out, n, |x, y| add(x, y)),
            BinaryOp::Sub => zip_with::<W, STREAM>(a, b, out, n, |x, y| sub(x, y)),
            BinaryOp::Mul => zip_with::<W, STREAM>(a, b, out, n, |x, y| mul(x, y)),
            BinaryOp::Min => zip_with::<W, STREAM>(a, b, out, n, |x, y| min(x, y)),
            BinaryOp::Max => zip_with::<W, STREAM>(a, b, out, n, |x, y| max(x, y)),
            BinaryOp::Eq => zip_with::<W, STREAM>(a, b, out, n, |x, y| eq(x, y)),
            BinaryOp::Ne => zip_with::<W, STREAM>(a, b, out, n, |x, y| ne(x, y)),
            BinaryOp::Lt => zip_with::<W, STREAM>(a, b, out, n, |x, y| lt(x, y)),
            BinaryOp::Le => zip_with::<W, STREAM>(a, b, out, n, |x, y| le(x, y)),
            BinaryOp::Gt => zip_with::<W, STREAM>(a, b, out, n, |x, y| gt(x, y)),
            BinaryOp::Ge => zip_with::<W, STREAM>(a, b, out, n, |x, y| ge(x, y)),
        }
    }
}

/// The unary op over whole vectors; returns the bytes done. `STREAM` as for [`binary`].
///
/// # Safety
/// As [`binary`], without `b`.
#[inline(always)]
pub(crate) unsafe fn unary<W: Lanes, const STREAM: bool>(
    op: UnaryOp,
    a: *const u8,
    out: *mut u8,
    n: usize,
) -> usize {
    // SAFETY: forwarded; `a` doubles as the unused second operand.
    unsafe {
        match op {
            UnaryOp::Neg => zip_with::<W, STREAM>(a, a, out, n, |x, _| neg(x)),
            UnaryOp::Abs => zip_with::<W, STREAM>(a, a, out, n, |x, _| abs(x)),
        }
    }
}

/// `select` over whole vectors; returns the bytes done.
///
/// # Safety
/// `c`, `a`, `b` valid for reads and `out` for writes of `n` bytes; `W`'s instructions are
/// available.
#[inline(always)]
pub(crate) unsafe fn select_loop<W: Lanes>(
    c: *const u8,
    a: *const u8,
    b: *const u8,
    out: *mut u8,
    n: usize,
) -> usize {
    let whole = n / W::BYTES * W::BYTES;
    let mut i = 0;
    while i < whole {
        W::prefetch(c.wrapping_add(i));
        W::prefetch(a.wrapping_add(i));
        W::prefetch(b.wrapping_add(i));
        // SAFETY: i + BYTES ≤ n.
        unsafe {
            select(W::load(c.add(i)), W::load(a.add(i)), W::load(b.add(i))).store(out.add(i))
        };
        i += W::BYTES;
    }
    whole
}

/// Registers that can count 2-bit codes with a 16-entry nibble table (`pshufb`): the
/// popcount of ISAs without a native one.
pub(crate) trait NibbleCount: Lanes {
    /// Per byte: `table[low nibble] + table[high nibble]` (wrapping u8).
    fn nibble_lut(self, table: &[u8; 16]) -> Self;
    /// Per byte wrapping sum.
    fn add_u8(self, o: Self) -> Self;
    /// The sum of all bytes as unsigned integers.
    fn sum_u8(self) -> u64;
    /// All bytes zero.
    fn zero() -> Self;
}

/// Per nibble (two codes): how many are +1 (code 2).
const LUT_POS: [u8; 16] = nibble_table([0, 0, 1, 0]);
/// Per nibble: how many are 0 (code 1).
const LUT_ZERO: [u8; 16] = nibble_table([0, 1, 0, 0]);
/// Per nibble: the sum of its two codes, `t0 + t1 + 2` (code 3 never occurs).
const LUT_CODE_SUM: [u8; 16] = nibble_table([0, 1, 2, 0]);

/// Per nibble: `f[code of lane 0] + f[code of lane 1]`.
const fn nibble_table(f: [u8; 4]) -> [u8; 16] {
    let mut t = [0u8; 16];
    let mut v = 0;
    while v < 16 {
        t[v] = f[v & 3] + f[v >> 2];
        v += 1;
    }
    t
}

/// Vectors a u8 counter of the nibble-table count (AVX2, AVX-512 BW) absorbs before it is
/// summed: a byte gains at most 4 (four +1 or four 0 trits) per vector, and
/// 63 × 4 = 252 ≤ 255.
pub const COUNT_LUT_ROUNDS: usize = 63;
/// Vectors a u8 counter of the nibble-table dot (AVX2, AVX-512 BW) absorbs: a byte of
/// products gains its code sum, at most 4 × 2 = 8 (four +1 products), and
/// 31 × 8 = 248 ≤ 255.
pub const DOT_LUT_ROUNDS: usize = 31;

/// `(pos, zero)`: how many trits of the `n / W::BYTES` whole vectors at `a` are +1 and 0, by
/// nibble table; returns them with the bytes done.
///
/// # Safety
/// `a` valid for reads of `n` bytes; `W`'s instructions are available.
#[inline(always)]
pub(crate) unsafe fn count_lut<W: NibbleCount>(a: *const u8, n: usize) -> ([u64; 2], usize) {
    let vectors = n / W::BYTES;
    let (mut pos, mut zero) = (0u64, 0u64);
    let mut v = 0;
    while v < vectors {
        let rounds = (vectors - v).min(COUNT_LUT_ROUNDS);
        let (mut p8, mut z8) = (W::zero(), W::zero());
        for r in v..v + rounds {
            W::prefetch(a.wrapping_add(r * W::BYTES));
            // SAFETY: r < vectors, so the vector lies within the n bytes.
            let x = unsafe { W::load(a.add(r * W::BYTES)) };
            p8 = p8.add_u8(x.nibble_lut(&LUT_POS));
            z8 = z8.add_u8(x.nibble_lut(&LUT_ZERO));
        }
        pos += p8.sum_u8();
        zero += z8.sum_u8();
        v += rounds;
    }
    ([pos, zero], vectors * W::BYTES)
}

/// `Σ a·b` over the `n / W::BYTES` whole vectors, by nibble table on the product codes;
/// returns it with the bytes done.
///
/// # Safety
/// `a`, `b` valid for reads of `n` bytes; `W`'s instructions are available.
#[inline(always)]
pub(crate) unsafe fn dot_lut<W: NibbleCount>(a: *const u8, b: *const u8, n: usize) -> (i64, usize) {
    let vectors = n / W::BYTES;
    let mut code_sum = 0u64;
    let mut v = 0;
    while v < vectors {
        let rounds = (vectors - v).min(DOT_LUT_ROUNDS);
        let mut s8 = W::zero();
        for r in v..v + rounds {
            W::prefetch(a.wrapping_add(r * W::BYTES));
            W::prefetch(b.wrapping_add(r * W::BYTES));
            // SAFETY: r < vectors.
            let (x, y) = unsafe { (W::load(a.add(r * W::BYTES)), W::load(b.add(r * W::BYTES))) };
            s8 = s8.add_u8(mul(x, y).nibble_lut(&LUT_CODE_SUM));
        }
        code_sum += s8.sum_u8();
        v += rounds;
    }
    let done = vectors * W::BYTES;
    // Each code is t + 1: the four trits of every byte added 4.
    (code_sum as i64 - 4 * done as i64, done)
}
