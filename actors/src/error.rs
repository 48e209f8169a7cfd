//! The runtime's errors: `InferError` (a request failed) and `ControlError` (a load, unload or
//! routing change failed), each with its [`ErrorType`] (ARCHITECTURE.md, "Errors"). A closed
//! actor mailbox becomes `ShuttingDown` here, inside the runtime, and nowhere else.

use std::time::Duration;

use burnserve_models::{ErrorType, ModelError};
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
    /// The work queued ahead cannot finish within the request's deadline (by the version's
    /// running estimate of a pass): refused at once instead of a 504 later.
    #[error("{0}")]
    CannotMeetDeadline(Box<DeadlineRefusal>),
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
    pub fn error_type(&self) -> ErrorType {
        match self {
            InferError::ModelNotFound(_)
            | InferError::VersionNotFound { .. }
            | InferError::NoDefaultVersion(_) => ErrorType::ModelNotFound,
            InferError::InvalidInput(_) => ErrorType::InvalidInput,
            InferError::SchemaMismatch(_) => ErrorType::SchemaMismatch,
            InferError::Overloaded { .. } | InferError::CannotMeetDeadline(_) => {
                ErrorType::Overloaded
            }
            InferError::NotReady(_) => ErrorType::NotReady,
            InferError::ShuttingDown => ErrorType::ShuttingDown,
            InferError::Timeout(_) => ErrorType::Timeout,
            InferError::Inference(_) => ErrorType::Inference,
        }
    }

    /// How long a client should back off, for errors that ask it to.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            InferError::Overloaded { retry_after, .. } => Some(*retry_after),
            InferError::CannotMeetDeadline(refusal) => Some(refusal.retry_after),
            _ => None,
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

impl From<actix::MailboxError> for InferError {
    fn from(_: actix::MailboxError) -> Self {
        InferError::ShuttingDown
    }
}

/// Why a control-plane operation (load, reload, unload, routing, reconcile) failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ControlError {
    /// No such model or version (in the repository, or loaded).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (bad `model.toml` override, bad routing weights).
    #[error("{0}")]
    Invalid(String),
    /// The version's files could not be served (missing or bad weights, wrong shapes).
    #[error("{0}")]
    LoadFailed(String),
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The supervisor died while it held the operation (and was restarted): retry it.
    #[error("{0}")]
    Interrupted(String),
    /// Not allowed in this configuration (the repository API under `--model-control-mode none`
    /// or `poll`).
    #[error("{0}")]
    Forbidden(String),
}

impl ControlError {
    pub fn error_type(&self) -> ErrorType {
        match self {
            ControlError::NotFound(_) => ErrorType::ModelNotFound,
            ControlError::Invalid(_) => ErrorType::InvalidInput,
            ControlError::LoadFailed(_) => ErrorType::LoadFailed,
            ControlError::ShuttingDown => ErrorType::ShuttingDown,
            ControlError::Interrupted(_) => ErrorType::NotReady,
            ControlError::Forbidden(_) => ErrorType::Forbidden,
        }
    }
}

impl From<actix::MailboxError> for ControlError {
    fn from(_: actix::MailboxError) -> Self {
        ControlError::ShuttingDown
    }
}

/// Routing lookups answer `InferError`; on the control plane a missing model is `NotFound`.
impl From<InferError> for ControlError {
    fn from(err: InferError) -> Self {
        match err {
            InferError::ModelNotFound(_)
            | InferError::VersionNotFound { .. }
            | InferError::NoDefaultVersion(_) => ControlError::NotFound(err.to_string()),
            InferError::InvalidInput(_) | InferError::SchemaMismatch(_) => {
                ControlError::Invalid(err.to_string())
            }
            InferError::ShuttingDown => ControlError::ShuttingDown,
            other => ControlError::LoadFailed(other.to_string()),
        }
    }
}

/// Why a request was refused before queueing: by the version's estimate, the work ahead of it
/// cannot finish within its deadline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model '{model}' version '{version}' cannot answer within {timeout:?}: the work queued ahead needs about {expected:?}")]
pub struct DeadlineRefusal {
    pub model: String,
    pub version: String,
    pub expected: Duration,
    pub timeout: Duration,
    pub retry_after: Duration,
}
