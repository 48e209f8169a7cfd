//! HTTP routes (thin: parse, call the inference service, map errors) and their shared state.

pub mod admin;
pub mod embeddings;
pub mod error;
pub mod health;
pub mod predict;
pub mod tensor;
pub mod v2;

use std::path::PathBuf;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use burnserve_actors::{InferenceService, ModelControl};

pub use error::ApiError;

/// What every handler can reach: the runtime's two handles and the admin settings.
#[derive(Clone)]
pub struct AppState {
    pub service: InferenceService,
    pub control: ModelControl,
    /// `admin.token`; `None` switches the admin routes off.
    pub admin_token: Option<String>,
    /// The settings file, re-read by `POST /admin/reload-config`.
    pub settings_file: Option<PathBuf>,
}

/// Milliseconds with microsecond precision, for the timing headers.
pub fn millis(duration: std::time::Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/models/{model}/predict",
        web::post().to(predict::predict),
    )
    .route(
        "/v1/models/{model}/versions/{version}/predict",
        web::post().to(predict::predict_version),
    )
    .route("/v1/embeddings", web::post().to(embeddings::embeddings))
    .route("/v2", web::get().to(v2::server_metadata))
    .route("/v2/health/live", web::get().to(health::live))
    .route("/v2/health/ready", web::get().to(health::ready))
    .route("/v2/models/{model}", web::get().to(v2::model_metadata))
    .route(
        "/v2/models/{model}/versions/{version}",
        web::get().to(v2::model_metadata_version),
    )
    .route(
        "/v2/models/{model}/ready",
        web::get().to(health::model_ready),
    )
    .route(
        "/v2/models/{model}/versions/{version}/ready",
        web::get().to(health::model_version_ready),
    )
    .route("/v2/models/{model}/infer", web::post().to(v2::infer))
    .route(
        "/v2/models/{model}/versions/{version}/infer",
        web::post().to(v2::infer_version),
    )
    .route("/admin/models", web::get().to(admin::list))
    .route(
        "/admin/models/{model}/versions/{version}",
        web::post().to(admin::load),
    )
    .route(
        "/admin/models/{model}/versions/{version}",
        web::delete().to(admin::unload),
    )
    .route(
        "/admin/models/{model}/versions/{version}/reload",
        web::post().to(admin::reload),
    )
    .route(
        "/admin/models/{model}/routing",
        web::put().to(admin::routing),
    )
    .route("/admin/reload-config", web::post().to(admin::reload_config))
    .route(
        "/v2/repository/index",
        web::post().to(admin::repository_index),
    )
    .route(
        "/v2/repository/models/{model}/load",
        web::post().to(admin::repository_load),
    )
    .route(
        "/v2/repository/models/{model}/unload",
        web::post().to(admin::repository_unload),
    )
    .route("/health", web::get().to(health::live))
    .route("/ready", web::get().to(health::ready));
}

/// The method label every non-standard HTTP method is folded into.
pub const OTHER_METHOD: &str = "OTHER";

/// Folds HTTP methods outside the standard nine into [`OTHER_METHOD`] before anything records
/// or routes the request: a client inventing methods cannot grow `http_requests_total`'s series
/// (it is wrapped outside the HTTP metrics middleware).
pub async fn fold_unknown_methods(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    if !STANDARD.contains(request.method()) {
        request.head_mut().method = Method::from_bytes(OTHER_METHOD.as_bytes())
            .map_err(actix_web::error::ErrorInternalServerError)?;
    }
    next.call(request).await
}

/// Any path no route matches.
pub async fn no_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(format!(
        "{} {}",
        request.method(),
        request.path()
    )))
}

/// JSON bodies: size limit, any content type, parse errors as `invalid_input`.
pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .content_type_required(false)
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid JSON body: {err}")).into())
}
