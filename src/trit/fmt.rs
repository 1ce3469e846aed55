//! `Display` and `Debug` of [`TritTensor`]: nested brackets of `-`, `0`, `+`.

use std::fmt;

use super::tensor::TritTensor;

fn symbol(t: i8) -> char {
    match t {
        -1 => '-',
        0 => '0',
        _ => '+',
    }
}

fn nested(f: &mut fmt::Formatter<'_>, values: &[i8], shape: &[usize]) -> fmt::Result {
    match shape {
        [] => write!(f, "{}", symbol(values[0])),
        [n] => {
            write!(f, "[")?;
            for (i, &v) in values.iter().take(*n).enumerate() {
                if i > 0 {
                    write!(f, " ")?;
                }
                write!(f, "{}", symbol(v))?;
            }
            write!(f, "]")
        }
        [n, rest @ ..] => {
            let block: usize = rest.iter().product();
            write!(f, "[")?;
            for i in 0..*n {
                if i > 0 {
                    write!(f, ", ")?;
                }
                nested(f, &values[i * block..(i + 1) * block], rest)?;
            }
            write!(f, "]")
        }
    }
}

impl<const D: usize> fmt::Display for TritTensor<D> {
    /// `[[+ 0 -], [- - +]]` for a `[2, 3]` tensor.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        nested(f, &self.to_i8(), &self.shape)
    }
}

impl<const D: usize> fmt::Debug for TritTensor<D> {
    /// `TritTensor { shape: [2, 3], trits: [[+ 0 -], [- - +]] }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TritTensor {{ shape: {:?}, trits: {self} }}", self.shape)
    }
}
