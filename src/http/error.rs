//! `ApiError`: every failed HTTP request becomes `{"error", "error_type"}`; its `ErrorType` gives
//! the word and, through [`status_of`], the one status mapping (ARCHITECTURE.md, "Errors");
//! `overloaded` adds `Retry-After`.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use burnserve_actors::{ControlError, ErrorType, InferError};
use serde_json::json;

use crate::edge::access::Throttled;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Infer(#[from] InferError),
    /// The body could not be read as the request type.
    #[error("{0}")]
    BadRequest(String),
    #[error("no route for {0}")]
    NoRoute(String),
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Missing or wrong bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// The route is switched off by configuration.
    #[error("{0}")]
    Forbidden(String),
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("the request body is larger than {setting} ({limit} bytes)")]
    PayloadTooLarge {
        limit: usize,
        /// The setting that sets `limit`.
        setting: &'static str,
    },
    /// The body did not arrive within `server.body_timeout_ms`.
    #[error("{message}")]
    RequestTimeout { message: String },
    /// A tenant over its quota.
    #[error("tenant '{}' is over its quota ({}); retry after {} s", .0.tenant, .0.quota, retry_secs(.0.retry_after))]
    RateLimited(Throttled),
    /// The async jobs API: unknown job, conflict, full store, store failure.
    #[error(transparent)]
    Jobs(burnserve_actors::jobs::JobError),
    /// A source that sent too many wrong admin tokens, refused unchecked for a while.
    #[error("too many wrong admin tokens from this address; retry after {} s", retry_secs(*retry_after))]
    TooManyFailures { retry_after: Duration },
    /// The server holds as much as it takes of something strangers send (request bodies in
    /// flight, open gRPC calls): `overloaded`, retry in a second.
    #[error("{0}")]
    Busy(String),
}

/// The longest error message sent (HTTP body, gRPC `grpc-message`): what a client sent and is
/// echoed (a 10,000-character model name) is cut to fit, keeping both ends of the message.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// `message` cut to [`MAX_ERROR_MESSAGE`] bytes at character boundaries: its head, a note of
/// how much was cut, and its tail.
pub fn bounded_message(message: String) -> String {
    if message.len() <= MAX_ERROR_MESSAGE {
        return message;
    }
    let floor = |at: usize| {
        (0..=at)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0)
    };
    let ceil = |at: usize| {
        (at..=message.len())
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(message.len())
    };
    let head = floor(MAX_ERROR_MESSAGE * 5 / 8);
    let tail = ceil(message.len() - MAX_ERROR_MESSAGE / 4);
    format!(
        "{} …[{} bytes cut]… {}",
        &message[..head],
        tail - head,
        &message[tail..]
    )
}

/// `Retry-After` seconds: rounded up, at least 1.
fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl ApiError {
    pub fn error_type(&self) -> ErrorType {
        match self {
            ApiError::Infer(err) => err.error_type(),
            ApiError::BadRequest(_) => ErrorType::InvalidInput,
            ApiError::NoRoute(_) => ErrorType::NotFound,
            ApiError::Control(err) => err.error_type(),
            ApiError::Unauthorized(_) => ErrorType::Unauthorized,
            ApiError::Forbidden(_) => ErrorType::Forbidden,
            ApiError::MethodNotAllowed { .. } => ErrorType::MethodNotAllowed,
            ApiError::PayloadTooLarge { .. } => ErrorType::PayloadTooLarge,
            ApiError::RequestTimeout { .. } => ErrorType::RequestTimeout,
            ApiError::RateLimited(_) => ErrorType::RateLimited,
            ApiError::Jobs(err) => err.error_type(),
            ApiError::Busy(_) => ErrorType::Overloaded,
            ApiError::TooManyFailures { .. } => ErrorType::RateLimited,
        }
    }

    /// `Retry-After` of the answer, where it has one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Infer(err) => err.retry_after(),
            ApiError::RateLimited(throttled) => Some(throttled.retry_after),
            ApiError::Jobs(err) => err.retry_after(),
            ApiError::Busy(_) => Some(Duration::from_secs(1)),
            ApiError::TooManyFailures { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The message sent to the client (bounded: [`bounded_message`]).
    pub fn message(&self) -> String {
        bounded_message(self.to_string())
    }
}

/// The HTTP status of each error kind: the one mapping.
pub fn status_of(error_type: ErrorType) -> StatusCode {
    match error_type {
        ErrorType::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorType::SchemaMismatch | ErrorType::LoadFailed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorType::Forbidden => StatusCode::FORBIDDEN,
        ErrorType::ModelNotFound | ErrorType::NotFound => StatusCode::NOT_FOUND,
        ErrorType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorType::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorType::Overloaded | ErrorType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorType::NotReady | ErrorType::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorType::Inference | ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorType::Conflict => StatusCode::CONFLICT,
        ErrorType::StoreFull | ErrorType::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.error_type())
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(retry_after) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, retry_secs(retry_after).to_string()));
        }
        if let ApiError::RequestTimeout { .. } = self {
            response.insert_header((header::CONNECTION, "close"));
        }
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, *allow));
        }
        response.json(json!({ "error": self.message(), "error_type": self.error_type().as_str() }))
    }
}
