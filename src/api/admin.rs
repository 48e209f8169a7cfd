//! The admin API (`/admin/...`) and the v2 repository extension (`/v2/repository/...`), behind
//! a bearer token: list versions, load, reload, unload, route (default version, canary split),
//! and reconcile with a re-read settings file. Without `admin.token` these routes answer 403.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{web, HttpRequest, HttpResponse};
use burnserve_actors::router::{DescribeModel, ListDetailed, ListVersions, SetRouting};
use burnserve_actors::supervisor::{ListPending, Pending};
use burnserve_actors::{
    InferError, LifecycleError, LoadAction, LoadVersion, UnloadVersion, VersionKey,
};
use burnserve_models::spec::scan_repository;
use burnserve_models::{Device, ModelSpec};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::settings::Settings;

/// Compares without an early exit, so the time taken says nothing about the token.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &AppState, request: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = &state.admin_token else {
        return Err(ApiError::Forbidden(
            "the admin API is disabled: set admin.token (or BURNSERVE__ADMIN__TOKEN) to enable it"
                .into(),
        ));
    };
    let given = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if same_secret(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("wrong admin token".into())),
        None => Err(ApiError::Unauthorized(
            "admin routes need `Authorization: Bearer <admin.token>`".into(),
        )),
    }
}

fn mailbox<T>(result: Result<T, actix::MailboxError>) -> Result<T, ApiError> {
    result.map_err(|_| ApiError::Infer(InferError::ShuttingDown))
}

/// `GET /admin/models`: every routed version with its state and numbers, then the ones loading
/// or failed.
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let routed = mailbox(state.router().send(ListDetailed).await)?;
    let pending = mailbox(state.supervisor.send(ListPending).await)?;
    let pending: Vec<_> = pending
        .into_iter()
        .map(|(key, p)| match p {
            Pending::Loading { since } => json!({
                "model": key.model, "version": key.version, "state": "loading",
                "loading_for_ms": since.elapsed().as_millis() as u64,
            }),
            Pending::Draining { count } => json!({
                "model": key.model, "version": key.version, "state": "draining", "instances": count,
            }),
            Pending::Failed { error } => json!({
                "model": key.model, "version": key.version, "state": "failed", "error": error,
            }),
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

fn device_for(state: &AppState, model: &str, asked: Option<&str>) -> Result<Device, ApiError> {
    match asked {
        Some(text) => {
            let device: Device = text.parse().map_err(ApiError::BadRequest)?;
            if !device.is_supported() {
                return Err(ApiError::BadRequest(format!(
                    "{device} needs burnserve built with --features cuda"
                )));
            }
            Ok(device)
        }
        None => Ok(state.devices.get(model).copied().unwrap_or_default()),
    }
}

fn loaded_json(
    model: &str,
    version: &str,
    report: &burnserve_actors::supervisor::LoadReport,
) -> serde_json::Value {
    json!({
        "model": model,
        "version": version,
        "state": "ready",
        "load_time_ms": report.took.as_secs_f64() * 1000.0,
        "weight_bytes": report.weight_bytes,
        "replaced": report.replaced,
    })
}

/// `POST /admin/models/{m}/versions/{v}`: load from the repository; a non-empty body is a
/// `model.toml` used instead of the version's own.
pub async fn load(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<LoadQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
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
    let mut load = LoadVersion::new(
        &model,
        &version,
        device_for(&state, &model, query.device.as_deref())?,
    );
    load.spec = spec;
    load.make_default = query.default;
    let report = mailbox(state.supervisor.send(load).await)??;
    Ok(HttpResponse::Ok().json(loaded_json(&model, &version, &report)))
}

/// `POST /admin/models/{m}/versions/{v}/reload`: re-read weights and `model.toml` from disk,
/// warm the new instance, swap it in, drain the old one.
pub async fn reload(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let (model, version) = path.into_inner();
    let current = mailbox(
        state
            .router()
            .send(DescribeModel {
                model: model.clone(),
                version: Some(version.clone()),
            })
            .await,
    )??;
    let mut load = LoadVersion::new(&model, &version, current.device);
    load.action = LoadAction::Reload;
    let report = mailbox(state.supervisor.send(load).await)??;
    Ok(HttpResponse::Ok().json(loaded_json(&model, &version, &report)))
}

/// `DELETE /admin/models/{m}/versions/{v}`: stop routing to it at once; answers when every
/// accepted request was answered and its weights are freed.
pub async fn unload(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let (model, version) = path.into_inner();
    mailbox(
        state
            .supervisor
            .send(UnloadVersion {
                key: VersionKey::new(&model, &version),
            })
            .await,
    )??;
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
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<RoutingBody>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let body = body.into_inner();
    if body.default_version.is_none() && body.weights.is_none() {
        return Err(ApiError::BadRequest(
            "give default_version, weights, or both".into(),
        ));
    }
    let set = SetRouting {
        model: path.into_inner(),
        default_version: body.default_version,
        weights: body.weights,
    };
    let routing = mailbox(state.router().send(set).await)??;
    Ok(HttpResponse::Ok().json(routing))
}

/// What reconciling the served versions with a settings file does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconcile {
    pub load: Vec<(String, String)>,
    pub unload: Vec<(String, String)>,
    pub keep: Vec<(String, String)>,
}

/// Plans a reconcile: load what is wanted and not served, unload what is served and not
/// wanted, keep the rest. Loads come first when applied (load before unload).
pub fn plan_reconcile(
    wanted: &BTreeSet<(String, String)>,
    served: &BTreeSet<(String, String)>,
) -> Reconcile {
    Reconcile {
        load: wanted.difference(served).cloned().collect(),
        unload: served.difference(wanted).cloned().collect(),
        keep: wanted.intersection(served).cloned().collect(),
    }
}

/// `POST /admin/reload-config`: re-read the settings file and reconcile the served models.
pub async fn reload_config(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let settings = Settings::load(state.settings_file.as_deref()).map_err(|e| {
        ApiError::BadRequest(format!(
            "the settings file is invalid, nothing changed: {e}"
        ))
    })?;
    let wanted: BTreeSet<(String, String)> = settings
        .models
        .iter()
        .flat_map(|m| m.versions.iter().map(move |v| (m.name.clone(), v.clone())))
        .collect();
    let served: BTreeSet<(String, String)> = mailbox(state.router().send(ListVersions).await)?
        .into_iter()
        .map(|(key, _)| (key.model, key.version))
        .collect();
    let plan = plan_reconcile(&wanted, &served);
    let mut failed = Vec::new();
    let mut loaded = Vec::new();
    for (model, version) in &plan.load {
        let config = settings.models.iter().find(|m| &m.name == model);
        let mut load = LoadVersion::new(
            model,
            version,
            config.map(|m| m.device()).unwrap_or_default(),
        );
        load.make_default =
            config.and_then(|m| m.default_version.as_deref()) == Some(version.as_str());
        match mailbox(state.supervisor.send(load).await)? {
            Ok(_) => loaded.push(json!({ "model": model, "version": version })),
            Err(err) => {
                failed.push(json!({ "model": model, "version": version, "error": err.to_string() }))
            }
        }
    }
    for model in &settings.models {
        if let Some(default) = &model.default_version {
            let set = SetRouting {
                model: model.name.clone(),
                default_version: Some(default.clone()),
                weights: None,
            };
            if let Err(err) = mailbox(state.router().send(set).await)? {
                failed.push(
                    json!({ "model": model.name, "version": default, "error": err.to_string() }),
                );
            }
        }
    }
    let mut unloaded = Vec::new();
    for (model, version) in &plan.unload {
        match mailbox(
            state
                .supervisor
                .send(UnloadVersion {
                    key: VersionKey::new(model, version),
                })
                .await,
        )? {
            Ok(()) => unloaded.push(json!({ "model": model, "version": version })),
            Err(err) => {
                failed.push(json!({ "model": model, "version": version, "error": err.to_string() }))
            }
        }
    }
    let kept: Vec<_> = plan
        .keep
        .iter()
        .map(|(m, v)| json!({ "model": m, "version": v }))
        .collect();
    Ok(HttpResponse::Ok().json(
        json!({ "loaded": loaded, "unloaded": unloaded, "unchanged": kept, "failed": failed }),
    ))
}

/// `POST /v2/repository/index`: every version in the repository and whether it serves.
pub async fn repository_index(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let root = state.repository.clone();
    let on_disk = web::block(move || scan_repository(&root))
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let served: BTreeMap<VersionKey, bool> = mailbox(state.router().send(ListVersions).await)?
        .into_iter()
        .collect();
    let pending: BTreeMap<VersionKey, Pending> = mailbox(state.supervisor.send(ListPending).await)?
        .into_iter()
        .collect();
    let mut keys: BTreeSet<VersionKey> = on_disk
        .into_iter()
        .map(|(m, v)| VersionKey::new(m, v))
        .collect();
    keys.extend(served.keys().cloned());
    let index: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let (state, reason) = match (served.get(&key), pending.get(&key)) {
                (Some(true), _) => ("READY", String::new()),
                (Some(false), _) => ("UNAVAILABLE", "restarting".to_string()),
                (None, Some(Pending::Loading { .. })) => ("LOADING", String::new()),
                (None, Some(Pending::Failed { error })) => ("UNAVAILABLE", error.clone()),
                (None, _) => ("UNAVAILABLE", "unloaded".to_string()),
            };
            json!({ "name": key.model, "version": key.version, "state": state, "reason": reason })
        })
        .collect();
    Ok(HttpResponse::Ok().json(index))
}

/// `POST /v2/repository/models/{m}/load`: load (or reload) every version of `m` in the repository.
pub async fn repository_load(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let model = path.into_inner();
    let root = state.repository.clone();
    let versions: Vec<String> = web::block(move || scan_repository(&root))
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .into_iter()
        .filter(|(m, _)| *m == model)
        .map(|(_, v)| v)
        .collect();
    if versions.is_empty() {
        return Err(
            LifecycleError::NotFound(format!("model '{model}' is not in the repository")).into(),
        );
    }
    let device = device_for(&state, &model, None)?;
    let mut loaded = Vec::new();
    for version in &versions {
        let report = mailbox(
            state
                .supervisor
                .send(LoadVersion::new(&model, version, device))
                .await,
        )??;
        loaded.push(loaded_json(&model, version, &report));
    }
    Ok(HttpResponse::Ok().json(json!({ "name": model, "versions": loaded })))
}

/// `POST /v2/repository/models/{m}/unload`: unload every loaded version of `m`.
pub async fn repository_unload(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let model = path.into_inner();
    let described = mailbox(
        state
            .router()
            .send(DescribeModel {
                model: model.clone(),
                version: None,
            })
            .await,
    )??;
    for version in &described.versions {
        mailbox(
            state
                .supervisor
                .send(UnloadVersion {
                    key: VersionKey::new(&model, version),
                })
                .await,
        )??;
    }
    Ok(HttpResponse::Ok().json(json!({ "name": model, "unloaded": described.versions })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        pairs
            .iter()
            .map(|(m, v)| (m.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reconcile_loads_new_unloads_removed_keeps_the_rest() {
        let plan = plan_reconcile(
            &set(&[("a", "1"), ("a", "2"), ("b", "1")]),
            &set(&[("a", "1"), ("c", "1")]),
        );
        assert_eq!(
            plan.load,
            vec![("a".into(), "2".into()), ("b".into(), "1".into())]
        );
        assert_eq!(plan.unload, vec![("c".into(), "1".into())]);
        assert_eq!(plan.keep, vec![("a".into(), "1".into())]);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
