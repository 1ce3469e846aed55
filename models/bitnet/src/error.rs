//! Errors of loading and running a BitNet model.

use std::path::PathBuf;

use burn_ternary::import::ImportError;
use thiserror::Error;

/// What went wrong, naming the file, tensor or value.
#[derive(Debug, Error)]
pub enum BitNetError {
    /// Reading the checkpoint failed (a missing shard, a corrupt file, a bad packed tensor).
    #[error(transparent)]
    Import(#[from] ImportError),
    /// `config.json` is unreadable, not JSON, or has a value this implementation refuses.
    #[error("{path}: {msg}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The checkpoint lacks a tensor the config implies.
    #[error("the checkpoint has no tensor {name} (expected shape {expected:?})")]
    MissingTensor {
        /// The tensor's checkpoint name.
        name: String,
        /// Its shape per the config.
        expected: Vec<usize>,
    },
    /// A tensor's shape is not what the config implies.
    #[error("{name}: shape {actual:?} in the checkpoint, {expected:?} per config.json")]
    Shape {
        /// The tensor's checkpoint name.
        name: String,
        /// Shape per the config.
        expected: Vec<usize>,
        /// Shape in the file.
        actual: Vec<usize>,
    },
    /// A tensor cannot be used as this layer (a non-ternary value, a non-float norm, …).
    #[error("{name}: {msg}")]
    Tensor {
        /// The tensor's checkpoint name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The tokenizer cannot be read or does not fit the model.
    #[error("tokenizer {path}: {msg}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A prompt plus the requested new tokens do not fit the context.
    #[error(
        "{prompt} prompt tokens + {new} new tokens exceed the context of {context} positions (max_position_embeddings)"
    )]
    ContextOverflow {
        /// Prompt length in tokens.
        prompt: usize,
        /// Tokens requested.
        new: usize,
        /// `max_position_embeddings`.
        context: usize,
    },
    /// An empty prompt (nothing to condition on; a tokenizer adds BOS unless told not to).
    #[error("empty prompt: at least one token is needed")]
    EmptyPrompt,
    /// A token id outside the vocabulary.
    #[error("token id {id} at position {position} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Its index in the input.
        position: usize,
        /// `vocab_size`.
        vocab: usize,
    },
    /// Training data or options that cannot make a run (too little text for one window, a
    /// zero batch size, checkpoints already in the output directory, …).
    #[error("{0}")]
    Data(String),
    /// Reading or writing a file other than a checkpoint (see [`BitNetError::io`]).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BitNetError {
    /// [`BitNetError::Io`] for `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        BitNetError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
