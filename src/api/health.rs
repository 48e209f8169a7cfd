//! Liveness and readiness: the process (`/health`, `/v2/health/live`), every loaded version
//! (`/ready`, `/v2/health/ready`), one model or version (`/v2/models/{m}[/versions/{v}]/ready`).

use actix_web::{web, HttpResponse};
use burnserve_actors::InferError;
use serde_json::json;

use super::{ApiError, AppState};

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "live": true }))
}

pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.drain.is_draining() {
        return Err(InferError::ShuttingDown.into());
    }
    let versions = state.service.readiness().await?;
    let waiting: Vec<String> = versions
        .iter()
        .filter(|(_, ready)| !ready)
        .map(|(key, _)| key.to_string())
        .collect();
    if versions.is_empty() {
        return Err(InferError::NotReady("no model version is loaded".into()).into());
    }
    if !waiting.is_empty() {
        return Err(InferError::NotReady(format!("not ready: {}", waiting.join(", "))).into());
    }
    Ok(HttpResponse::Ok().json(json!({ "ready": true, "versions": versions.len() })))
}

async fn version_ready(
    state: &AppState,
    model: String,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let description = state.service.describe(&model, version.as_deref()).await?;
    if !description.ready {
        return Err(InferError::NotReady(format!(
            "model '{}' version '{}' is not ready",
            description.name, description.version
        ))
        .into());
    }
    Ok(HttpResponse::Ok()
        .json(json!({ "name": description.name, "version": description.version, "ready": true })))
}

pub async fn model_ready(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    version_ready(&state, path.into_inner(), None).await
}

pub async fn model_version_ready(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    version_ready(&state, model, Some(version)).await
}
