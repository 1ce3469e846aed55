//! One call to pack every ternary layer of a model: a `ModuleMapper` that walks the model,
//! and inside each `TernaryLinear` / `TernaryConv2d` reads the recorded scheme, ternarizes the
//! latent weight, and swaps in the packed words and scales.
//!
//! It relies on the field order of those two structs (`scheme`, `weight`, `packed`,
//! `scales`), which the derive visits in declaration order; unit tests pin it.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Int, Tensor};

use super::packing::{pack, scheme_from_codes};
use crate::error::TernaryError;
use crate::quant::{ternarize_for_packing, to_rows};

const LAYERS: [&str; 2] = ["Struct:TernaryLinear", "Struct:TernaryConv2d"];

#[derive(Default)]
struct Freezer {
    /// Path of the enclosing modules, for error messages.
    path: Vec<String>,
    /// Container type of each `path` entry (`Enum:*` entries are variant names).
    containers: Vec<String>,
    /// The field of a ternary layer being visited, if any.
    field: Option<String>,
    scheme: Option<Vec<i64>>,
    stash: Option<(Tensor<2, Int>, Tensor<1>)>,
    error: Option<TernaryError>,
    /// Layers (by path) whose latent weights already hold ternary values, with their scales:
    /// packed as they are instead of being ternarized again.
    given_scales: HashMap<String, Tensor<1>>,
    /// Layers (by path) whose packed words and scales were computed elsewhere: swapped in
    /// as they are; the latent weight is not read.
    given_packed: HashMap<String, (Tensor<2, Int>, Tensor<1>)>,
}

impl Freezer {
    fn layer_path(&self) -> String {
        self.path[..self.path.len().saturating_sub(1)].join(".")
    }

    /// The layer's path as checkpoints name it: without enum variant names.
    fn checkpoint_path(&self) -> String {
        let n = self.path.len().saturating_sub(1);
        self.path[..n]
            .iter()
            .zip(&self.containers)
            .filter(|(_, c)| !c.starts_with("Enum:"))
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn with_dims<const D: usize, K: burn::tensor::kind::Basic>(t: Tensor<2, K>) -> Tensor<D, K> {
    let [a, b] = t.dims();
    let mut dims = [1usize; D];
    dims[0] = a;
    dims[D - 1] = b;
    t.reshape(dims)
}

impl ModuleMapper for Freezer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
        self.field = LAYERS.contains(&container_type).then(|| name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
        self.field = None;
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        match self.field.as_deref() {
            Some("scheme") => {
                let codes = param
                    .val()
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .ok();
                self.scheme = codes;
                param
            }
            Some("packed") if D == 2 => match self.stash.as_ref() {
                Some((words, _)) => {
                    let words = words.clone();
                    param.map(|_| with_dims(words))
                }
                None => param,
            },
            _ => param,
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.field.as_deref() {
            Some("weight") if self.error.is_none() => {
                let Some(codes) = self.scheme.take() else {
                    return param;
                };
                let w = param.val();
                let dims = w.dims();
                if let Some(stash) = self.given_packed.remove(&self.checkpoint_path()) {
                    self.stash = Some(stash);
                    let mut empty = dims;
                    empty[0] = 0;
                    let device = w.device();
                    return param.map(|_| Tensor::zeros(empty, &device));
                }
                if dims[0] == 0 || (D == 2 && dims[1] == 0) {
                    return param; // already packed
                }
                // Linear weights are [in, out] (channels on dim 1); conv filters lead with
                // c_out.
                let channel_dim = if D == 2 { 1 } else { 0 };
                let (rows, s) = match self.given_scales.remove(&self.checkpoint_path()) {
                    Some(s) => (to_rows(w, channel_dim), s),
                    None => {
                        let (quantizer, granularity) = scheme_from_codes(&codes);
                        ternarize_for_packing(w, quantizer, granularity, channel_dim)
                    }
                };
                match pack(rows, s, &self.layer_path()) {
                    Ok(stash) => {
                        self.stash = Some(stash);
                        let mut empty = dims;
                        empty[0] = 0;
                        let device = param.val().device();
                        param.map(|_| Tensor::zeros(empty, &device))
                    }
                    Err(e) => {
                        self.error = Some(e);
                        param
                    }
                }
            }
            Some("scales") if D == 1 => match self.stash.take() {
                Some((_, scales)) => {
                    let [n] = scales.dims();
                    let mut dims = [1usize; D];
                    dims[0] = n;
                    param.map(|_| scales.reshape(dims))
                }
                None => param,
            },
            _ => param,
        }
    }
}

/// Packs every [`TernaryLinear`](super::TernaryLinear) and
/// [`TernaryConv2d`](super::TernaryConv2d) of `model`, wherever they sit in it, with the
/// ternary values its training forward used. Other layers are left as they are.
///
/// Errors, naming the layer, on non-finite weights; the model is then returned to no one,
/// so nothing half-packed escapes.
pub fn freeze<M: Module>(model: M) -> Result<M, TernaryError> {
    freeze_with_scales(model, HashMap::new())
}

/// [`freeze`], except that the layers named in `given_scales` (module paths such as
/// `"fc1"`) already hold ternary values in their latent weights: those are packed with the
/// given scales (1 or one per output channel) as they are, without loss. Paths are written as
/// checkpoints name layers: field names and indices, without enum variant names.
pub(crate) fn freeze_with_scales<M: Module>(
    model: M,
    given_scales: HashMap<String, Tensor<1>>,
) -> Result<M, TernaryError> {
    freeze_with(model, given_scales, HashMap::new())
}

/// [`freeze_with_scales`], plus layers whose packed words and scales are given outright (see
/// `crate::import::load_packed`, which quantizes straight from the checkpoint).
pub(crate) fn freeze_with<M: Module>(
    model: M,
    given_scales: HashMap<String, Tensor<1>>,
    given_packed: HashMap<String, (Tensor<2, Int>, Tensor<1>)>,
) -> Result<M, TernaryError> {
    let mut freezer = Freezer {
        given_scales,
        given_packed,
        ..Freezer::default()
    };
    let model = model.map(&mut freezer);
    match freezer.error {
        Some(e) => Err(e),
        None => Ok(model),
    }
}
