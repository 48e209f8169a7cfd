//! The admin API (`/admin/...`) and the v2 repository extension (`/v2/repository/...`), behind
//! a bearer token: list versions, load, reload, unload, route (default version, canary split),
//! and reconcile with a re-read settings file. Without `admin.token` these routes answer 403.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use burnserve_actors::{
    IndexStatus, LoadOptions, LoadReport, Routing, RoutingChange, VersionInfo, VersionKey,
    VersionPhase,
};
use burnserve_models::{Device, ModelSpec};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{AdminErrors, ModelPath, VersionPath};
use super::{ApiError, AppState};
use crate::app::settings::Settings;

/// The admin API's word for a phase.
fn phase_name(phase: VersionPhase) -> &'static str {
    match phase {
        VersionPhase::Loading => "loading",
        VersionPhase::Ready => "ready",
        VersionPhase::Restarting => "restarting",
        VersionPhase::Draining => "draining",
        VersionPhase::Stopped => "stopped",
        VersionPhase::Failed => "failed",
    }
}

/// A routed version in `GET /admin/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutedVersion {
    pub model: String,
    pub version: String,
    /// `ready` or `restarting`.
    pub state: &'static str,
    pub device: String,
    pub default: bool,
    /// Its share of unpinned requests, when the model has a split.
    pub weight: Option<u32>,
    pub queue_depth: usize,
    pub inflight: usize,
    pub restarts: u64,
    pub load_time_ms: f64,
    pub weight_bytes: usize,
    pub max_batch_size: usize,
    pub queue_capacity: usize,
    /// Executor threads serving it (`batching.instances`).
    pub instances: usize,
}

fn routed_version(info: &VersionInfo) -> RoutedVersion {
    RoutedVersion {
        model: info.model.clone(),
        version: info.version.clone(),
        state: phase_name(info.phase),
        device: info.device.to_string(),
        default: info.default,
        weight: info.weight,
        queue_depth: info.queue_depth,
        inflight: info.inflight,
        restarts: info.restarts,
        load_time_ms: info.load_time_ms,
        weight_bytes: info.weight_bytes,
        max_batch_size: info.max_batch_size,
        queue_capacity: info.queue_capacity,
        instances: info.instances,
    }
}

/// A version loading, draining, stopped or failed, in `GET /admin/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingRow {
    pub model: String,
    pub version: String,
    /// `loading`, `draining`, `stopped` or `failed`.
    pub state: &'static str,
    pub device: String,
    /// While loading: since its load started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loading_for_ms: Option<u64>,
    /// While draining: instances of the version draining.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// Why its load failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /admin/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminListing {
    pub versions: Vec<RoutedVersion>,
    pub pending: Vec<PendingRow>,
}

/// A model's default version and split.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingState {
    pub default_version: Option<String>,
    pub weights: BTreeMap<String, u32>,
}

fn routing_state(routing: &Routing) -> RoutingState {
    RoutingState {
        default_version: routing.default_version.clone(),
        weights: routing.weights.clone(),
    }
}

/// `GET /admin/models`: every routed version with its state and numbers, then the ones loading,
/// draining or failed.
#[utoipa::path(get, path = "/admin/models", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AdminListing)))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let listing = state.control.list().await?;
    let versions = listing.routed.iter().map(routed_version).collect();
    let pending = listing
        .pending
        .iter()
        .map(|p| {
            let mut row = PendingRow {
                model: p.key.model.clone(),
                version: p.key.version.clone(),
                state: phase_name(p.phase),
                device: p.device.to_string(),
                loading_for_ms: None,
                instances: None,
                error: None,
            };
            match p.phase {
                VersionPhase::Loading => row.loading_for_ms = Some(p.age.as_millis() as u64),
                VersionPhase::Draining => row.instances = Some(p.instances),
                _ => row.error.clone_from(&p.error),
            }
            row
        })
        .collect();
    Ok(HttpResponse::Ok().json(AdminListing { versions, pending }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LoadQuery {
    /// `cpu` or `cuda:N`; default: the model's configured device, else `cpu`.
    #[serde(default)]
    pub device: Option<String>,
    /// Make the loaded version the model's default.
    #[serde(default)]
    pub default: bool,
}

/// A version loaded (or reloaded) and serving.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadedVersion {
    pub model: String,
    pub version: String,
    /// `ready`.
    pub state: &'static str,
    pub device: String,
    pub load_time_ms: f64,
    pub weight_bytes: usize,
    /// A previous instance was replaced (and drains).
    pub replaced: bool,
}

fn loaded_version(key: &VersionKey, report: &LoadReport) -> LoadedVersion {
    LoadedVersion {
        model: key.model.clone(),
        version: key.version.clone(),
        state: "ready",
        device: report.device.to_string(),
        load_time_ms: report.took.as_secs_f64() * 1000.0,
        weight_bytes: report.weight_bytes,
        replaced: report.replaced,
    }
}

/// `POST /admin/models/{m}/versions/{v}`: load from the repository; a non-empty body is a
/// `model.toml` used instead of the version's own.
#[utoipa::path(post, path = "/admin/models/{model}/versions/{version}", tag = "admin",
    security(("bearer" = [])), params(VersionPath, LoadQuery),
    request_body(content = String, content_type = "text/plain", description = "Optional: a model.toml used instead of the version's own"),
    responses((status = 200, body = LoadedVersion), AdminErrors))]
pub async fn load(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<LoadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.max_body_bytes;
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit,
            setting: "server.max_body_bytes",
        })?
        .map_err(|e| super::body::read_error(&e))?;
    let (model, version) = path.into_inner();
    let spec = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::BadRequest("the model.toml override is not UTF-8".into()))?;
        Some(
            ModelSpec::from_toml(text)
                .map_err(|e| ApiError::BadRequest(format!("model.toml override: {e}")))?,
        )
    };
    let device = query
        .device
        .as_deref()
        .map(|text| text.parse::<Device>().map_err(ApiError::BadRequest))
        .transpose()?;
    let options = LoadOptions {
        device,
        make_default: query.default,
        spec,
    };
    let report = state.control.load(&model, &version, options).await?;
    Ok(HttpResponse::Ok().json(loaded_version(&VersionKey::new(model, version), &report)))
}

/// `POST /admin/models/{m}/versions/{v}/reload`: re-read weights and `model.toml` from disk,
/// warm the new instance, swap it in, drain the old one.
#[utoipa::path(post, path = "/admin/models/{model}/versions/{version}/reload", tag = "admin",
    security(("bearer" = [])), params(VersionPath),
    responses((status = 200, body = LoadedVersion), AdminErrors))]
pub async fn reload(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    let report = state.control.reload(&model, &version).await?;
    Ok(HttpResponse::Ok().json(loaded_version(&VersionKey::new(model, version), &report)))
}

/// A version unloaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnloadedVersion {
    pub model: String,
    pub version: String,
    /// `unloaded`.
    pub state: &'static str,
}

/// `DELETE /admin/models/{m}/versions/{v}`: stop routing to it at once; answers when every
/// accepted request was answered and its weights are freed.
#[utoipa::path(delete, path = "/admin/models/{model}/versions/{version}", tag = "admin",
    security(("bearer" = [])), params(VersionPath),
    responses((status = 200, body = UnloadedVersion), AdminErrors))]
pub async fn unload(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    state.control.unload(&model, &version).await?;
    Ok(HttpResponse::Ok().json(UnloadedVersion {
        model,
        version,
        state: "unloaded",
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    #[serde(default)]
    pub default_version: Option<String>,
    /// Version → weight for unpinned requests; `{}` removes the split.
    #[serde(default)]
    pub weights: Option<BTreeMap<String, u32>>,
}

/// `PUT /admin/models/{m}/routing`: default version and weighted split, applied atomically.
#[utoipa::path(put, path = "/admin/models/{model}/routing", tag = "admin",
    security(("bearer" = [])), params(ModelPath), request_body = RoutingBody,
    responses((status = 200, body = RoutingState), AdminErrors))]
pub async fn routing(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<RoutingBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.default_version.is_none() && body.weights.is_none() {
        return Err(ApiError::BadRequest(
            "give default_version, weights, or both".into(),
        ));
    }
    let change = RoutingChange {
        default_version: body.default_version,
        weights: body.weights,
    };
    let routing = state
        .control
        .set_routing(&path.into_inner(), change)
        .await?;
    Ok(HttpResponse::Ok().json(routing_state(&routing)))
}

/// A version named in a reconcile report.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionRef {
    pub model: String,
    pub version: String,
}

/// A version a reconcile could not load, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedVersion {
    pub model: String,
    pub version: String,
    pub error: String,
}

/// What `POST /admin/reload-config` changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileReport {
    pub loaded: Vec<VersionRef>,
    pub unloaded: Vec<VersionRef>,
    pub unchanged: Vec<VersionRef>,
    pub failed: Vec<FailedVersion>,
}

/// `POST /admin/reload-config`: re-read the settings file and reconcile the served models.
#[utoipa::path(post, path = "/admin/reload-config", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ReconcileReport), AdminErrors))]
pub async fn reload_config(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = Settings::load(state.settings_file.as_deref()).map_err(|e| {
        ApiError::BadRequest(format!(
            "the settings file is invalid, nothing changed: {e}"
        ))
    })?;
    let report = state.control.reconcile(&settings.models).await?;
    let named = |k: &VersionKey| VersionRef {
        model: k.model.clone(),
        version: k.version.clone(),
    };
    Ok(HttpResponse::Ok().json(ReconcileReport {
        loaded: report.loaded.iter().map(|(key, _)| named(key)).collect(),
        unloaded: report.unloaded.iter().map(named).collect(),
        unchanged: report.unchanged.iter().map(named).collect(),
        failed: report
            .failed
            .iter()
            .map(|(k, err)| FailedVersion {
                model: k.model.clone(),
                version: k.version.clone(),
                error: err.to_string(),
            })
            .collect(),
    }))
}

/// A repository index entry, as Triton writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    /// `READY`, `LOADING` or `UNAVAILABLE`.
    pub state: &'static str,
    pub reason: String,
}

/// `POST /v2/repository/index`: every version in the repository and whether it serves.
#[utoipa::path(post, path = "/v2/repository/index", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<IndexEntry>), AdminErrors))]
pub async fn repository_index(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let index: Vec<IndexEntry> = state
        .control
        .repository_index()
        .await?
        .into_iter()
        .map(|(key, status)| {
            let (state, reason) = index_state(status);
            IndexEntry {
                name: key.model,
                version: key.version,
                state,
                reason,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(index))
}

/// A repository index entry's state and reason, as Triton writes them (HTTP and gRPC).
pub fn index_state(status: IndexStatus) -> (&'static str, String) {
    match status {
        IndexStatus::Ready => ("READY", String::new()),
        IndexStatus::Restarting => ("UNAVAILABLE", "restarting".to_string()),
        IndexStatus::Loading => ("LOADING", String::new()),
        IndexStatus::Failed(error) => ("UNAVAILABLE", error),
        IndexStatus::Unloaded => ("UNAVAILABLE", "unloaded".to_string()),
        IndexStatus::Unavailable(reason) => ("UNAVAILABLE", reason),
    }
}

/// What a repository load loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryLoaded {
    pub name: String,
    pub versions: Vec<LoadedVersion>,
}

/// What a repository unload unloaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryUnloaded {
    pub name: String,
    /// The versions unloaded.
    pub unloaded: Vec<String>,
}

/// `POST /v2/repository/models/{m}/load`: load (or reload) every version of `m` in the repository.
#[utoipa::path(post, path = "/v2/repository/models/{model}/load", tag = "admin",
    security(("bearer" = [])), params(ModelPath),
    responses((status = 200, body = RepositoryLoaded), AdminErrors))]
pub async fn repository_load(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let model = path.into_inner();
    let versions = state
        .control
        .load_model(&model)
        .await?
        .iter()
        .map(|(version, report)| loaded_version(&VersionKey::new(&model, version), report))
        .collect();
    Ok(HttpResponse::Ok().json(RepositoryLoaded {
        name: model,
        versions,
    }))
}

/// `POST /v2/repository/models/{m}/unload`: unload every loaded version of `m`.
#[utoipa::path(post, path = "/v2/repository/models/{model}/unload", tag = "admin",
    security(("bearer" = [])), params(ModelPath),
    responses((status = 200, body = RepositoryUnloaded), AdminErrors))]
pub async fn repository_unload(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let model = path.into_inner();
    let unloaded = state.control.unload_model(&model).await?;
    Ok(HttpResponse::Ok().json(RepositoryUnloaded {
        name: model,
        unloaded,
    }))
}

/// The job workers' state.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsPaused {
    pub paused: bool,
    /// Jobs waiting to start.
    pub pending: usize,
}

/// `POST /admin/jobs/pause` and `/admin/jobs/resume`: no job starts while paused (submits still
/// queue, running jobs finish). Answers the state and the jobs pending.
#[utoipa::path(post, path = "/admin/jobs/pause", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = JobsPaused)))]
pub async fn pause_jobs(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_jobs_paused(&state, true)
}

/// Jobs start again.
#[utoipa::path(post, path = "/admin/jobs/resume", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = JobsPaused)))]
pub async fn resume_jobs(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_jobs_paused(&state, false)
}

fn set_jobs_paused(state: &AppState, paused: bool) -> Result<HttpResponse, ApiError> {
    let jobs = state.jobs.as_ref().ok_or_else(|| {
        ApiError::Forbidden("async jobs are switched off (jobs.enabled = false)".into())
    })?;
    jobs.set_paused(paused);
    tracing::info!(
        paused,
        pending = jobs.pending(),
        "job workers paused or resumed"
    );
    Ok(HttpResponse::Ok().json(JobsPaused {
        paused: jobs.is_paused(),
        pending: jobs.pending(),
    }))
}
