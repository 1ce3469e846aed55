//! Datasets, models and `Learner` wiring shared by the burn-ternary examples.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cifar;
pub mod data;
pub mod download;
pub mod mnist;
pub mod model;
pub mod progress;
pub mod resnet;
pub mod run;
pub mod trit_mlp;

pub use data::DataError;
pub use run::{Args, Summary};
