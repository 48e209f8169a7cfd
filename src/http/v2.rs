//! KServe v2 / Open Inference Protocol documents over HTTP: server and model metadata, the
//! statistics and model configuration extensions, written as JSON from the protocol-neutral
//! documents of [`crate::kserve`] (gRPC writes the same ones). Inference is [`super::infer`].

use actix_web::{web, HttpResponse};

use super::openapi::{LookupErrors, ModelPath, VersionPath};
use super::{ApiError, AppState};
use crate::kserve::documents::{self, ModelConfigSchema, ModelMetadata, ServerMetadata};
use crate::kserve::stats::{model_stats, StatsResponse};

/// The server's name, version and extensions.
#[utoipa::path(get, path = "/v2", tag = "v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(documents::server_metadata())
}

/// `GET /v2/`: [`server_metadata`] (a trailing slash some clients add).
#[utoipa::path(get, path = "/v2/", tag = "v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata_slash() -> HttpResponse {
    server_metadata().await
}

async fn metadata(
    state: &AppState,
    model: String,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let explicit = version.is_some();
    let described = state.service.describe(&model, version.as_deref()).await?;
    Ok(HttpResponse::Ok().json(documents::model_metadata(described, explicit)))
}

/// The model's name, versions, inputs and outputs.
#[utoipa::path(get, path = "/v2/models/{model}", tag = "v2", params(ModelPath),
    responses((status = 200, body = ModelMetadata), LookupErrors))]
pub async fn model_metadata(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    metadata(&state, path.into_inner(), None).await
}

/// One version's metadata.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "v2", params(VersionPath),
    responses((status = 200, body = ModelMetadata), LookupErrors))]
pub async fn model_metadata_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    metadata(&state, model, Some(version)).await
}

async fn stats(
    state: &AppState,
    model: Option<String>,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let all = state
        .service
        .stats(model.as_deref(), version.as_deref())
        .await?;
    let model_stats = all.iter().map(|(key, s)| model_stats(key, s)).collect();
    Ok(HttpResponse::Ok().json(StatsResponse { model_stats }))
}

/// `GET /v2/models/stats`: every loaded version's statistics.
#[utoipa::path(get, path = "/v2/models/stats", tag = "v2",
    responses((status = 200, body = StatsResponse)))]
pub async fn stats_all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    stats(&state, None, None).await
}

/// Every loaded version of one model.
#[utoipa::path(get, path = "/v2/models/{model}/stats", tag = "v2", params(ModelPath),
    responses((status = 200, body = StatsResponse), LookupErrors))]
pub async fn stats_model(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    stats(&state, Some(path.into_inner()), None).await
}

/// One version.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/stats", tag = "v2",
    params(VersionPath), responses((status = 200, body = StatsResponse), LookupErrors))]
pub async fn stats_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    stats(&state, Some(model), Some(version)).await
}

async fn config(
    state: &AppState,
    model: String,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let described = state.service.describe(&model, version.as_deref()).await?;
    Ok(HttpResponse::Ok().json(documents::model_config_json(&described)))
}

/// `GET /v2/models/{m}/config`: the model configuration extension (the default version's).
#[utoipa::path(get, path = "/v2/models/{model}/config", tag = "v2", params(ModelPath),
    responses((status = 200, body = ModelConfigSchema), LookupErrors))]
pub async fn config_model(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    config(&state, path.into_inner(), None).await
}

/// One version's configuration.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/config", tag = "v2",
    params(VersionPath), responses((status = 200, body = ModelConfigSchema), LookupErrors))]
pub async fn config_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    config(&state, model, Some(version)).await
}
