//! `ModelControl`: the control-plane handle (admin API, v2 repository extension, start-up).
//! List, describe, load, reload, unload, route, and reconcile with a settings file; it keeps the
//! settings as last given (`reconcile`), so an admin load of a configured model takes its device
//! from there, and the routing a model had when the repository unloaded it, so a repository load
//! restores it. It holds the repository's settings (`RepositoryConfig`: its root, which links a
//! load follows, the memory cap and deadline of a load), which every load carries to the
//! supervisor and the scan obeys. Callers never see an actor (ARCHITECTURE.md, "Handles").

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use burnserve_models::spec::is_valid_name;
use burnserve_models::{Device, LoadLimits, ModelSpec, Symlinks};

use crate::error::ControlError;
use crate::guardian::SupervisorGuardian;
use crate::lifecycle::{VersionPhase, VersionState};
use crate::messages::VersionKey;
use crate::reconcile::{plan_reconcile, ModelConfig};
use crate::router::{
    DescribeModel, ListDetailed, ListVersions, ModelDescription, ModelRouter, Routing, SetRouting,
    VersionInfo,
};
use crate::supervisor::{ListInstances, LoadAction, LoadReport, LoadVersion, UnloadVersion};

/// The model repository as the runtime reads it (`[repository]` settings): its root, the links
/// a load follows inside it, and what one load may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryConfig {
    pub path: std::path::PathBuf,
    /// `repository.symlinks`: links below the root are followed only when they resolve inside
    /// it (`Inside`, the default), or never (`None`).
    pub symlinks: Symlinks,
    /// `repository.max_model_bytes` and `repository.load_timeout_ms`.
    pub limits: LoadLimits,
    /// `repository.control_mode`: who decides what the repository serves.
    pub mode: ControlMode,
}

/// Triton's model control modes (`--model-control-mode`, `repository.control_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlMode {
    /// Every model of the repository is loaded at start; the repository API may not load or
    /// unload.
    None,
    /// Only the settings' models (and `--load-model` names) at start; the repository API loads
    /// and unloads.
    #[default]
    Explicit,
    /// As `none`, then the repository is watched: new versions load, changed ones reload
    /// (load before unload), removed ones unload.
    Poll,
}

impl std::fmt::Display for ControlMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControlMode::None => "none",
            ControlMode::Explicit => "explicit",
            ControlMode::Poll => "poll",
        })
    }
}

impl From<std::path::PathBuf> for RepositoryConfig {
    /// The repository at `path` with the default link policy and limits.
    fn from(path: std::path::PathBuf) -> Self {
        Self {
            path,
            symlinks: Symlinks::default(),
            limits: LoadLimits::default(),
            mode: ControlMode::default(),
        }
    }
}

/// How to load a version.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `None`: the device the settings give the model, else `cpu`.
    pub device: Option<Device>,
    /// Make it the model's default version.
    pub make_default: bool,
    /// Used instead of the version's `model.toml`.
    pub spec: Option<ModelSpec>,
}

/// A version instance that is not routed: loading, draining or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingVersion {
    pub key: VersionKey,
    pub phase: VersionPhase,
    pub device: Device,
    /// Since its load started.
    pub age: Duration,
    /// Instances of the version in this phase (several replaced ones may drain at once).
    pub instances: usize,
    /// Why its load failed (`Failed`).
    pub error: Option<String>,
}

/// Everything the runtime holds: routed versions, then the ones loading, draining or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub routed: Vec<VersionInfo>,
    pub pending: Vec<PendingVersion>,
}

/// A version of the repository as the v2 repository index reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexStatus {
    Ready,
    Restarting,
    Loading,
    Failed(String),
    Unloaded,
    /// The repository cannot serve it (its `config.pbtxt` was refused, or no version
    /// directory matches its version policy): why.
    Unavailable(String),
}

/// A routing change: the default version, the weighted split, or both. `weights: Some(empty)`
/// ends the split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingChange {
    pub default_version: Option<String>,
    pub weights: Option<BTreeMap<String, u32>>,
}

/// What a reconcile did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    pub loaded: Vec<(VersionKey, LoadReport)>,
    pub unloaded: Vec<VersionKey>,
    pub unchanged: Vec<VersionKey>,
    pub failed: Vec<(VersionKey, ControlError)>,
}

#[derive(Default)]
pub(crate) struct Catalog {
    /// The settings' models, as last reconciled.
    pub(crate) configured: BTreeMap<String, ModelConfig>,
    /// The routing of models the repository unloaded, restored by a repository load.
    pub(crate) unloaded_routing: HashMap<String, Routing>,
    /// The fingerprint of each version's files when the repository last loaded it (or tried
    /// to): the poll reloads a version when its files change, and retries a failed one only
    /// then.
    pub(crate) loaded_prints: HashMap<VersionKey, u64>,
}

#[derive(Clone)]
pub struct ModelControl {
    pub(crate) router: Addr<ModelRouter>,
    pub(crate) supervisor: SupervisorGuardian,
    pub(crate) repository: RepositoryConfig,
    catalog: Arc<Mutex<Catalog>>,
}

/// Refuses a model or version name that could leave the repository (`..`, separators, anything
/// outside `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`), before anything touches the disk.
pub fn check_names(model: &str, version: Option<&str>) -> Result<(), ControlError> {
    let refuse = |what: &str| {
        Err(ControlError::Invalid(format!(
            "{what} names must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}"
        )))
    };
    if !is_valid_name(model) {
        return refuse("model");
    }
    match version {
        Some(version) if !is_valid_name(version) => refuse("version"),
        _ => Ok(()),
    }
}

impl ModelControl {
    pub(crate) fn new(
        router: Addr<ModelRouter>,
        supervisor: SupervisorGuardian,
        repository: RepositoryConfig,
    ) -> Self {
        Self {
            router,
            supervisor,
            repository,
            catalog: Arc::default(),
        }
    }

    /// Whether the control plane runs: the router, and the model supervisor (restarted first
    /// when it died). Readiness answers 503 when this is false.
    pub fn is_alive(&self) -> bool {
        self.router.connected() && self.supervisor.is_alive()
    }

    #[cfg(test)]
    pub(crate) fn parts(&self) -> (&Addr<ModelRouter>, &SupervisorGuardian) {
        (&self.router, &self.supervisor)
    }

    /// Whether the settings as last reconciled list `key` (strict readiness counts only these).
    pub fn is_configured(&self, key: &VersionKey) -> bool {
        self.catalog()
            .configured
            .get(&key.model)
            .is_some_and(|model| model.versions.contains(&key.version))
    }

    pub(crate) fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        // Plain maps, each write complete: a poisoned lock still holds valid data.
        self.catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The settings entry of `model`, as last reconciled.
    pub fn configured(&self, model: &str) -> Option<ModelConfig> {
        self.catalog().configured.get(model).cloned()
    }

    /// Every routed version with its numbers, then every instance loading, draining or failed.
    pub async fn list(&self) -> Result<Listing, ControlError> {
        let routed = self.router.send(ListDetailed).await?;
        let instances = self.supervisor.send(ListInstances).await?;
        Ok(Listing {
            routed,
            pending: pending_versions(&instances),
        })
    }

    pub async fn describe(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<ModelDescription, ControlError> {
        let described = self
            .router
            .send(DescribeModel {
                model: model.to_string(),
                version: version.map(str::to_string),
            })
            .await?;
        Ok(described?)
    }

    /// Loads `model`/`version` from the repository (or loads it again: the new instance
    /// replaces the routed one once warm).
    pub async fn load(
        &self,
        model: &str,
        version: &str,
        options: LoadOptions,
    ) -> Result<LoadReport, ControlError> {
        check_names(model, Some(version))?;
        let device = match (options.device, self.configured(model)) {
            (Some(device), _) => device,
            (None, Some(configured)) => configured.device,
            (None, None) => self.repository_device(model).await.unwrap_or(Device::Cpu),
        };
        if !device.is_supported() {
            return Err(ControlError::Invalid(format!(
                "{device} needs burnserve built with --features cuda"
            )));
        }
        self.supervisor
            .send(LoadVersion {
                key: VersionKey::new(model, version),
                device: Some(device),
                make_default: options.make_default,
                spec: options.spec,
                action: LoadAction::Load,
                symlinks: self.repository.symlinks,
                limits: self.repository.limits,
            })
            .await?
    }

    /// Re-reads a loaded version's weights and `model.toml` onto the device it serves on.
    pub async fn reload(&self, model: &str, version: &str) -> Result<LoadReport, ControlError> {
        check_names(model, Some(version))?;
        self.supervisor
            .send(LoadVersion {
                key: VersionKey::new(model, version),
                device: None,
                make_default: false,
                spec: None,
                action: LoadAction::Reload,
                symlinks: self.repository.symlinks,
                limits: self.repository.limits,
            })
            .await?
    }

    /// Stops routing to a version at once; resolves when its accepted requests were answered
    /// and its weights freed.
    pub async fn unload(&self, model: &str, version: &str) -> Result<(), ControlError> {
        self.supervisor
            .send(UnloadVersion {
                key: VersionKey::new(model, version),
            })
            .await?
    }

    pub async fn set_routing(
        &self,
        model: &str,
        change: RoutingChange,
    ) -> Result<Routing, ControlError> {
        let routing = self
            .router
            .send(SetRouting {
                model: model.to_string(),
                default_version: change.default_version,
                weights: change.weights,
            })
            .await?;
        Ok(routing?)
    }

    /// Makes the served versions those of `models` (the settings file, re-read): loads the
    /// added versions, sets the configured default versions, then unloads what is no longer
    /// listed (load before unload; under control mode `none`/`poll`, only what the previous
    /// settings listed: the repository's own models stay). Remembers `models` for later admin
    /// loads.
    pub async fn reconcile(&self, models: &[ModelConfig]) -> Result<ReconcileReport, ControlError> {
        let before = std::mem::replace(
            &mut self.catalog().configured,
            models.iter().map(|m| (m.name.clone(), m.clone())).collect(),
        );
        let served: Vec<VersionKey> = self
            .router
            .send(ListVersions)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let mut plan = plan_reconcile(models, &served);
        if self.repository.mode != ControlMode::Explicit {
            // The repository decides what serves: a settings file unloads only what it used
            // to list.
            plan.unload.retain(|key| {
                before
                    .get(&key.model)
                    .is_some_and(|m| m.versions.contains(&key.version))
            });
        }
        let mut report = ReconcileReport {
            unchanged: plan.keep,
            ..ReconcileReport::default()
        };
        for key in plan.load {
            let config = models.iter().find(|m| m.name == key.model);
            let options = LoadOptions {
                device: config.map(|m| m.device),
                make_default: config.and_then(|m| m.default_version.as_deref())
                    == Some(key.version.as_str()),
                spec: None,
            };
            match self.load(&key.model, &key.version, options).await {
                Ok(loaded) => report.loaded.push((key, loaded)),
                Err(ControlError::ShuttingDown) => return Err(ControlError::ShuttingDown),
                Err(err) => report.failed.push((key, err)),
            }
        }
        for model in models {
            if let Some(default) = &model.default_version {
                let change = RoutingChange {
                    default_version: Some(default.clone()),
                    weights: None,
                };
                if let Err(err) = self.set_routing(&model.name, change).await {
                    report
                        .failed
                        .push((VersionKey::new(&model.name, default), err));
                }
            }
        }
        for key in plan.unload {
            match self.unload(&key.model, &key.version).await {
                Ok(()) => report.unloaded.push(key),
                Err(ControlError::ShuttingDown) => return Err(ControlError::ShuttingDown),
                Err(err) => report.failed.push((key, err)),
            }
        }
        Ok(report)
    }
}

/// Groups unrouted instances: one row per loading or failed instance, one per draining version.
fn pending_versions(instances: &[Arc<VersionState>]) -> Vec<PendingVersion> {
    let mut rows: Vec<PendingVersion> = Vec::new();
    for state in instances {
        let phase = state.phase();
        if !matches!(
            phase,
            VersionPhase::Loading | VersionPhase::Draining | VersionPhase::Failed
        ) {
            continue;
        }
        if phase == VersionPhase::Draining {
            if let Some(row) = rows
                .iter_mut()
                .find(|r| r.phase == phase && r.key == *state.key())
            {
                row.instances += 1;
                continue;
            }
        }
        rows.push(PendingVersion {
            key: state.key().clone(),
            phase,
            device: state.device(),
            age: state.age(),
            instances: 1,
            error: state.failure(),
        });
    }
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}
