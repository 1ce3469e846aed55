//! `tokenizer.json` (Hugging Face's format) through the `tokenizers` crate.

use std::path::{Path, PathBuf};

use crate::config::BitNetConfig;
use crate::error::BitNetError;

/// A tokenizer checked against the model it is used with.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl Tokenizer {
    /// Reads `tokenizer.json`. Errors ([`BitNetError::Tokenizer`]): unreadable or not a
    /// tokenizer file.
    pub fn from_file(path: &Path) -> Result<Self, BitNetError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| BitNetError::Tokenizer {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Ids the tokenizer can produce (its vocabulary with added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Refuses a tokenizer whose ids do not all fit the model's embedding (a model may have
    /// more rows than the tokenizer has tokens — padded vocabularies — but never fewer).
    pub fn check(&self, config: &BitNetConfig) -> Result<(), BitNetError> {
        if self.vocab_size() > config.vocab_size {
            return Err(BitNetError::Tokenizer {
                path: self.path.clone(),
                msg: format!(
                    "{} tokens, but the model's vocab_size is {}: this tokenizer is not the model's",
                    self.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// Token ids of `text`, with the special tokens (BOS) the tokenizer's post-processor adds.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, BitNetError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| BitNetError::Tokenizer {
                path: self.path.clone(),
                msg: format!("encoding {text:?}: {e}"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, BitNetError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| BitNetError::Tokenizer {
                path: self.path.clone(),
                msg: format!("decoding {ids:?}: {e}"),
            })
    }
}
