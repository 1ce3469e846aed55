//! [`TritTensor`]: an N-d view (shape, strides, offset) over a shared packed trit buffer.

use std::sync::Arc;

use ternary_kernels::trit::PackedTrits;

use crate::error::TritError;

/// An N-dimensional tensor of trits (−1, 0, +1) on the CPU, stored packed four per byte
/// ([`PackedTrits`], code `t + 1`) and shared between views: `reshape` of a contiguous
/// tensor, `permute`/`transpose`, `narrow`/`slice` and `expand` (broadcasting) move no data;
/// element-wise ops and reductions run the kernel crate's packed kernels
/// (`ternary_kernels::trit`: scalar, AVX2, AVX-512, rayon) on contiguous operands, gathering a
/// strided view into a contiguous buffer first.
///
/// Element-wise ops broadcast as NumPy does between tensors of the same rank: each dimension
/// must be equal, or 1 in one operand (which is repeated). Shape mismatches are
/// [`TritError::Shape`] naming both shapes from the `try_*` methods, and a panic with the same
/// message from the operators (`+ - * !` and unary `-`), as Burn's tensors do.
///
/// ```
/// use burn_ternary::trit::TritTensor;
///
/// let a = TritTensor::from_i8(&[1, 0, -1, 1, -1, 0], [2, 3])?;
/// let b = TritTensor::from_i8(&[1, -1, -1], [1, 3])?; // broadcast over the rows
/// assert_eq!((&a + &b).to_i8(), [1, -1, -1, 1, -1, -1]); // saturating
/// assert_eq!((&a * &b).to_i8(), [1, 0, 1, 1, 1, 0]);
/// assert_eq!(a.transpose().to_i8(), [1, 1, 0, -1, -1, 0]);
/// assert_eq!(a.sum(), 0);
/// # Ok::<(), burn_ternary::TritError>(())
/// ```
#[derive(Clone)]
pub struct TritTensor<const D: usize> {
    pub(super) data: Arc<PackedTrits>,
    pub(super) shape: [usize; D],
    /// Element strides; 0 along broadcast (expanded) dimensions.
    pub(super) strides: [usize; D],
    pub(super) offset: usize,
}

pub(super) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn contiguous_strides<const D: usize>(shape: [usize; D]) -> [usize; D] {
    let mut strides = [0; D];
    let mut s = 1;
    for d in (0..D).rev() {
        strides[d] = s;
        s *= shape[d];
    }
    strides
}

impl<const D: usize> TritTensor<D> {
    /// A tensor of `shape` over `data` (row-major, `data.len()` = the product of `shape`).
    ///
    /// # Errors
    /// [`TritError::Length`] when the lengths differ.
    pub fn from_packed(data: PackedTrits, shape: [usize; D]) -> Result<Self, TritError> {
        if data.len() != numel(&shape) {
            return Err(TritError::Length {
                shape: shape.to_vec(),
                len: data.len(),
            });
        }
        Ok(Self::contiguous_over(Arc::new(data), shape))
    }

    pub(super) fn contiguous_over(data: Arc<PackedTrits>, shape: [usize; D]) -> Self {
        Self {
            data,
            shape,
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// A tensor from row-major values in {−1, 0, 1}.
    ///
    /// # Errors
    /// [`TritError::Length`] when `values` does not hold the product of `shape` elements;
    /// [`TritError::Kernel`] naming the first index whose value is not a trit.
    pub fn from_i8(values: &[i8], shape: [usize; D]) -> Result<Self, TritError> {
        if values.len() != numel(&shape) {
            return Err(TritError::Length {
                shape: shape.to_vec(),
                len: values.len(),
            });
        }
        Self::from_packed(PackedTrits::from_i8(values)?, shape)
    }

    /// All zeros.
    pub fn zeros(shape: [usize; D]) -> Self {
        Self::contiguous_over(Arc::new(PackedTrits::zeros(numel(&shape))), shape)
    }

    /// The shape.
    pub fn dims(&self) -> [usize; D] {
        self.shape
    }

    /// Number of trits.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the elements are stored row-major without gaps (offset aside).
    pub fn is_contiguous(&self) -> bool {
        let want = contiguous_strides(self.shape);
        self.numel() == 0 || (0..D).all(|d| self.shape[d] == 1 || self.strides[d] == want[d])
    }

    /// The trit at a multi-index.
    ///
    /// # Panics
    /// When an index is out of range (names the index and the shape).
    pub fn get(&self, index: [usize; D]) -> i8 {
        assert!(
            (0..D).all(|d| index[d] < self.shape[d]),
            "TritTensor::get: index {index:?} out of range for shape {:?}",
            self.shape
        );
        self.data.get(self.position(&index))
    }

    fn position(&self, index: &[usize; D]) -> usize {
        self.offset + (0..D).map(|d| index[d] * self.strides[d]).sum::<usize>()
    }

    /// The elements in row-major order as `i8`.
    pub fn to_i8(&self) -> Vec<i8> {
        self.packed().to_i8()
    }

    /// The elements in row-major order, packed: the shared buffer itself when the tensor is
    /// contiguous from its start, else a gathered copy.
    pub fn packed(&self) -> Arc<PackedTrits> {
        let n = self.numel();
        if self.is_contiguous() {
            if self.offset == 0 && self.data.len() == n {
                return self.data.clone();
            }
            return Arc::new(self.data.slice(self.offset..self.offset + n));
        }
        // Gather: runs along the last dimension are copied whole when it is unit-stride.
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return Arc::new(PackedTrits::zeros(0));
        }
        let last = D - 1;
        let run = self.shape[last];
        let unit = self.strides[last] == 1;
        let mut index = [0usize; D];
        loop {
            let start = self.position(&index);
            if unit {
                out.extend(self.data.slice(start..start + run).to_i8());
            } else {
                out.extend((0..run).map(|j| self.data.get(start + j * self.strides[last])));
            }
            // Next index over all but the last dimension.
            let mut d = last;
            loop {
                if d == 0 {
                    return Arc::new(PackedTrits::from_i8(&out).expect("trits stay trits"));
                }
                d -= 1;
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }

    /// A contiguous copy (or the tensor itself when it already is).
    pub fn contiguous(&self) -> Self {
        if self.is_contiguous() && self.offset == 0 {
            return self.clone();
        }
        Self::contiguous_over(self.packed(), self.shape)
    }

    /// The same elements in another shape (row-major order kept); no copy when contiguous.
    ///
    /// # Panics
    /// When the element counts differ (names both shapes).
    pub fn reshape<const D2: usize>(&self, shape: [usize; D2]) -> TritTensor<D2> {
        assert_eq!(
            numel(&shape),
            self.numel(),
            "TritTensor::reshape: {:?} has {} trits, {shape:?} needs {}",
            self.shape,
            self.numel(),
            numel(&shape)
        );
        let c = self.contiguous();
        TritTensor {
            strides: contiguous_strides(shape),
            data: c.data,
            shape,
            offset: 0,
        }
    }

    /// Dimensions reordered: output dimension `i` is input dimension `axes[i]`. No copy.
    ///
    /// # Panics
    /// When `axes` is not a permutation of `0..D`.
    pub fn permute(&self, axes: [usize; D]) -> Self {
        let mut seen = [false; D];
        for &a in &axes {
            assert!(
                a < D && !seen[a],
                "TritTensor::permute: {axes:?} is not a permutation of 0..{D}"
            );
            seen[a] = true;
        }
        Self {
            data: self.data.clone(),
            shape: axes.map(|a| self.shape[a]),
            strides: axes.map(|a| self.strides[a]),
            offset: self.offset,
        }
    }

    /// Dimensions `a` and `b` swapped. No copy.
    pub fn swap_dims(&self, a: usize, b: usize) -> Self {
        let mut axes: [usize; D] = std::array::from_fn(|i| i);
        axes.swap(a, b);
        self.permute(axes)
    }

    /// The last two dimensions swapped (a matrix transpose). No copy.
    ///
    /// # Panics
    /// When `D < 2`.
    pub fn transpose(&self) -> Self {
        assert!(D >= 2, "TritTensor::transpose needs 2 dimensions, not {D}");
        self.swap_dims(D - 2, D - 1)
    }

    /// `len` elements of dimension `dim` from `start`. No copy.
    ///
    /// # Panics
    /// When the range leaves the dimension (names it and the shape).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Self {
        assert!(
            dim < D && start + len <= self.shape[dim],
            "TritTensor::narrow: dim {dim}, {start}..{} of shape {:?}",
            start + len,
            self.shape
        );
        let mut out = self.clone();
        out.shape[dim] = len;
        if len > 0 {
            out.offset += start * self.strides[dim];
        }
        out
    }

    /// A sub-block: `ranges[d]` of each dimension. No copy.
    pub fn slice(&self, ranges: [std::ops::Range<usize>; D]) -> Self {
        let mut out = self.clone();
        for (d, r) in ranges.into_iter().enumerate() {
            assert!(
                r.start <= r.end,
                "TritTensor::slice: decreasing range {r:?} in dim {d}"
            );
            out = out.narrow(d, r.start, r.end - r.start);
        }
        out
    }

    /// The tensor repeated along its size-1 dimensions to `shape` (stride 0). No copy.
    ///
    /// # Errors
    /// [`TritError::Shape`] when a dimension is neither equal nor 1.
    pub fn try_expand(&self, shape: [usize; D]) -> Result<Self, TritError> {
        let mut out = self.clone();
        for d in 0..D {
            if self.shape[d] == shape[d] {
                continue;
            }
            if self.shape[d] != 1 {
                return Err(TritError::Shape {
                    op: "expand",
                    lhs: self.shape.to_vec(),
                    rhs: shape.to_vec(),
                });
            }
            out.shape[d] = shape[d];
            out.strides[d] = 0;
        }
        Ok(out)
    }

    /// Tensors joined along `dim` (the other dimensions equal).
    ///
    /// # Errors
    /// [`TritError::Shape`] naming the first shape that does not fit; [`TritError::Empty`]
    /// for no tensors.
    pub fn cat(tensors: &[Self], dim: usize) -> Result<Self, TritError> {
        let first = tensors.first().ok_or(TritError::Empty { op: "cat" })?;
        assert!(dim < D, "TritTensor::cat: dim {dim} of a {D}-d tensor");
        let mut shape = first.shape;
        shape[dim] = 0;
        for t in tensors {
            if (0..D).any(|d| d != dim && t.shape[d] != first.shape[d]) {
                return Err(TritError::Shape {
                    op: "cat",
                    lhs: first.shape.to_vec(),
                    rhs: t.shape.to_vec(),
                });
            }
            shape[dim] += t.shape[dim];
        }
        // Row-major: for each index before `dim`, the blocks of every tensor in turn.
        let outer: usize = first.shape[..dim].iter().product();
        let parts: Vec<Vec<i8>> = tensors.iter().map(|t| t.to_i8()).collect();
        let blocks: Vec<usize> = tensors
            .iter()
            .map(|t| t.shape[dim..].iter().product())
            .collect();
        let mut out = Vec::with_capacity(numel(&shape));
        for o in 0..outer {
            for (p, &b) in parts.iter().zip(&blocks) {
                out.extend_from_slice(&p[o * b..(o + 1) * b]);
            }
        }
        Self::from_i8(&out, shape)
    }

    /// Tensors of equal shape stacked along a new dimension `dim` of a `D2 = D + 1`-d tensor.
    ///
    /// # Errors
    /// As [`TritTensor::cat`].
    ///
    /// # Panics
    /// When `D2 != D + 1` or `dim > D`.
    pub fn stack<const D2: usize>(
        tensors: &[Self],
        dim: usize,
    ) -> Result<TritTensor<D2>, TritError> {
        assert!(
            D2 == D + 1 && dim <= D,
            "TritTensor::stack: {D}-d tensors into {D2} dimensions at dim {dim}"
        );
        let lifted: Vec<TritTensor<D2>> = tensors
            .iter()
            .map(|t| {
                let shape: [usize; D2] = std::array::from_fn(|i| match i.cmp(&dim) {
                    std::cmp::Ordering::Less => t.shape[i],
                    std::cmp::Ordering::Equal => 1,
                    std::cmp::Ordering::Greater => t.shape[i - 1],
                });
                t.reshape(shape)
            })
            .collect();
        TritTensor::cat(&lifted, dim)
    }
}
