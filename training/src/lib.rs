//! Datasets, models and `Learner` wiring shared by the burn-ternary examples.
