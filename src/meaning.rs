//! The optional static embedding model: `digest.embedding_model` names a local folder
//! holding a model2vec model (`config.json`, `tokenizer.json`, `model.safetensors`, as
//! published, e.g. minishlab/potion-base-8M). With it, each run embeds its candidates
//! once and the ranking also admits papers close in meaning to a topic's best papers
//! (docs/ranking.md, "Similar in meaning").
//!
//! Only builds with the `embeddings` feature read models; the config refuses the key in
//! other builds. Nothing here downloads: the model2vec crate is built `local-only`, so a
//! folder that does not exist is an error, never a request to the Hugging Face Hub.

use crate::model::Paper;
use crate::rank::Meanings;
use std::path::{Path, PathBuf};

/// Whether this build can read an embedding model (the `embeddings` feature).
pub const AVAILABLE: bool = cfg!(feature = "embeddings");

/// A model loaded from its folder, ready to embed papers.
pub struct Model {
    path: PathBuf,
    #[cfg(feature = "embeddings")]
    inner: model2vec_rs::model::StaticModel,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What went wrong with the model: the folder and the reason, for the caller to report
/// against the config key that named it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ModelError {
    pub path: PathBuf,
    pub message: String,
}

impl Model {
    /// Reads the model in `path`. Fails, naming the folder, when the folder holds no
    /// model2vec model, a file is not what it should be, or this build has no support.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let fail = |message: String| ModelError { path: path.to_path_buf(), message };
        if !path.is_dir() {
            return Err(fail(
                "not a folder; expected a model2vec model folder (config.json, tokenizer.json, model.safetensors)"
                    .into(),
            ));
        }
        #[cfg(feature = "embeddings")]
        {
            // The crate reports layout and parse problems as errors; a panic inside a
            // tokenizer it builds is caught so that a bad file never takes the run down.
            let loaded = std::panic::catch_unwind(|| {
                model2vec_rs::model::StaticModel::from_pretrained(path, None, Some(true), None)
            })
            .map_err(|_| fail("the model files could not be read (the tokenizer panicked)".into()))?
            .map_err(|e| fail(format!("{e:#}")))?;
            if loaded.dim() == 0 {
                return Err(fail("the model's vectors have no dimensions".into()));
            }
            Ok(Model { path: path.to_path_buf(), inner: loaded })
        }
        #[cfg(not(feature = "embeddings"))]
        {
            Err(fail(
                "this paper-digest was built without the `embeddings` feature; rebuild it with \
                 `cargo build --release --features embeddings`"
                    .into(),
            ))
        }
    }

    /// The folder the model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One vector per paper, of its title and abstract.
    pub fn embed(&self, papers: &[Paper]) -> Result<Meanings, ModelError> {
        let texts: Vec<String> = papers.iter().map(|p| format!("{}. {}", p.title, p.summary)).collect();
        let vectors = self.encode(&texts)?;
        Meanings::new(vectors, papers.len()).map_err(|e| self.error(e.to_string()))
    }

    #[cfg(feature = "embeddings")]
    fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.encode(texts)))
            .map_err(|_| self.error("the model's tokenizer failed on a paper's text".into()))
    }

    #[cfg(not(feature = "embeddings"))]
    fn encode(&self, _texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        Err(self.error("this paper-digest was built without the `embeddings` feature".into()))
    }

    fn error(&self, message: String) -> ModelError {
        ModelError { path: self.path.clone(), message }
    }
}
