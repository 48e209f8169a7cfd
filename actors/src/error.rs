//! `InferError`: why a request failed, with the `error_type` shared by JSON bodies and metrics.

use std::time::Duration;

use burnserve_models::ModelError;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum InferError {
    #[error("model '{0}' is not loaded")]
    ModelNotFound(String),
    #[error("model '{model}' has no loaded version '{version}'")]
    VersionNotFound { model: String, version: String },
    #[error("model '{0}' has no default version; name one")]
    NoDefaultVersion(String),
    /// Malformed request (400).
    #[error("{0}")]
    InvalidInput(String),
    /// Well-formed request that does not fit the model's schema (422).
    #[error("{0}")]
    SchemaMismatch(String),
    #[error("model '{model}' version '{version}' is overloaded: its queue of {capacity} is full")]
    Overloaded {
        model: String,
        version: String,
        capacity: usize,
        retry_after: Duration,
    },
    #[error("{0}")]
    NotReady(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("deadline of {0:?} exceeded before the result was ready")]
    Timeout(Duration),
    #[error("{0}")]
    Inference(String),
}

impl InferError {
    /// The `error_type` of DESIGN.md §3.
    pub fn error_type(&self) -> &'static str {
        match self {
            InferError::ModelNotFound(_)
            | InferError::VersionNotFound { .. }
            | InferError::NoDefaultVersion(_) => "model_not_found",
            InferError::InvalidInput(_) | InferError::SchemaMismatch(_) => "invalid_input",
            InferError::Overloaded { .. } => "overloaded",
            InferError::NotReady(_) => "not_ready",
            InferError::ShuttingDown => "shutting_down",
            InferError::Timeout(_) => "timeout",
            InferError::Inference(_) => "inference_error",
        }
    }
}

impl From<ModelError> for InferError {
    fn from(err: ModelError) -> Self {
        match err {
            ModelError::InvalidInput(msg) => InferError::InvalidInput(msg),
            ModelError::SchemaMismatch(msg) => InferError::SchemaMismatch(msg),
            ModelError::Load(_) => InferError::NotReady(err.to_string()),
            ModelError::Inference(_) | ModelError::Fatal(_) => {
                InferError::Inference(err.to_string())
            }
        }
    }
}
