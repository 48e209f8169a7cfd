//! `ErrorType`, the one table of error kinds every crate shares (JSON `error_type`, the
//! `inference_errors_total` label, the HTTP status mapping in `src/http/error.rs`), and
//! `ModelError`: everything that can go wrong inside a model.

use std::fmt;

use thiserror::Error;

/// The kind of a failure, as clients and dashboards see it (ARCHITECTURE.md, "Errors").
/// `as_str` is the `error_type` word of JSON bodies and metric labels; two variants may share a
/// word where they differ only in HTTP status (`SchemaMismatch` is an `invalid_input` answered
/// 422, `LoadFailed` a `load_failed` answered 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// The request is malformed (400).
    InvalidInput,
    /// The request parses but does not fit the model (422, `invalid_input`).
    SchemaMismatch,
    Unauthorized,
    Forbidden,
    ModelNotFound,
    NotFound,
    /// The route exists, not for this method (405 with `Allow`).
    MethodNotAllowed,
    /// The body is larger than `server.max_body_bytes` (413).
    PayloadTooLarge,
    /// The body did not arrive within `server.body_timeout_ms` (408).
    RequestTimeout,
    /// A tenant is over its request rate or in-flight quota (429 with `Retry-After`).
    RateLimited,
    /// A version's files cannot be served (422).
    LoadFailed,
    Overloaded,
    NotReady,
    ShuttingDown,
    Timeout,
    Inference,
    /// The request contradicts stored state: an `Idempotency-Key` reused with another body, a
    /// job that can no longer be cancelled (409).
    Conflict,
    /// The job store is at `jobs.max_pending` or `jobs.max_store_bytes` (503 with
    /// `Retry-After`).
    StoreFull,
    /// The job store cannot write (a full disk, an I/O error) and is recovering by itself (503
    /// with `Retry-After`).
    StoreUnavailable,
    /// The server failed on its own side outside inference (the job store's disk) (500).
    Internal,
}

impl ErrorType {
    /// Every kind (the OpenAPI document lists their words).
    pub const ALL: [ErrorType; 20] = [
        ErrorType::InvalidInput,
        ErrorType::SchemaMismatch,
        ErrorType::Unauthorized,
        ErrorType::Forbidden,
        ErrorType::ModelNotFound,
        ErrorType::NotFound,
        ErrorType::MethodNotAllowed,
        ErrorType::PayloadTooLarge,
        ErrorType::RequestTimeout,
        ErrorType::RateLimited,
        ErrorType::LoadFailed,
        ErrorType::Overloaded,
        ErrorType::NotReady,
        ErrorType::ShuttingDown,
        ErrorType::Timeout,
        ErrorType::Inference,
        ErrorType::Conflict,
        ErrorType::StoreFull,
        ErrorType::StoreUnavailable,
        ErrorType::Internal,
    ];

    /// The word of the error contract.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidInput | ErrorType::SchemaMismatch => "invalid_input",
            ErrorType::Unauthorized => "unauthorized",
            ErrorType::Forbidden => "forbidden",
            ErrorType::ModelNotFound => "model_not_found",
            ErrorType::NotFound => "not_found",
            ErrorType::MethodNotAllowed => "method_not_allowed",
            ErrorType::PayloadTooLarge => "payload_too_large",
            ErrorType::RequestTimeout => "request_timeout",
            ErrorType::RateLimited => "rate_limited",
            ErrorType::LoadFailed => "load_failed",
            ErrorType::Overloaded => "overloaded",
            ErrorType::NotReady => "not_ready",
            ErrorType::ShuttingDown => "shutting_down",
            ErrorType::Timeout => "timeout",
            ErrorType::Inference => "inference_error",
            ErrorType::Conflict => "conflict",
            ErrorType::StoreFull => "store_full",
            ErrorType::StoreUnavailable => "store_unavailable",
            ErrorType::Internal => "internal_error",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub fn error_type(&self) -> ErrorType {
        match self {
            ModelError::InvalidInput(_) => ErrorType::InvalidInput,
            ModelError::SchemaMismatch(_) => ErrorType::SchemaMismatch,
            ModelError::Load(_) => ErrorType::NotReady,
            ModelError::Inference(_) | ModelError::Fatal(_) => ErrorType::Inference,
        }
    }
}
