//! `ModelSupervisor`: the lifecycle of versions. A load reads `model.toml` (or takes an
//! override), starts the version's `ModelActor` (whose executor builds the network and warms it
//! up with a real forward pass) and only then routes to it; a reload is a load of the same key
//! that replaces the routed version atomically and drains the old one; an unload takes the
//! version out of the route table at once, then drains it (accepted requests are answered, then
//! the executor ends and its weights are freed). A failed load leaves what serves untouched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use burnserve_models::{Device, ModelSpec};

use crate::executor::ExecutorConfig;
use crate::messages::VersionKey;
use crate::metrics::Metrics;
use crate::model_actor::{Drain, ModelActor};
use crate::router::{ModelRouter, RegisterVersion, RemoveVersion, VersionEntry};
use crate::state::VersionState;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LifecycleError {
    /// No such model or version (in the repository, or loaded).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (bad `model.toml` override).
    #[error("{0}")]
    Invalid(String),
    /// The version's files could not be served (missing or bad weights, wrong shapes).
    #[error("{0}")]
    LoadFailed(String),
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

impl LifecycleError {
    pub fn error_type(&self) -> &'static str {
        match self {
            LifecycleError::NotFound(_) => "model_not_found",
            LifecycleError::Invalid(_) => "invalid_input",
            LifecycleError::LoadFailed(_) => "load_failed",
            LifecycleError::ShuttingDown => "shutting_down",
        }
    }
}

/// A version the supervisor knows of that is not (yet) routed.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    Loading {
        since: Instant,
    },
    /// Replaced or unloaded instances still answering their accepted requests.
    Draining {
        count: usize,
    },
    Failed {
        error: String,
    },
}

pub struct ModelSupervisor {
    repository: PathBuf,
    router: Addr<ModelRouter>,
    metrics: Metrics,
    pending: HashMap<VersionKey, Pending>,
    draining: HashMap<VersionKey, usize>,
}

impl ModelSupervisor {
    pub fn new(repository: PathBuf, router: Addr<ModelRouter>, metrics: Metrics) -> Self {
        Self {
            repository,
            router,
            metrics,
            pending: HashMap::new(),
            draining: HashMap::new(),
        }
    }

    /// Drains `entry` as a tracked background task of this actor.
    fn drain_tracked(
        &mut self,
        key: VersionKey,
        entry: VersionEntry,
    ) -> impl ActorFuture<Self, Output = ()> + 'static {
        *self.draining.entry(key.clone()).or_default() += 1;
        drain(entry)
            .into_actor(self)
            .map(move |_, supervisor, _ctx| {
                if let Some(count) = supervisor.draining.get_mut(&key) {
                    *count -= 1;
                    if *count == 0 {
                        supervisor.draining.remove(&key);
                    }
                }
            })
    }
}

impl Actor for ModelSupervisor {
    type Context = Context<Self>;
}

/// Whether a load is a first load or a reload (for the lifecycle metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadAction {
    Load,
    Reload,
}

impl LoadAction {
    fn label(self) -> &'static str {
        match self {
            LoadAction::Load => "load",
            LoadAction::Reload => "reload",
        }
    }
}

/// Load `model`/`version` from the repository onto `device` (or re-load it: same key) and
/// route to it once warm.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<LoadReport, LifecycleError>")]
pub struct LoadVersion {
    pub model: String,
    pub version: String,
    pub device: Device,
    pub make_default: bool,
    /// Used instead of the version's `model.toml` when given.
    pub spec: Option<ModelSpec>,
    pub action: LoadAction,
}

impl LoadVersion {
    pub fn new(model: impl Into<String>, version: impl Into<String>, device: Device) -> Self {
        Self {
            model: model.into(),
            version: version.into(),
            device,
            make_default: false,
            spec: None,
            action: LoadAction::Load,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    pub took: Duration,
    pub weight_bytes: usize,
    /// A previous version under the same key was replaced (and is draining).
    pub replaced: bool,
}

/// Retires a replaced or unloaded version: its queue sender goes first, then the actor drains.
/// Holds no `Addr` while waiting, so the drained actor stops for good.
pub async fn drain(entry: VersionEntry) {
    let VersionEntry { addr, queue, .. } = entry;
    drop(queue);
    let done = addr.send(Drain);
    drop(addr);
    let _ = done.await;
}

impl Handler<LoadVersion> for ModelSupervisor {
    type Result = ResponseActFuture<Self, Result<LoadReport, LifecycleError>>;

    fn handle(&mut self, msg: LoadVersion, _ctx: &mut Self::Context) -> Self::Result {
        let key = VersionKey::new(msg.model.clone(), msg.version.clone());
        let dir = self.repository.join(&msg.model).join(&msg.version);
        let router = self.router.clone();
        let metrics = self.metrics.clone();
        let action = msg.action;
        self.pending.insert(
            key.clone(),
            Pending::Loading {
                since: Instant::now(),
            },
        );
        let load_key = key.clone();
        let load = async move {
            let key = load_key;
            if !dir.is_dir() {
                return Err(LifecycleError::NotFound(format!(
                    "no version directory {}/{} in the repository",
                    key.model, key.version
                )));
            }
            let spec = match msg.spec {
                Some(spec) => spec
                    .validate()
                    .map(|_| spec)
                    .map_err(|e| LifecycleError::Invalid(e.to_string()))?,
                None => ModelSpec::from_dir(&dir)
                    .map_err(|e| LifecycleError::LoadFailed(e.to_string()))?,
            };
            let spec = Arc::new(spec);
            let version_metrics = metrics.version(&key, &msg.device.to_string());
            let state = Arc::new(VersionState::default());
            let config = ExecutorConfig {
                key: key.clone(),
                spec: spec.clone(),
                dir,
                device: msg.device,
                state,
            };
            let started = ModelActor::start(config, version_metrics.clone());
            let loaded = started
                .ready
                .await
                .map_err(|_| {
                    LifecycleError::LoadFailed("the version's actor stopped while loading".into())
                })?
                .map_err(|e| LifecycleError::LoadFailed(e.to_string()))?;
            let entry = VersionEntry {
                addr: started.addr,
                queue: started.queue,
                spec,
                state: started.state,
                metrics: version_metrics,
                device: msg.device,
            };
            let replaced = router
                .send(RegisterVersion {
                    key: key.clone(),
                    entry,
                    make_default: msg.make_default,
                })
                .await
                .map_err(|_| LifecycleError::ShuttingDown)?;
            metrics.record_load(&key, loaded.took);
            let report = LoadReport {
                took: loaded.took,
                weight_bytes: loaded.weight_bytes,
                replaced: replaced.is_some(),
            };
            Ok((report, replaced))
        };
        Box::pin(load.into_actor(self).map(move |result, supervisor, ctx| {
            let result = result.map(|(report, replaced)| {
                if let Some(old) = replaced {
                    let draining = supervisor.drain_tracked(key.clone(), old);
                    ctx.spawn(draining);
                }
                report
            });
            let outcome = if result.is_ok() { "success" } else { "failure" };
            match &result {
                Ok(_) => {
                    supervisor.pending.remove(&key);
                }
                Err(LifecycleError::NotFound(_)) => {
                    supervisor.pending.remove(&key);
                }
                Err(err) => {
                    supervisor.pending.insert(
                        key.clone(),
                        Pending::Failed {
                            error: err.to_string(),
                        },
                    );
                }
            }
            // Only versions present in the repository get labels: no label from raw input.
            if !matches!(result, Err(LifecycleError::NotFound(_))) {
                supervisor
                    .metrics
                    .record_lifecycle(&key, action.label(), outcome);
            }
            result
        }))
    }
}

/// Take a version out of routing and drain it; resolves once its executor ended (weights freed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), LifecycleError>")]
pub struct UnloadVersion {
    pub key: VersionKey,
}

impl Handler<UnloadVersion> for ModelSupervisor {
    type Result = ResponseActFuture<Self, Result<(), LifecycleError>>;

    fn handle(&mut self, msg: UnloadVersion, _ctx: &mut Self::Context) -> Self::Result {
        let router = self.router.clone();
        let key = msg.key;
        let failed_only = matches!(self.pending.get(&key), Some(Pending::Failed { .. }));
        let remove = router.send(RemoveVersion { key: key.clone() });
        Box::pin(
            remove
                .into_actor(self)
                .then(move |removed, supervisor, _ctx| {
                    supervisor.pending.remove(&key);
                    let outcome: Box<dyn ActorFuture<Self, Output = Result<(), LifecycleError>>> =
                        match removed {
                            Err(_) => Box::new(fut::ready(Err(LifecycleError::ShuttingDown))),
                            Ok(Some(entry)) => {
                                supervisor.metrics.record_unloaded(&key);
                                supervisor
                                    .metrics
                                    .record_lifecycle(&key, "unload", "success");
                                Box::new(supervisor.drain_tracked(key, entry).map(|_, _, _| Ok(())))
                            }
                            Ok(None) if failed_only => Box::new(fut::ready(Ok(()))),
                            Ok(None) => {
                                Box::new(fut::ready(Err(LifecycleError::NotFound(format!(
                                    "model '{}' has no loaded version '{}'",
                                    key.model, key.version
                                )))))
                            }
                        };
                    Box::into_pin(outcome)
                }),
        )
    }
}

/// Versions loading, draining or failed (not routed), for the admin listing.
#[derive(Message)]
#[rtype(result = "Vec<(VersionKey, Pending)>")]
pub struct ListPending;

impl Handler<ListPending> for ModelSupervisor {
    type Result = MessageResult<ListPending>;

    fn handle(&mut self, _msg: ListPending, _ctx: &mut Self::Context) -> Self::Result {
        let mut all: Vec<(VersionKey, Pending)> = self
            .pending
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        all.extend(
            self.draining
                .iter()
                .map(|(k, &count)| (k.clone(), Pending::Draining { count })),
        );
        all.sort_by(|a, b| a.0.cmp(&b.0));
        MessageResult(all)
    }
}
