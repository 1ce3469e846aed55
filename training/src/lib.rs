//! Datasets, models and `Learner` wiring shared by the burn-ternary examples.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod mnist;
pub mod model;

pub use data::DataError;
