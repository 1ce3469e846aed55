//! The scalar twin: every trit kernel on `u64` words of codes, the definition of correct
//! that the AVX2 and AVX-512 kernels are tested against bit for bit.
//!
//! Raw kernels take pointers and a byte count `n`; every byte holds four trits that all
//! count (the safe layer passes whole bytes and corrects for padding). A final partial word
//! is read into a word of zero codes (`0x55` bytes) and only its `n % 8` bytes are written.

use super::logic::{self, BinaryOp, HI, LO, Lanes, UnaryOp};
use super::packed::ZERO_BYTE;

impl Lanes for u64 {
    const BYTES: usize = 8;
    #[inline(always)]
    fn splat(v: u64) -> Self {
        v
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    #[inline(always)]
    fn andnot(self, o: Self) -> Self {
        !self & o
    }
    #[inline(always)]
    fn shr1(self) -> Self {
        self >> 1
    }
    #[inline(always)]
    fn shl1(self) -> Self {
        self << 1
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: the caller guarantees 8 readable bytes.
        u64::from_le_bytes(unsafe { p.cast::<[u8; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        // SAFETY: the caller guarantees 8 writable bytes.
        unsafe { p.cast::<[u8; 8]>().write_unaligned(self.to_le_bytes()) }
    }
}

/// The first `n < 8` bytes at `p` as a word, the rest zero codes.
///
/// # Safety
/// `p` valid for reads of `n` bytes.
#[inline(always)]
unsafe fn load_partial(p: *const u8, n: usize) -> u64 {
    let mut w = [ZERO_BYTE; 8];
    // SAFETY: n bytes readable at p; w is a distinct local of 8 ≥ n bytes.
    unsafe { std::ptr::copy_nonoverlapping(p, w.as_mut_ptr(), n) };
    u64::from_le_bytes(w)
}

/// Writes the first `n < 8` bytes of `w` to `p`.
///
/// # Safety
/// `p` valid for writes of `n` bytes.
#[inline(always)]
unsafe fn store_partial(w: u64, p: *mut u8, n: usize) {
    let b = w.to_le_bytes();
    // SAFETY: n bytes writable at p; b is a distinct local.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, n) };
}

/// One word of `op`.
#[inline(always)]
pub(crate) fn binary_word(op: BinaryOp, a: u64, b: u64) -> u64 {
    match op {
        BinaryOp::Add => logic::add(a, b),
        BinaryOp::Sub => logic::sub(a, b),
        BinaryOp::Mul => logic::mul(a, b),
        BinaryOp::Min => logic::min(a, b),
        BinaryOp::Max => logic::max(a, b),
        BinaryOp::Eq => logic::eq(a, b),
        BinaryOp::Ne => logic::ne(a, b),
        BinaryOp::Lt => logic::lt(a, b),
        BinaryOp::Le => logic::le(a, b),
        BinaryOp::Gt => logic::gt(a, b),
        BinaryOp::Ge => logic::ge(a, b),
    }
}

/// One word of `op`.
#[inline(always)]
pub(crate) fn unary_word(op: UnaryOp, a: u64) -> u64 {
    match op {
        UnaryOp::Neg => logic::neg(a),
        UnaryOp::Abs => logic::abs(a),
    }
}

/// `out[i] = op(a[i], b[i])` for `n` bytes of codes.
///
/// # Safety
/// `a`, `b` valid for reads and `out` for writes of `n` bytes; `out` may equal `a` or `b`
/// but not overlap them otherwise.
pub(crate) unsafe fn binary(op: BinaryOp, a: *const u8, b: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded.
    let done = unsafe { logic::binary::<u64, false>(op, a, b, out, n) };
    let rest = n - done;
    if rest > 0 {
        // SAFETY: rest < 8 bytes remain at offset done of each buffer.
        unsafe {
            let (x, y) = (
                load_partial(a.add(done), rest),
                load_partial(b.add(done), rest),
            );
            store_partial(binary_word(op, x, y), out.add(done), rest);
        }
    }
}

/// `out[i] = op(a[i])` for `n` bytes of codes.
///
/// # Safety
/// As [`binary`], without `b`.
pub(crate) unsafe fn unary(op: UnaryOp, a: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded.
    let done = unsafe { logic::unary::<u64, false>(op, a, out, n) };
    let rest = n - done;
    if rest > 0 {
        // SAFETY: rest < 8 bytes remain at offset done.
        unsafe {
            let x = load_partial(a.add(done), rest);
            store_partial(unary_word(op, x), out.add(done), rest);
        }
    }
}

/// `out[i] = c[i] ≠ 0 ? a[i] : b[i]` for `n` bytes of codes.
///
/// # Safety
/// `c`, `a`, `b` valid for reads and `out` for writes of `n` bytes.
pub(crate) unsafe fn select(c: *const u8, a: *const u8, b: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded.
    let done = unsafe { logic::select_loop::<u64>(c, a, b, out, n) };
    let rest = n - done;
    if rest > 0 {
        // SAFETY: rest < 8 bytes remain at offset done.
        unsafe {
            let w = logic::select(
                load_partial(c.add(done), rest),
                load_partial(a.add(done), rest),
                load_partial(b.add(done), rest),
            );
            store_partial(w, out.add(done), rest);
        }
    }
}

/// `[pos, zero]`: how many of the `4 n` trits are +1 and 0.
///
/// # Safety
/// `a` valid for reads of `n` bytes.
pub(crate) unsafe fn count(a: *const u8, n: usize) -> [u64; 2] {
    let (mut pos, mut zero) = (0u64, 0u64);
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: i + 8 ≤ n.
        let x = unsafe { u64::load(a.add(i)) };
        pos += u64::from((x & HI).count_ones());
        zero += u64::from((x & LO).count_ones());
    }
    let rest = n - whole;
    if rest > 0 {
        // SAFETY: rest < 8 bytes remain at offset whole.
        let x = unsafe { load_partial(a.add(whole), rest) };
        pos += u64::from((x & HI).count_ones());
        // The 8 − rest padding bytes held four zero codes each.
        zero += u64::from((x & LO).count_ones()) - 4 * (8 - rest) as u64;
    }
    [pos, zero]
}

/// `Σ a·b` over the `4 n` trit pairs.
///
/// # Safety
/// `a`, `b` valid for reads of `n` bytes.
pub(crate) unsafe fn dot(a: *const u8, b: *const u8, n: usize) -> i64 {
    let (mut pos, mut neg) = (0u64, 0u64);
    let word = |x: u64, y: u64, pos: &mut u64, neg: &mut u64| {
        let (p, m) = logic::mul_planes(x, y);
        *pos += u64::from(p.count_ones());
        *neg += u64::from(m.count_ones());
    };
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: i + 8 ≤ n.
        let (x, y) = unsafe { (u64::load(a.add(i)), u64::load(b.add(i))) };
        word(x, y, &mut pos, &mut neg);
    }
    let rest = n - whole;
    if rest > 0 {
        // SAFETY: rest < 8 bytes remain; padding codes are zeros, whose products are 0.
        let (x, y) = unsafe {
            (
                load_partial(a.add(whole), rest),
                load_partial(b.add(whole), rest),
            )
        };
        word(x, y, &mut pos, &mut neg);
    }
    pos as i64 - neg as i64
}
