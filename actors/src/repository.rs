//! The repository side of `ModelControl`: Triton's repository extension (index, load and
//! unload of a whole model, following its `version_policy`), the model control modes (`none`
//! and `poll` load what the repository holds; `explicit` only what is asked), and the poll that
//! keeps the served versions those of the repository: new versions load and become the default
//! before old ones unload, changed files reload (load before unload, a broken file leaves the
//! serving version alone), removed versions unload.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use burnserve_models::triton::{self, RepoModel};
use burnserve_models::{Device, Jail};

use crate::control::{
    check_names, ControlMode, IndexStatus, LoadOptions, ModelControl, RoutingChange,
};
use crate::error::ControlError;
use crate::lifecycle::VersionPhase;
use crate::messages::VersionKey;
use crate::router::ListVersions;
use crate::supervisor::{ListInstances, LoadReport};

/// What one pass over the repository did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub loaded: Vec<VersionKey>,
    pub reloaded: Vec<VersionKey>,
    pub unloaded: Vec<VersionKey>,
    pub failed: Vec<(VersionKey, ControlError)>,
}

impl SyncReport {
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty()
            && self.reloaded.is_empty()
            && self.unloaded.is_empty()
            && self.failed.is_empty()
    }
}

impl ModelControl {
    /// The repository's model directories, as a load would read them.
    pub async fn repository_models(&self) -> Result<Vec<RepoModel>, ControlError> {
        let (root, symlinks) = (self.repository.path.clone(), self.repository.symlinks);
        tokio::task::spawn_blocking(move || {
            Jail::open(&root, symlinks).map_or_else(|_| Vec::new(), |jail| triton::scan(&jail))
        })
        .await
        .map_err(|e| ControlError::LoadFailed(format!("scanning the repository: {e}")))
    }

    /// The device `config.pbtxt` of `model` asks for, if it has one.
    pub(crate) async fn repository_device(&self, model: &str) -> Option<Device> {
        let (root, symlinks) = (self.repository.path.clone(), self.repository.symlinks);
        let model = model.to_string();
        tokio::task::spawn_blocking(move || {
            let jail = Jail::open(&root, symlinks).ok()?;
            triton::repository::configured_device(&jail, &model)
        })
        .await
        .ok()
        .flatten()
    }

    fn refuse_in_repository_modes(&self, what: &str) -> Result<(), ControlError> {
        match self.repository.mode {
            ControlMode::Explicit => Ok(()),
            mode => Err(ControlError::Forbidden(format!(
                "the model control mode is {mode}: the repository decides what is served, so \
                 a model cannot be {what} through the repository API (start with \
                 --model-control-mode explicit)"
            ))),
        }
    }

    /// The v2 repository load: the versions of `model` the repository serves (its version
    /// policy), then the routing it had when the repository unloaded it, else the settings'
    /// default version, else (Triton models) the latest; versions no longer served unload.
    pub async fn load_model(&self, model: &str) -> Result<Vec<(String, LoadReport)>, ControlError> {
        check_names(model, None)?;
        self.refuse_in_repository_modes("loaded")?;
        self.load_repository_model(model).await
    }

    /// [`Self::load_model`] whatever the control mode (start-up, `--load-model`).
    pub async fn load_repository_model(
        &self,
        model: &str,
    ) -> Result<Vec<(String, LoadReport)>, ControlError> {
        check_names(model, None)?;
        let found = self
            .repository_models()
            .await?
            .into_iter()
            .find(|m| m.name == model)
            .ok_or_else(|| {
                ControlError::NotFound(format!("model '{model}' is not in the repository"))
            })?;
        let versions = found.serves.clone().map_err(ControlError::LoadFailed)?;
        let mut loaded = Vec::new();
        for version in &versions {
            let report = self.load(model, version, LoadOptions::default()).await?;
            let print = found.fingerprints.get(version).copied().unwrap_or(0);
            self.catalog()
                .loaded_prints
                .insert(VersionKey::new(model, version), print);
            loaded.push((version.clone(), report));
        }
        let remembered = self.catalog().unloaded_routing.remove(model);
        let change = match remembered {
            Some(routing) => RoutingChange {
                default_version: routing.default_version,
                weights: Some(routing.weights),
            },
            None => RoutingChange {
                default_version: self
                    .configured(model)
                    .and_then(|m| m.default_version)
                    .or_else(|| found.default_version()),
                weights: None,
            },
        };
        if change.default_version.is_some() || change.weights.is_some() {
            // A remembered version may be gone from the repository: then the loads stand as
            // they are rather than failing after the fact.
            if let Err(err) = self.set_routing(model, change).await {
                tracing::warn!(model, error = %err, "could not restore the model's routing");
            }
        }
        if found.is_triton() {
            for key in self.served().await? {
                if key.model == model && !versions.contains(&key.version) {
                    self.unload(model, &key.version).await?;
                    self.catalog().loaded_prints.remove(&key);
                }
            }
        }
        Ok(loaded)
    }

    /// The v2 repository unload: every loaded version of `model`; its routing is remembered
    /// for the next repository load.
    pub async fn unload_model(&self, model: &str) -> Result<Vec<String>, ControlError> {
        self.refuse_in_repository_modes("unloaded")?;
        let described = self.describe(model, None).await?;
        self.catalog()
            .unloaded_routing
            .insert(model.to_string(), described.routing.clone());
        for version in &described.versions {
            self.unload(model, version).await?;
            self.catalog()
                .loaded_prints
                .remove(&VersionKey::new(model, version));
        }
        Ok(described.versions)
    }

    async fn served(&self) -> Result<Vec<VersionKey>, ControlError> {
        Ok(self
            .router
            .send(ListVersions)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// Every version in the repository or served, and its state; a model the repository
    /// cannot serve at all (its `config.pbtxt` refused) is one entry with an empty version
    /// when it has no version directory, else one per directory, each with the reason.
    pub async fn repository_index(&self) -> Result<Vec<(VersionKey, IndexStatus)>, ControlError> {
        let models = self.repository_models().await?;
        let served: BTreeMap<VersionKey, bool> =
            self.router.send(ListVersions).await?.into_iter().collect();
        let instances = self.supervisor.send(ListInstances).await?;
        let mut keys: BTreeSet<VersionKey> = served.keys().cloned().collect();
        let mut unavailable: BTreeMap<VersionKey, String> = BTreeMap::new();
        for model in &models {
            let versions: Vec<&String> = model.on_disk.iter().collect();
            if let Err(reason) = &model.serves {
                if versions.is_empty() {
                    unavailable.insert(VersionKey::new(&model.name, ""), reason.clone());
                }
                for version in &versions {
                    unavailable.insert(VersionKey::new(&model.name, *version), reason.clone());
                }
            }
            keys.extend(
                versions
                    .into_iter()
                    .map(|v| VersionKey::new(&model.name, v)),
            );
        }
        keys.extend(unavailable.keys().cloned());
        Ok(keys
            .into_iter()
            .map(|key| {
                let unrouted = instances
                    .iter()
                    .filter(|s| *s.key() == key)
                    .find(|s| matches!(s.phase(), VersionPhase::Loading | VersionPhase::Failed));
                let status = match (served.get(&key), unrouted) {
                    (Some(true), _) => IndexStatus::Ready,
                    (Some(false), _) => IndexStatus::Restarting,
                    (None, Some(s)) if s.phase() == VersionPhase::Loading => IndexStatus::Loading,
                    (None, Some(s)) => IndexStatus::Failed(s.failure().unwrap_or_default()),
                    (None, None) => match unavailable.get(&key) {
                        Some(reason) => IndexStatus::Unavailable(reason.clone()),
                        None => IndexStatus::Unloaded,
                    },
                };
                (key, status)
            })
            .collect())
    }

    /// One pass of the `none`/`poll` modes: makes the served versions of every repository
    /// model those its directory serves now. New versions load first, then each model's
    /// default moves (the settings' default version, else the latest of a Triton model), then
    /// versions no longer served unload. A version whose files changed loads again (the new
    /// instance replaces the old once warm; a load that fails leaves the old one serving). A
    /// model whose configuration broke keeps what it serves. Failed loads are retried when
    /// their files change.
    pub async fn sync_repository(&self) -> Result<SyncReport, ControlError> {
        let models = self.repository_models().await?;
        let served = self.served().await?;
        let mut report = SyncReport::default();
        for model in &models {
            let Ok(versions) = &model.serves else {
                continue;
            };
            // The default moves only when the model's versions change.
            let mut touched = served
                .iter()
                .any(|k| k.model == model.name && !versions.contains(&k.version));
            for version in versions {
                let key = VersionKey::new(&model.name, version);
                let print = model.fingerprints.get(version).copied().unwrap_or(0);
                let last = self.catalog().loaded_prints.get(&key).copied();
                if last == Some(print) {
                    continue;
                }
                let reload = served.contains(&key);
                touched = true;
                self.catalog().loaded_prints.insert(key.clone(), print);
                match self
                    .load(&model.name, version, LoadOptions::default())
                    .await
                {
                    Ok(_) if reload => report.reloaded.push(key),
                    Ok(_) => report.loaded.push(key),
                    Err(ControlError::ShuttingDown) => return Err(ControlError::ShuttingDown),
                    Err(err) => report.failed.push((key, err)),
                }
            }
            let configured_default = self.configured(&model.name).and_then(|m| m.default_version);
            if let Some(default) = configured_default.or_else(|| model.default_version()) {
                if touched {
                    let change = RoutingChange {
                        default_version: Some(default),
                        weights: None,
                    };
                    // A default that failed to load: the model keeps its current default.
                    let _ = self.set_routing(&model.name, change).await;
                }
            }
        }
        for key in &served {
            let keep = match models.iter().find(|m| m.name == key.model) {
                Some(model) => match &model.serves {
                    Ok(versions) => versions.contains(&key.version),
                    Err(_) => true,
                },
                None => false,
            };
            if keep {
                continue;
            }
            match self.unload(&key.model, &key.version).await {
                Ok(()) => report.unloaded.push(key.clone()),
                Err(ControlError::ShuttingDown) => return Err(ControlError::ShuttingDown),
                Err(err) => report.failed.push((key.clone(), err)),
            }
            self.catalog().loaded_prints.remove(key);
        }
        Ok(report)
    }

    /// The `poll` mode's loop: [`Self::sync_repository`] every `interval`, until the runtime
    /// shuts down.
    pub async fn poll_repository(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            match self.sync_repository().await {
                Ok(report) if report.is_empty() => {}
                Ok(report) => {
                    for (key, err) in &report.failed {
                        tracing::warn!(version = %key, error = %err, "repository poll: could not load");
                    }
                    tracing::info!(
                        loaded = report.loaded.len(),
                        reloaded = report.reloaded.len(),
                        unloaded = report.unloaded.len(),
                        failed = report.failed.len(),
                        "repository poll"
                    );
                }
                Err(ControlError::ShuttingDown) => return,
                Err(err) => tracing::warn!(error = %err, "repository poll failed"),
            }
        }
    }
}
