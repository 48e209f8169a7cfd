//! `ApiError`: every failed HTTP request becomes `{"error", "error_type"}` with one status
//! mapping (DESIGN.md §3); `overloaded` adds `Retry-After`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use burnserve_actors::{InferError, LifecycleError};
use serde_json::json;

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
    Lifecycle(#[from] LifecycleError),
    /// Missing or wrong bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// The route is switched off by configuration.
    #[error("{0}")]
    Forbidden(String),
}

impl ApiError {
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::Infer(err) => err.error_type(),
            ApiError::BadRequest(_) => "invalid_input",
            ApiError::NoRoute(_) => "not_found",
            ApiError::Lifecycle(err) => err.error_type(),
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Lifecycle(err) => match err {
                LifecycleError::NotFound(_) => StatusCode::NOT_FOUND,
                LifecycleError::Invalid(_) => StatusCode::BAD_REQUEST,
                LifecycleError::LoadFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
                LifecycleError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Infer(err) => match err {
                InferError::InvalidInput(_) => StatusCode::BAD_REQUEST,
                InferError::SchemaMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
                InferError::ModelNotFound(_)
                | InferError::VersionNotFound { .. }
                | InferError::NoDefaultVersion(_) => StatusCode::NOT_FOUND,
                InferError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
                InferError::NotReady(_) | InferError::ShuttingDown => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                InferError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                InferError::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Infer(InferError::Overloaded { retry_after, .. }) = self {
            response.insert_header((
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            ));
        }
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({ "error": self.to_string(), "error_type": self.error_type() }))
    }
}
