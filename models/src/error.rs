//! `ModelError`: everything that can go wrong inside a model, with the `error_type` it maps to.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    /// The request itself is malformed (data does not match its own declared shape, not finite).
    #[error("{0}")]
    InvalidInput(String),
    /// The request parses but does not fit the model's input schema (shape, datatype).
    #[error("{0}")]
    SchemaMismatch(String),
    /// A model version could not be loaded (missing file, bad weights, wrong shapes).
    #[error("failed to load model: {0}")]
    Load(String),
    /// A forward pass failed; the version keeps serving.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The model is in a state it cannot recover from (device lost); its executor must stop
    /// and the supervisor rebuilds the version.
    #[error("fatal model error: {0}")]
    Fatal(String),
}

impl ModelError {
    /// The `error_type` of DESIGN.md §3, used in JSON bodies and metric labels.
    pub fn error_type(&self) -> &'static str {
        match self {
            ModelError::InvalidInput(_) | ModelError::SchemaMismatch(_) => "invalid_input",
            ModelError::Load(_) => "not_ready",
            ModelError::Inference(_) | ModelError::Fatal(_) => "inference_error",
        }
    }
}
