//! Element-wise ops with broadcasting, reductions and the std operators of [`TritTensor`].

use std::sync::Arc;

use burn::tensor::TensorData;
use ternary_kernels::trit::{BinaryOp, PackedTrits, TritCounts, UnaryOp, best};

use super::tensor::TritTensor;
use crate::error::TritError;

/// The broadcast shape of `a` and `b` (NumPy's rule for equal ranks).
pub fn broadcast_shape<const D: usize>(
    op: &'static str,
    a: [usize; D],
    b: [usize; D],
) -> Result<[usize; D], TritError> {
    let mut out = [0; D];
    for d in 0..D {
        out[d] = match (a[d], b[d]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(TritError::Shape {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                });
            }
        };
    }
    Ok(out)
}

impl<const D: usize> TritTensor<D> {
    /// `op` element-wise after broadcasting both operands to one shape.
    ///
    /// # Errors
    /// [`TritError::Shape`] naming both shapes when they do not broadcast.
    pub fn try_binary(&self, op: BinaryOp, other: &Self) -> Result<Self, TritError> {
        let shape = broadcast_shape(op.name(), self.shape, other.shape)?;
        let a = self.try_expand(shape)?.packed();
        let b = other.try_expand(shape)?.packed();
        let out = best().binary(op, &a, &b)?;
        Ok(Self::contiguous_over(Arc::new(out), shape))
    }

    fn binary_or_panic(&self, op: BinaryOp, other: &Self) -> Self {
        self.try_binary(op, other).unwrap_or_else(|e| panic!("{e}"))
    }

    fn unary(&self, op: UnaryOp) -> Self {
        let out = best().unary(op, &self.packed());
        Self::contiguous_over(Arc::new(out), self.shape)
    }

    /// Saturating sum `clamp(a + b, −1, 1)`, broadcasting.
    ///
    /// # Panics
    /// When the shapes do not broadcast (names both); see [`TritTensor::try_binary`].
    pub fn add(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Add, other)
    }

    /// Saturating difference `clamp(a − b, −1, 1)`, broadcasting. Panics as [`TritTensor::add`].
    pub fn sub(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Sub, other)
    }

    /// Product, broadcasting. Panics as [`TritTensor::add`].
    pub fn mul(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Mul, other)
    }

    /// Element-wise minimum, broadcasting. Panics as [`TritTensor::add`].
    pub fn min_pair(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Min, other)
    }

    /// Element-wise maximum, broadcasting. Panics as [`TritTensor::add`].
    pub fn max_pair(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Max, other)
    }

    /// `a == b` as trits (+1 true, 0 false), broadcasting. Panics as [`TritTensor::add`].
    pub fn equal(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Eq, other)
    }

    /// `a != b` as trits, broadcasting. Panics as [`TritTensor::add`].
    pub fn not_equal(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Ne, other)
    }

    /// `a < b` as trits, broadcasting. Panics as [`TritTensor::add`].
    pub fn lower(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Lt, other)
    }

    /// `a <= b` as trits, broadcasting. Panics as [`TritTensor::add`].
    pub fn lower_equal(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Le, other)
    }

    /// `a > b` as trits, broadcasting. Panics as [`TritTensor::add`].
    pub fn greater(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Gt, other)
    }

    /// `a >= b` as trits, broadcasting. Panics as [`TritTensor::add`].
    pub fn greater_equal(&self, other: &Self) -> Self {
        self.binary_or_panic(BinaryOp::Ge, other)
    }

    /// A comparison as a bit mask over the broadcast shape's row-major elements (bit `i % 64`
    /// of word `i / 64`), with that shape.
    ///
    /// # Errors
    /// [`TritError::Shape`] when the shapes do not broadcast.
    ///
    /// # Panics
    /// When `op` is not a comparison.
    pub fn compare_mask(
        &self,
        op: BinaryOp,
        other: &Self,
    ) -> Result<(Vec<u64>, [usize; D]), TritError> {
        let shape = broadcast_shape(op.name(), self.shape, other.shape)?;
        let a = self.try_expand(shape)?.packed();
        let b = other.try_expand(shape)?.packed();
        Ok((best().compare_mask(op, &a, &b)?, shape))
    }

    /// `−a`.
    pub fn neg(&self) -> Self {
        self.unary(UnaryOp::Neg)
    }

    /// `|a|`.
    pub fn abs(&self) -> Self {
        self.unary(UnaryOp::Abs)
    }

    /// NumPy's `where`: `a` where `self ≠ 0`, else `b`, the three broadcast to one shape.
    ///
    /// # Errors
    /// [`TritError::Shape`] naming the shapes that do not broadcast.
    pub fn select(&self, a: &Self, b: &Self) -> Result<Self, TritError> {
        let shape = broadcast_shape("select", self.shape, a.shape)?;
        let shape = broadcast_shape("select", shape, b.shape)?;
        let c = self.try_expand(shape)?.packed();
        let a = a.try_expand(shape)?.packed();
        let b = b.try_expand(shape)?.packed();
        let out = best().select(&c, &a, &b)?;
        Ok(Self::contiguous_over(Arc::new(out), shape))
    }

    /// How many of each value.
    pub fn count(&self) -> TritCounts {
        best().count(&self.packed())
    }

    /// The exact sum.
    pub fn sum(&self) -> i64 {
        best().sum(&self.packed())
    }

    /// The smallest trit (`None` when empty).
    pub fn min(&self) -> Option<i8> {
        self.count().min()
    }

    /// The largest trit (`None` when empty).
    pub fn max(&self) -> Option<i8> {
        self.count().max()
    }

    /// `Σ a·b` over all elements (exact, by popcounts), broadcasting.
    ///
    /// # Errors
    /// [`TritError::Shape`] when the shapes do not broadcast.
    pub fn dot(&self, other: &Self) -> Result<i64, TritError> {
        let shape = broadcast_shape("dot", self.shape, other.shape)?;
        let a = self.try_expand(shape)?.packed();
        let b = other.try_expand(shape)?.packed();
        Ok(best().dot(&a, &b)?)
    }

    /// The tensor with `dim` moved last, contiguous, as `(rows, cols)`: what the kernels'
    /// per-row reductions take.
    fn rows_along(&self, dim: usize) -> (Arc<PackedTrits>, usize, usize, [usize; D]) {
        assert!(dim < D, "TritTensor: dim {dim} of a {D}-d tensor");
        let mut axes: [usize; D] = std::array::from_fn(|i| i);
        axes[dim..].rotate_left(1);
        let moved = self.permute(axes);
        let cols = self.shape[dim];
        let mut kept = self.shape;
        kept[dim] = 1;
        // Every index of the other dimensions is a row, even when `dim` itself is empty.
        let rows = kept.iter().product();
        (moved.packed(), rows, cols, kept)
    }

    /// Exact sums along `dim`, with `dim` kept as size 1 (Burn's `sum_dim`), as `i64` host
    /// data (`Tensor::from_data(.., &device)` makes it a Burn `Int` tensor).
    ///
    /// # Panics
    /// When `dim >= D`.
    pub fn sum_dim(&self, dim: usize) -> TensorData {
        let (p, rows, cols, shape) = self.rows_along(dim);
        let sums = best()
            .sum_rows(&p, rows, cols)
            .expect("rows × cols = length");
        TensorData::new(sums, shape)
    }

    /// Smallest trit along `dim` (kept as size 1).
    ///
    /// # Errors
    /// [`TritError::Kernel`] (the kernel crate's `EmptyReduction`) when `dim` is empty and the
    /// other dimensions are not (a minimum of nothing).
    pub fn min_dim(&self, dim: usize) -> Result<Self, TritError> {
        let (p, rows, cols, shape) = self.rows_along(dim);
        Self::from_i8(&best().min_rows(&p, rows, cols)?, shape)
    }

    /// Largest trit along `dim` (kept as size 1). Errors as [`TritTensor::min_dim`].
    pub fn max_dim(&self, dim: usize) -> Result<Self, TritError> {
        let (p, rows, cols, shape) = self.rows_along(dim);
        Self::from_i8(&best().max_rows(&p, rows, cols)?, shape)
    }

    /// Exact `Σ a·b` along `dim` (kept as size 1), broadcasting, as `i64` host data.
    ///
    /// # Errors
    /// [`TritError::Shape`] when the shapes do not broadcast.
    pub fn dot_dim(&self, other: &Self, dim: usize) -> Result<TensorData, TritError> {
        let shape = broadcast_shape("dot_dim", self.shape, other.shape)?;
        let (a, rows, cols, kept) = self.try_expand(shape)?.rows_along(dim);
        let (b, ..) = other.try_expand(shape)?.rows_along(dim);
        let sums = best().dot_rows(&a, &b, rows, cols)?;
        Ok(TensorData::new(sums, kept))
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident) => {
        impl<const D: usize> std::ops::$trait<&TritTensor<D>> for &TritTensor<D> {
            type Output = TritTensor<D>;
            fn $method(self, rhs: &TritTensor<D>) -> TritTensor<D> {
                TritTensor::$method(self, rhs)
            }
        }
        impl<const D: usize> std::ops::$trait for TritTensor<D> {
            type Output = TritTensor<D>;
            fn $method(self, rhs: TritTensor<D>) -> TritTensor<D> {
                TritTensor::$method(&self, &rhs)
            }
        }
    };
}

operator!(Add, add);
operator!(Sub, sub);
operator!(Mul, mul);

impl<const D: usize> std::ops::Neg for &TritTensor<D> {
    type Output = TritTensor<D>;
    fn neg(self) -> TritTensor<D> {
        TritTensor::neg(self)
    }
}

impl<const D: usize> std::ops::Neg for TritTensor<D> {
    type Output = TritTensor<D>;
    fn neg(self) -> TritTensor<D> {
        TritTensor::neg(&self)
    }
}

/// `!t` is balanced ternary's NOT: negation.
impl<const D: usize> std::ops::Not for &TritTensor<D> {
    type Output = TritTensor<D>;
    fn not(self) -> TritTensor<D> {
        TritTensor::neg(self)
    }
}

/// `!t` is balanced ternary's NOT: negation.
impl<const D: usize> std::ops::Not for TritTensor<D> {
    type Output = TritTensor<D>;
    fn not(self) -> TritTensor<D> {
        TritTensor::neg(&self)
    }
}

impl<const D: usize> PartialEq for TritTensor<D> {
    /// Equal shapes and elements (views compared by value, not by storage).
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.packed() == other.packed()
    }
}

impl<const D: usize> Eq for TritTensor<D> {}
