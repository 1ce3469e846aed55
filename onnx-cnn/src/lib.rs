//! A CNN imported from ONNX (`fixtures/cnn.onnx`, exported by `fixtures/make_fixtures.py`)
//! with its weighted layers generated as burn-ternary layers by burn-onnx's `ModelGen` (the
//! output is committed under `generated/`; `build.rs` says how it is regenerated): `conv2d2`
//! and `linear1` are `TernaryConv2d` / `TernaryLinear`, `conv2d1` (the first convolution,
//! PyTorch's batch norm folded into it on export) a stock full-precision `Conv2d`.

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_store::{BurnpackStore, ModuleSnapshot};
use burn_ternary::import::{ImportOptions, read_tensors};

/// The generated model with ternary layers.
#[allow(clippy::all, missing_docs, unused)]
pub mod cnn {
    include!("../generated/model/cnn.rs");
}

/// The same ONNX file generated with every layer stock (the filter selects nothing).
#[allow(clippy::all, missing_docs, unused)]
pub mod cnn_f32 {
    include!("../generated/model_f32/cnn.rs");
}

/// `fixtures/cnn.onnx` with every layer ternary: TWN, per-tensor scales, int8 activations.
#[allow(clippy::all, missing_docs, unused)]
pub mod cnn_twn {
    include!("../generated/model_twn/cnn.rs");
}

/// `fixtures/seq.onnx` (linear layers on a 3-D input) with ternary layers.
#[allow(clippy::all, missing_docs, unused)]
pub mod seq {
    include!("../generated/model_seq/seq.rs");
}

/// `fixtures/seq.onnx` with every layer stock.
#[allow(clippy::all, missing_docs, unused)]
pub mod seq_f32 {
    include!("../generated/model_seq_f32/seq.rs");
}

pub use cnn::Model;

/// The repository's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A file the ONNX generator wrote (committed under `generated/`, see `build.rs`), e.g.
/// `generated("model_seq/seq.bpk")`.
pub fn generated(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("generated")
        .join(path)
}

/// The weights the generator converted from the ONNX file.
pub const WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/generated/model/cnn.bpk");

/// The imported model on `device`, weights read from `path` (a `.bpk` written by the build
/// script). Unlike the generated `Model::from_file`, a missing or corrupt file is an error,
/// not a panic.
pub fn load_from(path: impl AsRef<Path>, device: &Device) -> Result<Model, Box<dyn Error>> {
    load_into(Model::new(device), path)
}

/// Loads a `.bpk` into a freshly built generated model, returning the store's error.
pub fn load_into<M: Module>(mut model: M, path: impl AsRef<Path>) -> Result<M, Box<dyn Error>> {
    let mut store = BurnpackStore::from_file(path.as_ref());
    model
        .load_from(&mut store)
        .map_err(|e| format!("{}: {e}", path.as_ref().display()))?;
    Ok(model)
}

/// The imported model on `device` with the weights converted at build time.
pub fn load(device: &Device) -> Result<Model, Box<dyn Error>> {
    load_from(WEIGHTS, device)
}

/// The all-stock f32 model on `device`.
pub fn load_f32(device: &Device) -> Result<cnn_f32::Model, Box<dyn Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/generated/model_f32/cnn.bpk");
    load_into(cnn_f32::Model::new(device), path)
}

/// A fixture's input `x` and PyTorch's outputs `y_f32`, `y_ternary` (`<name>_io.safetensors`).
pub fn io(name: &str) -> Result<FixtureIo, Box<dyn Error>> {
    let file = format!("{name}_io.safetensors");
    let t = read_tensors(&fixtures().join(&file), &ImportOptions::new())?;
    let get = |k: &str| -> Result<TensorData, Box<dyn Error>> {
        Ok(t.get(k)
            .ok_or_else(|| format!("{file} has no {k}"))?
            .clone())
    };
    let vec = |k: &str| -> Result<Vec<f32>, Box<dyn Error>> {
        get(k)?
            .try_into_vec::<f32>()
            .map_err(|e| format!("{k}: {e:?}").into())
    };
    Ok((get("x")?, vec("y_f32")?, vec("y_ternary")?))
}

/// `(field, module type)` of every layer of a model, e.g. `("conv2d2", "TernaryConv2d")`.
pub fn layers<M: Module>(module: &M) -> Vec<(String, String)> {
    // `enter_module` names a child and the type of the module containing it: a layer's type
    // shows up when its own parameters are entered.
    #[derive(Default)]
    struct Names {
        layers: Vec<(String, String)>,
        field: Option<String>,
        depth: usize,
    }
    impl ModuleVisitor for Names {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            match self.depth {
                0 => self.field = Some(name.to_string()),
                1 => {
                    if let Some(field) = self.field.take() {
                        let ty = container_type.trim_start_matches("Struct:");
                        self.layers.push((field, ty.to_string()));
                    }
                }
                _ => {}
            }
            self.depth += 1;
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.depth -= 1;
        }
    }
    let mut names = Names::default();
    module.visit(&mut names);
    names.layers
}

/// PyTorch's input `x`, f32 outputs and ternarized-model outputs.
pub type FixtureIo = (TensorData, Vec<f32>, Vec<f32>);

/// PyTorch's input `x` `[2, 1, 8, 8]` and outputs `y_f32`, `y_ternary` `[2, 10]` of the CNN.
pub fn fixture_io() -> Result<FixtureIo, Box<dyn Error>> {
    io("cnn")
}

/// Bytes of every parameter a module stores (float params at their dtype's width, the packed
/// i32 words at 4 bytes).
pub fn weight_bytes<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val();
            self.0 += t.shape().num_elements() * t.dtype().size();
        }
        fn visit_int<const D: usize>(&mut self, p: &Param<Tensor<D, Int>>) {
            let t = p.val();
            self.0 += t.shape().num_elements() * t.dtype().size();
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}
