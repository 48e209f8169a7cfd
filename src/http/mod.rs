//! HTTP routes (thin: parse, call the inference service, map errors) and their shared state.

pub mod admin;
pub mod auth;
pub mod binary;
pub mod body;
pub mod embeddings;
pub mod error;
pub mod health;
pub mod infer;
pub mod inflate;
pub mod jobs;
pub mod openapi;
pub mod predict;
pub mod request_id;
pub mod shed;
pub mod tensor;
pub mod v2;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use burnserve_actors::{InferenceService, ModelControl};

pub use error::ApiError;

use crate::edge::access::Access;

/// What every handler can reach: the runtime's two handles, who may call what, and limits.
#[derive(Clone)]
pub struct AppState {
    pub service: InferenceService,
    pub control: ModelControl,
    /// The admin token and the tenants' keys and quotas.
    pub access: Arc<Access>,
    /// `server.body_timeout_ms`.
    pub body_timeout: Duration,
    /// `server.strict_readiness`.
    pub strict_readiness: bool,
    /// Set on SIGTERM: readiness answers 503 and responses close their connections.
    pub drain: Arc<crate::app::shutdown::Drain>,
    /// The settings file, re-read by `POST /admin/reload-config`.
    pub settings_file: Option<PathBuf>,
    /// `server.max_body_bytes`: the largest body any route reads.
    pub max_body_bytes: usize,
    /// `server.max_inflight_body_bytes`: body bytes held at once, HTTP and gRPC together.
    pub body_budget: Arc<crate::edge::budget::ByteBudget>,
    /// The async jobs (`None` with `jobs.enabled = false`: the routes answer 403).
    pub jobs: Option<burnserve_actors::JobService>,
    /// The `metrics.port` listener once bound: it serves `/metrics` only.
    pub metrics_listener: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
}

/// Milliseconds with microsecond precision, for the timing headers.
pub fn millis(duration: std::time::Duration) -> String {
    // Integer arithmetic on u64: float (and u128) formatting cost a request ~0.2 µs per value.
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let micros = nanos.saturating_add(500) / 1000;
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

/// A path whose routes are added by the caller; any other method answers 405 with `Allow`.
fn endpoint(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |request: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            allow,
        })
    }))
}

/// An inference endpoint: with tenants configured, a tenant key and its quota admit the request
/// before anything else (see [`auth::tenant_gate`]).
fn inference(path: &str, route: actix_web::Route) -> impl actix_web::dev::HttpServiceFactory {
    inference_with(path, route, None)
}

/// [`inference`] with its own JSON body limit.
fn inference_with(
    path: &str,
    route: actix_web::Route,
    json: Option<web::JsonConfig>,
) -> impl actix_web::dev::HttpServiceFactory {
    let mut resource = endpoint(path, "POST").route(route);
    if let Some(json) = json {
        resource = resource.app_data(json);
    }
    // The tenant gate runs first (outermost), then the shedding gate, both before the body.
    resource
        .wrap(actix_web::middleware::from_fn(shed::shed_gate))
        .wrap(actix_web::middleware::from_fn(auth::tenant_gate))
}

/// A route behind the tenant gate only: the async jobs API (a submit is queued, never shed).
fn tenant_only(resource: actix_web::Resource) -> impl actix_web::dev::HttpServiceFactory {
    resource.wrap(actix_web::middleware::from_fn(auth::tenant_gate))
}

/// Body limits of the routes that take their own.
#[derive(Debug, Clone, Copy)]
pub struct RouteLimits {
    /// `server.max_text_body_bytes`: the embeddings route (text only).
    pub text_body_bytes: usize,
}

/// Registers every route. The admin API and the v2 repository extension sit in scopes whose
/// gate checks the admin token before any body or query is read; the inference routes check
/// tenant keys the same way.
pub fn routes(cfg: &mut web::ServiceConfig, limits: RouteLimits) {
    let post = web::post;
    let get = web::get;
    // The inference routes first: actix tries resources in registration order and matches each
    // dynamic pattern with a regex, which cost ~19% of the server's CPU per request (perf) when
    // ten patterns came before these.
    cfg.service(inference(
        "/v2/models/{model}/infer",
        post().to(infer::infer),
    ))
    .service(inference(
        "/v2/models/{model}/versions/{version}/infer",
        post().to(infer::infer_version),
    ))
    .service(inference(
        "/v1/models/{model}/predict",
        post().to(predict::predict),
    ))
    .service(inference(
        "/v1/models/{model}/versions/{version}/predict",
        post().to(predict::predict_version),
    ));
    cfg.service(
        web::scope("/admin")
            .wrap(actix_web::middleware::from_fn(auth::admin_gate))
            .service(endpoint("/models", "GET").route(get().to(admin::list)))
            .service(
                endpoint("/models/{model}/versions/{version}", "POST, DELETE")
                    .route(post().to(admin::load))
                    .route(web::delete().to(admin::unload)),
            )
            .service(
                endpoint("/models/{model}/versions/{version}/reload", "POST")
                    .route(post().to(admin::reload)),
            )
            .service(
                endpoint("/models/{model}/routing", "PUT").route(web::put().to(admin::routing)),
            )
            .service(endpoint("/reload-config", "POST").route(post().to(admin::reload_config)))
            .service(endpoint("/jobs/pause", "POST").route(post().to(admin::pause_jobs)))
            .service(endpoint("/jobs/resume", "POST").route(post().to(admin::resume_jobs))),
    )
    .service(
        web::scope("/v2/repository")
            .wrap(actix_web::middleware::from_fn(auth::admin_gate))
            .service(endpoint("/index", "POST").route(post().to(admin::repository_index)))
            .service(
                endpoint("/models/{model}/load", "POST").route(post().to(admin::repository_load)),
            )
            .service(
                endpoint("/models/{model}/unload", "POST")
                    .route(post().to(admin::repository_unload)),
            ),
    )
    .service(inference_with(
        "/v1/embeddings",
        post().to(embeddings::embeddings),
        Some(json_config(
            limits.text_body_bytes,
            "server.max_text_body_bytes",
        )),
    ))
    .service(tenant_only(
        endpoint("/v1/models/{model}/jobs", "POST").route(post().to(jobs::submit_predict)),
    ))
    .service(tenant_only(
        endpoint("/v1/models/{model}/versions/{version}/jobs", "POST")
            .route(post().to(jobs::submit_predict_version)),
    ))
    .service(tenant_only(
        endpoint("/v1/embeddings/jobs", "POST")
            .route(post().to(jobs::submit_embeddings))
            .app_data(json_config(
                limits.text_body_bytes,
                "server.max_text_body_bytes",
            )),
    ))
    .service(tenant_only(
        endpoint("/v1/jobs", "GET").route(get().to(jobs::list)),
    ))
    .service(tenant_only(
        endpoint("/v1/jobs/{id}", "GET, DELETE")
            .route(get().to(jobs::get))
            .route(web::delete().to(jobs::cancel)),
    ))
    .service(endpoint("/v2", "GET").route(get().to(v2::server_metadata)))
    .service(endpoint("/v2/", "GET").route(get().to(v2::server_metadata_slash)))
    .service(endpoint("/v2/health/live", "GET").route(get().to(health::live_v2)))
    .service(endpoint("/v2/health/ready", "GET").route(get().to(health::ready_v2)))
    // Before `/v2/models/{model}`: the statistics of every version.
    .service(endpoint("/v2/models/stats", "GET").route(get().to(v2::stats_all)))
    .service(endpoint("/v2/models/{model}", "GET").route(get().to(v2::model_metadata)))
    .service(endpoint("/v2/models/{model}/stats", "GET").route(get().to(v2::stats_model)))
    .service(
        endpoint("/v2/models/{model}/versions/{version}/stats", "GET")
            .route(get().to(v2::stats_version)),
    )
    .service(endpoint("/v2/models/{model}/config", "GET").route(get().to(v2::config_model)))
    .service(
        endpoint("/v2/models/{model}/versions/{version}/config", "GET")
            .route(get().to(v2::config_version)),
    )
    .service(
        endpoint("/v2/models/{model}/versions/{version}", "GET")
            .route(get().to(v2::model_metadata_version)),
    )
    .service(endpoint("/v2/models/{model}/ready", "GET").route(get().to(health::model_ready)))
    .service(
        endpoint("/v2/models/{model}/versions/{version}/ready", "GET")
            .route(get().to(health::model_version_ready)),
    )
    .service(endpoint("/health", "GET").route(get().to(health::live)))
    .service(endpoint("/ready", "GET").route(get().to(health::ready)))
    .service(endpoint("/openapi.json", "GET").route(get().to(openapi::openapi_json)))
    // The metrics middleware answers `GET /metrics` before routing; this resource gives the
    // other methods their 405 (and `GET`, where metrics are off, a 404).
    .service(endpoint("/metrics", "GET").route(get().to(no_route)));
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

/// On the `metrics.port` listener only `/metrics` answers (the HTTP metrics middleware, inside
/// this one, serves it); everything else is 404, so that port exposes nothing else.
pub async fn metrics_listener_only(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let on_metrics_port = request
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.metrics_listener.get().copied())
        .is_some_and(|metrics| metrics == request.app_config().local_addr());
    if on_metrics_port && request.path() != "/metrics" {
        let refusal = ApiError::NoRoute(format!(
            "{} {}: the metrics port serves GET /metrics only",
            request.method(),
            request.path()
        ));
        return Ok(request.error_response(refusal).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

/// Any path no route matches.
pub async fn no_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(format!(
        "{} {}",
        request.method(),
        request.path()
    )))
}

/// JSON bodies: size limit (413 naming `setting`), any content type, parse errors as
/// `invalid_input`.
pub fn json_config(limit: usize, setting: &'static str) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(move |err, _req| match err {
            actix_web::error::JsonPayloadError::Overflow { .. }
            | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge { limit, setting }.into()
            }
            actix_web::error::JsonPayloadError::Payload(err) => body::payload_error(&err).into(),
            other => ApiError::BadRequest(format!("invalid JSON body: {other}")).into(),
        })
}

/// Query strings and path segments that do not parse answer JSON `invalid_input`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid query: {err}")).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid path: {err}")).into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn millis_rounds_to_the_microsecond() {
        assert_eq!(super::millis(Duration::ZERO), "0.000");
        assert_eq!(super::millis(Duration::from_nanos(1_234_499)), "1.234");
        assert_eq!(super::millis(Duration::from_nanos(1_234_500)), "1.235");
        assert_eq!(
            super::millis(Duration::from_micros(999_999_999)),
            "999999.999"
        );
        assert_eq!(super::millis(Duration::from_secs(2)), "2000.000");
        // Past u64 nanoseconds (585 years) it saturates instead of wrapping.
        assert_eq!(
            super::millis(Duration::from_secs(u64::MAX)),
            "18446744073709.551"
        );
    }
}
