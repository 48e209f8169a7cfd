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
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::settings::Settings;

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

fn routed_json(info: &VersionInfo) -> Value {
    json!({
        "model": info.model,
        "version": info.version,
        "state": phase_name(info.phase),
        "device": info.device.to_string(),
        "default": info.default,
        "weight": info.weight,
        "queue_depth": info.queue_depth,
        "inflight": info.inflight,
        "restarts": info.restarts,
        "load_time_ms": info.load_time_ms,
        "weight_bytes": info.weight_bytes,
        "max_batch_size": info.max_batch_size,
        "queue_capacity": info.queue_capacity,
    })
}

fn routing_json(routing: &Routing) -> Value {
    json!({ "default_version": routing.default_version, "weights": routing.weights })
}

/// `GET /admin/models`: every routed version with its state and numbers, then the ones loading,
/// draining or failed.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let listing = state.control.list().await?;
    let routed: Vec<Value> = listing.routed.iter().map(routed_json).collect();
    let pending: Vec<Value> = listing
        .pending
        .iter()
        .map(|p| {
            let mut row = json!({
                "model": p.key.model, "version": p.key.version, "state": phase_name(p.phase),
                "device": p.device.to_string(),
            });
            match p.phase {
                VersionPhase::Loading => {
                    row["loading_for_ms"] = json!(p.age.as_millis() as u64);
                }
                VersionPhase::Draining => row["instances"] = json!(p.instances),
                _ => row["error"] = json!(p.error),
            }
            row
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "versions": routed, "pending": pending })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadQuery {
    /// `cpu` or `cuda:N`; default: the model's configured device, else `cpu`.
    #[serde(default)]
    pub device: Option<String>,
    /// Make the loaded version the model's default.
    #[serde(default)]
    pub default: bool,
}

fn loaded_json(key: &VersionKey, report: &LoadReport) -> Value {
    json!({
        "model": key.model,
        "version": key.version,
        "state": "ready",
        "device": report.device.to_string(),
        "load_time_ms": report.took.as_secs_f64() * 1000.0,
        "weight_bytes": report.weight_bytes,
        "replaced": report.replaced,
    })
}

/// `POST /admin/models/{m}/versions/{v}`: load from the repository; a non-empty body is a
/// `model.toml` used instead of the version's own.
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
    Ok(HttpResponse::Ok().json(loaded_json(&VersionKey::new(model, version), &report)))
}

/// `POST /admin/models/{m}/versions/{v}/reload`: re-read weights and `model.toml` from disk,
/// warm the new instance, swap it in, drain the old one.
pub async fn reload(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    let report = state.control.reload(&model, &version).await?;
    Ok(HttpResponse::Ok().json(loaded_json(&VersionKey::new(model, version), &report)))
}

/// `DELETE /admin/models/{m}/versions/{v}`: stop routing to it at once; answers when every
/// accepted request was answered and its weights are freed.
pub async fn unload(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    state.control.unload(&model, &version).await?;
    Ok(HttpResponse::Ok().json(json!({ "model": model, "version": version, "state": "unloaded" })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    #[serde(default)]
    pub default_version: Option<String>,
    /// Version → weight for unpinned requests; `{}` removes the split.
    #[serde(default)]
    pub weights: Option<BTreeMap<String, u32>>,
}

/// `PUT /admin/models/{m}/routing`: default version and weighted split, applied atomically.
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
    Ok(HttpResponse::Ok().json(routing_json(&routing)))
}

/// `POST /admin/reload-config`: re-read the settings file and reconcile the served models.
pub async fn reload_config(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = Settings::load(state.settings_file.as_deref()).map_err(|e| {
        ApiError::BadRequest(format!(
            "the settings file is invalid, nothing changed: {e}"
        ))
    })?;
    let report = state.control.reconcile(&settings.models).await?;
    let keys = |keys: &[VersionKey]| -> Vec<Value> {
        keys.iter()
            .map(|k| json!({ "model": k.model, "version": k.version }))
            .collect()
    };
    let loaded: Vec<VersionKey> = report.loaded.iter().map(|(key, _)| key.clone()).collect();
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|(k, err)| json!({ "model": k.model, "version": k.version, "error": err.to_string() }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "loaded": keys(&loaded),
        "unloaded": keys(&report.unloaded),
        "unchanged": keys(&report.unchanged),
        "failed": failed,
    })))
}

/// `POST /v2/repository/index`: every version in the repository and whether it serves.
pub async fn repository_index(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let index: Vec<Value> = state
        .control
        .repository_index()
        .await?
        .into_iter()
        .map(|(key, status)| {
            let (state, reason) = index_state(status);
            json!({ "name": key.model, "version": key.version, "state": state, "reason": reason })
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
    }
}

/// `POST /v2/repository/models/{m}/load`: load (or reload) every version of `m` in the repository.
pub async fn repository_load(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let model = path.into_inner();
    let loaded: Vec<Value> = state
        .control
        .load_model(&model)
        .await?
        .iter()
        .map(|(version, report)| loaded_json(&VersionKey::new(&model, version), report))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "name": model, "versions": loaded })))
}

/// `POST /v2/repository/models/{m}/unload`: unload every loaded version of `m`.
pub async fn repository_unload(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let model = path.into_inner();
    let unloaded = state.control.unload_model(&model).await?;
    Ok(HttpResponse::Ok().json(json!({ "name": model, "unloaded": unloaded })))
}

/// `POST /admin/jobs/pause` and `/admin/jobs/resume`: no job starts while paused (submits still
/// queue, running jobs finish). Answers the state and the jobs pending.
pub async fn pause_jobs(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_jobs_paused(&state, true)
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "paused": jobs.is_paused(),
        "pending": jobs.pending(),
    })))
}
