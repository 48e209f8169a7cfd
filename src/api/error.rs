//! `ApiError`: every failed HTTP request becomes `{"error", "error_type"}` with one status
//! mapping (DESIGN.md §3); `overloaded` adds `Retry-After`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use burnserve_actors::InferError;
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
}

impl ApiError {
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::Infer(err) => err.error_type(),
            ApiError::BadRequest(_) => "invalid_input",
            ApiError::NoRoute(_) => "not_found",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
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
        response.json(json!({ "error": self.to_string(), "error_type": self.error_type() }))
    }
}
