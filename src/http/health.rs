//! Liveness and readiness: the process (`/health`, `/v2/health/live`), every loaded version
//! and the async job store (`/ready`, `/v2/health/ready`), one model or version
//! (`/v2/models/{m}[/versions/{v}]/ready`).

use actix_web::{web, HttpResponse};
use burnserve_actors::jobs::JobError;
use burnserve_actors::{InferError, VersionKey, VersionPhase};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{LookupErrors, ModelPath, VersionPath};
use super::{ApiError, AppState};

/// `GET /health`, `GET /v2/health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    pub live: bool,
}

/// `GET /ready`, `GET /v2/health/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// Versions serving.
    pub versions: usize,
    /// The async jobs (absent when `jobs.enabled = false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsReady>,
}

/// The async jobs' part of readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsReady {
    /// The job store can write (else `/ready` answers 503 `store_unavailable`).
    pub store_available: bool,
    /// Jobs PENDING now.
    pub pending: usize,
    /// Workers paused by an operator (`/admin/jobs/pause`).
    pub paused: bool,
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionReady {
    pub name: String,
    pub version: String,
    pub ready: bool,
}

/// The process serves: answers 503 once the router or the model supervisor is gone for good
/// (a dead supervisor is restarted first), so an orchestrator restarts the process.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Live)))]
pub async fn live(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.control.is_alive() {
        return Err(control_plane_gone());
    }
    Ok(HttpResponse::Ok().json(Live { live: true }))
}

fn control_plane_gone() -> ApiError {
    InferError::NotReady("the control plane (router or model supervisor) is gone".into()).into()
}

/// Versions whose load failed and that serve no other instance (a failed reload leaves the
/// old one serving), with why.
async fn failed_versions(state: &AppState) -> Result<Vec<(VersionKey, String)>, ApiError> {
    let listing = state.control.list().await?;
    Ok(listing
        .pending
        .into_iter()
        .filter(|p| p.phase == VersionPhase::Failed)
        .filter(|p| {
            !listing
                .routed
                .iter()
                .any(|r| r.model == p.key.model && r.version == p.key.version)
        })
        .map(|p| (p.key, p.error.unwrap_or_default()))
        .collect())
}

/// Strict (`server.strict_readiness`, the default): every routed version serves and none
/// failed to load. Otherwise: at least one version serves. Either way, with async jobs on, the
/// job store can write (503 `store_unavailable` while it cannot: it re-opens by itself). Answers
/// how many versions serve.
pub async fn check_ready(state: &AppState) -> Result<usize, ApiError> {
    if state.drain.is_draining() {
        return Err(InferError::ShuttingDown.into());
    }
    if !state.control.is_alive() {
        return Err(control_plane_gone());
    }
    if let Some(cause) = state
        .jobs
        .as_ref()
        .and_then(|jobs| jobs.store_unavailable())
    {
        return Err(JobError::Unavailable(cause).into());
    }
    let versions = state.service.readiness().await?;
    let serving = versions.iter().filter(|(_, ready)| *ready).count();
    if serving == 0 {
        return Err(InferError::NotReady("no model version serves".into()).into());
    }
    if state.strict_readiness {
        let mut waiting: Vec<String> = versions
            .iter()
            .filter(|(_, ready)| !ready)
            .map(|(key, _)| key.to_string())
            .collect();
        // Only versions the settings list: an admin's failed load of another version does not
        // take the whole server out of its load balancer.
        waiting.extend(
            failed_versions(state)
                .await?
                .into_iter()
                .filter(|(key, _)| state.control.is_configured(key))
                .map(|(key, error)| format!("{key} (failed: {error})")),
        );
        if !waiting.is_empty() {
            return Err(InferError::NotReady(format!("not ready: {}", waiting.join(", "))).into());
        }
    }
    Ok(serving)
}

/// Every loaded version serves (strict readiness), or at least one; 503 while draining.
#[utoipa::path(get, path = "/ready", tag = "health", responses((status = 200, body = Ready)))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let serving = check_ready(&state).await?;
    let jobs = state.jobs.as_ref().map(|jobs| JobsReady {
        store_available: jobs.store_unavailable().is_none(),
        pending: jobs.pending(),
        paused: jobs.is_paused(),
    });
    Ok(HttpResponse::Ok().json(Ready {
        ready: true,
        versions: serving,
        jobs,
    }))
}

async fn version_ready(
    state: &AppState,
    model: String,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let description = match state.service.describe(&model, version.as_deref()).await {
        Ok(description) => description,
        Err(InferError::ModelNotFound(missing)) => {
            // A version that failed to load says why.
            let failed = failed_versions(state).await?.into_iter().find(|(key, _)| {
                key.model == model && version.as_ref().is_none_or(|v| *v == key.version)
            });
            return Err(match failed {
                Some((key, error)) => {
                    InferError::NotReady(format!("{key} failed to load: {error}")).into()
                }
                None => InferError::ModelNotFound(missing).into(),
            });
        }
        Err(err) => return Err(err.into()),
    };
    if !description.ready {
        return Err(InferError::NotReady(format!(
            "model '{}' version '{}' is not ready",
            description.name, description.version
        ))
        .into());
    }
    Ok(HttpResponse::Ok().json(VersionReady {
        name: description.name,
        version: description.version,
        ready: true,
    }))
}

/// The model's default version serves (503 while it loads, restarts, or failed to load).
#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "health", params(ModelPath),
    responses((status = 200, body = VersionReady), LookupErrors))]
pub async fn model_ready(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    version_ready(&state, path.into_inner(), None).await
}

/// The version serves.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready", tag = "health",
    params(VersionPath), responses((status = 200, body = VersionReady), LookupErrors))]
pub async fn model_version_ready(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    version_ready(&state, model, Some(version)).await
}

/// `GET /v2/health/live`: [`live`] under the v2 path (the document's entry for the alias).
#[utoipa::path(get, path = "/v2/health/live", tag = "health", responses((status = 200, body = Live)))]
pub async fn live_v2(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    live(state).await
}

/// `GET /v2/health/ready`: [`ready`] under the v2 path.
#[utoipa::path(get, path = "/v2/health/ready", tag = "health", responses((status = 200, body = Ready)))]
pub async fn ready_v2(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    ready(state).await
}
