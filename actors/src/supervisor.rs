//! `ModelSupervisor`: starts and retires version instances. A load reads `model.toml` (or takes
//! an override), starts the version's `ModelActor` (whose executor builds the network and warms
//! it up with a real forward pass) and only then routes to it; a reload is a load of the same key
//! that replaces the routed instance atomically and drains the old one; an unload takes the
//! version out of the route table at once, then drains it (accepted requests are answered, then
//! the executor ends and its weights are freed). A failed load leaves what serves untouched.
//!
//! Every path a load reads goes through the repository jail (a version directory, or a
//! `model.toml`, behind a link leading out of the root is refused before an instance exists);
//! a load has a deadline (`repository.load_timeout_ms`, from its request): past it the load
//! answers `load_failed`, the instance ends `Failed`, the build is cancelled (it stops at its
//! next check, and a model built anyway is dropped, never served), and no second load of the
//! version starts while the abandoned build still runs.
//!
//! It keeps every instance it started until the instance is `Stopped`; each instance's phase
//! lives in its `VersionState` and changes only through the lifecycle's transition function
//! (ARCHITECTURE.md, "Lifecycle"). The list lives in [`Instances`], outside the actor, so the
//! supervisor's own supervisor (`guardian`) restarts it with everything it knew.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use burnserve_models::{Cancel, Device, Jail, LoadLimits, ModelSpec, Symlinks};
use crossbeam_channel::Sender;

use crate::error::ControlError;
use crate::executor::ExecutorConfig;
use crate::lifecycle::{LifecycleEvent, VersionPhase, VersionState};
use crate::messages::{Job, VersionKey};
use crate::metrics::Metrics;
use crate::model_actor::{Drain, ModelActor, StartedVersion};
use crate::router::{ModelRouter, RegisterVersion, RemoveVersion, VersionEntry};

/// Every instance started and not yet `Stopped`, shared by the supervisor and its guardian.
#[derive(Clone, Default)]
pub struct Instances(Arc<Mutex<Vec<Arc<VersionState>>>>);

impl Instances {
    pub fn lock(&self) -> MutexGuard<'_, Vec<Arc<VersionState>>> {
        // Each write is one push or retain: a poisoned lock still holds a valid list.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the instances that are `Stopped`, once no build of theirs runs (an abandoned
    /// build stays known until it ended, so no second one starts beside it).
    pub fn prune(&self) {
        self.lock()
            .retain(|state| state.phase() != VersionPhase::Stopped || state.is_building());
    }
}

pub struct ModelSupervisor {
    repository: PathBuf,
    router: Addr<ModelRouter>,
    metrics: Metrics,
    instances: Instances,
}

impl ModelSupervisor {
    pub fn new(
        repository: PathBuf,
        router: Addr<ModelRouter>,
        metrics: Metrics,
        instances: Instances,
    ) -> Self {
        Self {
            repository,
            router,
            metrics,
            instances,
        }
    }

    fn prune(&mut self) {
        self.instances.prune();
    }

    fn instances_of(&self, key: &VersionKey) -> Vec<Arc<VersionState>> {
        self.instances
            .lock()
            .iter()
            .filter(|s| s.key() == key)
            .cloned()
            .collect()
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

/// Load `key` from the repository (or re-load it: same key) and route to it once warm.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<LoadReport, ControlError>")]
pub struct LoadVersion {
    pub key: VersionKey,
    /// `None`: the device of the instance serving now (a reload), else `cpu`.
    pub device: Option<Device>,
    pub make_default: bool,
    /// Used instead of the version's `model.toml` when given.
    pub spec: Option<ModelSpec>,
    pub action: LoadAction,
    /// `repository.symlinks`: the links the load may follow inside the repository.
    pub symlinks: Symlinks,
    /// `repository.max_model_bytes` and `repository.load_timeout_ms`.
    pub limits: LoadLimits,
}

/// A finished load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    pub took: Duration,
    pub weight_bytes: usize,
    pub device: Device,
    /// A previous instance of the same version was replaced (and is draining).
    pub replaced: bool,
}

/// Retires a replaced or unloaded instance (already `Draining`): its queue sender goes first,
/// then the actor drains. Holds no `Addr` while waiting, so the drained actor stops for good.
async fn drain(entry: VersionEntry) {
    let VersionEntry { addr, queue, .. } = entry;
    drop(queue);
    let done = addr.send(Drain);
    drop(addr);
    let _ = done.await;
}

/// Gives up on an instance whose load passed its deadline: its sender, then the actor's (by
/// `Drain`), so that an executor that finished building anyway sees its queue close, ends, and
/// frees the model; the actor stops with it.
async fn abandon(addr: Addr<ModelActor>, queue: Sender<Job>) {
    drop(queue);
    let done = addr.send(Drain);
    drop(addr);
    let _ = done.await;
}

/// Where one load reads from and until when.
struct LoadPlan {
    jail: Arc<Jail>,
    dir: PathBuf,
    deadline: Instant,
}

/// Builds, warms and routes one instance; `Ok` carries the entry it replaced, if any.
async fn load_instance(
    msg: LoadVersion,
    plan: LoadPlan,
    state: Arc<VersionState>,
    router: Addr<ModelRouter>,
    metrics: Metrics,
) -> Result<(LoadReport, Option<VersionEntry>), ControlError> {
    let key = msg.key;
    let limits = msg.limits;
    let LoadPlan {
        jail,
        dir,
        deadline,
    } = plan;
    let spec = match msg.spec {
        Some(mut spec) => {
            spec.validate()
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
            // An `onnx` override may leave its signature to the graph.
            burnserve_models::onnx::complete_spec(&mut spec, &jail, &dir)
                .map_err(|e| ControlError::LoadFailed(e.to_string()))?;
            spec
        }
        None => burnserve_models::triton::version_spec(&jail, &key.model, &dir)
            .map_err(|e| ControlError::LoadFailed(e.to_string()))?,
    };
    let spec = Arc::new(spec);
    let device = state.device();
    let version_metrics = metrics.version(&key, &device.to_string());
    let cancel = Cancel::default();
    let config = ExecutorConfig {
        key: key.clone(),
        spec: spec.clone(),
        dir,
        device,
        state: state.clone(),
        jail,
        limits,
        cancel: cancel.clone(),
    };
    let StartedVersion { addr, queue, ready } = ModelActor::start(config, version_metrics.clone());
    let loaded = match tokio::time::timeout_at(deadline.into(), ready).await {
        Ok(built) => built
            .map_err(|_| {
                ControlError::LoadFailed("the version's actor stopped while loading".into())
            })?
            .map_err(|e| ControlError::LoadFailed(e.to_string()))?,
        Err(_) => {
            cancel.cancel();
            actix::spawn(abandon(addr, queue));
            return Err(ControlError::LoadFailed(limits.timeout_error().to_string()));
        }
    };
    let entry = VersionEntry {
        addr,
        queue,
        spec,
        state: state.clone(),
        metrics: version_metrics,
    };
    let unloaded_meanwhile = || {
        ControlError::NotFound(format!(
            "model '{}' version '{}' was unloaded while it loaded",
            key.model, key.version
        ))
    };
    // Ready before routed, so no request meets a routed instance that is still loading.
    if state.apply(LifecycleEvent::Loaded) != Ok(VersionPhase::Ready) {
        drain(entry).await;
        return Err(unloaded_meanwhile());
    }
    let replaced = router
        .send(RegisterVersion {
            key: key.clone(),
            entry,
            make_default: msg.make_default,
        })
        .await?;
    if state.phase() != VersionPhase::Ready {
        // Unloaded while the route table took it: take back exactly this instance.
        let mine = router
            .send(RemoveVersion {
                key: key.clone(),
                only: Some(state.clone()),
            })
            .await?;
        if let Some(mine) = mine {
            drain(mine).await;
        }
        return Err(unloaded_meanwhile());
    }
    metrics.record_load_time(&key, loaded.took);
    metrics.record_instances(&key, state.cost().instances());
    metrics.version_loaded(&key, &device.to_string(), loaded.weight_bytes);
    let report = LoadReport {
        took: loaded.took,
        weight_bytes: loaded.weight_bytes,
        device,
        replaced: replaced.is_some(),
    };
    Ok((report, replaced))
}

impl Handler<LoadVersion> for ModelSupervisor {
    // A plain future, spawned apart from the actor: a load in flight finishes (and answers its
    // caller) even if the supervisor dies meanwhile.
    type Result = ResponseFuture<Result<LoadReport, ControlError>>;

    fn handle(&mut self, msg: LoadVersion, _ctx: &mut Self::Context) -> Self::Result {
        self.prune();
        let key = msg.key.clone();
        if let Err(err) = crate::control::check_names(&key.model, Some(&key.version)) {
            return Box::pin(std::future::ready(Err(err)));
        }
        let refuse = |err: ControlError| -> Self::Result { Box::pin(std::future::ready(Err(err))) };
        // The deadline counts from the request.
        let deadline = Instant::now() + msg.limits.load_timeout;
        let jail = match Jail::open(&self.repository, msg.symlinks) {
            Ok(jail) => Arc::new(jail),
            Err(err) => return refuse(ControlError::LoadFailed(err.to_string())),
        };
        // Only versions present in the repository get an instance and metric labels: no label
        // from raw input, and none for a directory behind a link leading out of the root.
        let dir = match jail.version_dir(&key.model, &key.version) {
            Ok(Some(dir)) => dir,
            Ok(None) => {
                return refuse(ControlError::NotFound(format!(
                    "no version directory {}/{} in the repository",
                    key.model, key.version
                )))
            }
            Err(err) => return refuse(ControlError::LoadFailed(err.to_string())),
        };
        // One build of a version at a time: another load still building (or one abandoned at
        // its deadline whose build has not stopped yet) would double what the version holds.
        if let Some(busy) = self.instances_of(&key).into_iter().find(|s| {
            s.phase() == VersionPhase::Loading
                || (s.is_building()
                    && matches!(
                        s.phase(),
                        VersionPhase::Failed | VersionPhase::Draining | VersionPhase::Stopped
                    ))
        }) {
            let why = if busy.phase() == VersionPhase::Loading {
                "is already loading"
            } else {
                "has an earlier load (past its deadline, or unloaded) whose build is still stopping"
            };
            return refuse(ControlError::Interrupted(format!(
                "model '{}' version '{}' {why}; retry once it ended",
                key.model, key.version
            )));
        }
        let serving_device = self
            .instances_of(&key)
            .into_iter()
            .find(|s| matches!(s.phase(), VersionPhase::Ready | VersionPhase::Restarting))
            .map(|s| s.device());
        let device = match (msg.device, msg.action, serving_device) {
            (Some(device), _, _) => device,
            (None, _, Some(device)) => device,
            (None, LoadAction::Reload, None) => {
                return Box::pin(std::future::ready(Err(ControlError::NotFound(format!(
                    "model '{}' has no loaded version '{}'",
                    key.model, key.version
                )))))
            }
            (None, LoadAction::Load, None) => Device::Cpu,
        };
        // A new load supersedes a failed one of the same version.
        for failed in self.instances_of(&key) {
            if failed.phase() == VersionPhase::Failed {
                let _ = failed.apply(LifecycleEvent::Replaced);
            }
        }
        self.prune();
        let state = Arc::new(VersionState::new(
            key.clone(),
            device,
            self.metrics.loaded_gauge(&key),
        ));
        self.instances.lock().push(state.clone());
        let action = msg.action;
        let metrics = self.metrics.clone();
        let plan = LoadPlan {
            jail,
            dir,
            deadline,
        };
        let load = load_instance(
            msg,
            plan,
            state.clone(),
            self.router.clone(),
            self.metrics.clone(),
        );
        Box::pin(async move {
            let result = load.await.map(|(report, replaced)| {
                if let Some(old) = replaced {
                    let _ = old.state.apply(LifecycleEvent::Replaced);
                    actix::spawn(drain(old));
                }
                report
            });
            if let (Err(err), VersionPhase::Loading) = (&result, state.phase()) {
                let _ = state.apply(LifecycleEvent::LoadFailed(err.to_string()));
            }
            let outcome = if result.is_ok() { "success" } else { "failure" };
            metrics.record_lifecycle(&key, action.label(), outcome);
            result
        })
    }
}

/// Take a version out of routing and drain it; resolves once its executor ended (weights freed).
/// An instance still loading is retired by its loader once built.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), ControlError>")]
pub struct UnloadVersion {
    pub key: VersionKey,
}

impl Handler<UnloadVersion> for ModelSupervisor {
    // Spawned apart from the actor, like a load: an unload survives the supervisor's death.
    type Result = ResponseFuture<Result<(), ControlError>>;

    fn handle(&mut self, msg: UnloadVersion, _ctx: &mut Self::Context) -> Self::Result {
        let key = msg.key;
        let remove = self.router.send(RemoveVersion {
            key: key.clone(),
            only: None,
        });
        let (instances, metrics) = (self.instances.clone(), self.metrics.clone());
        Box::pin(async move {
            let of_key = || -> Vec<Arc<VersionState>> {
                instances
                    .lock()
                    .iter()
                    .filter(|s| s.key() == &key)
                    .cloned()
                    .collect()
            };
            match remove.await? {
                Some(entry) => {
                    let _ = entry.state.apply(LifecycleEvent::Unloaded);
                    // A failed reload of the version goes with it.
                    for state in of_key() {
                        if state.phase() == VersionPhase::Failed {
                            let _ = state.apply(LifecycleEvent::Unloaded);
                        }
                    }
                    metrics.record_lifecycle(&key, "unload", "success");
                    let device = entry.state.device();
                    drain(entry).await;
                    instances.prune();
                    if of_key().iter().all(|state| !state.is_active()) {
                        metrics.version_unloaded(&key, &device.to_string());
                    }
                    Ok(())
                }
                None => {
                    // Not routed: a load in flight, or a failed one.
                    let mut found = false;
                    let states = of_key();
                    for state in &states {
                        if matches!(
                            state.phase(),
                            VersionPhase::Loading | VersionPhase::Ready | VersionPhase::Failed
                        ) {
                            found |= state.apply(LifecycleEvent::Unloaded).is_ok();
                        }
                    }
                    instances.prune();
                    if found {
                        let device = states.first().map(|state| state.device());
                        if let Some(device) = device {
                            if of_key().iter().all(|state| !state.is_active()) {
                                metrics.version_unloaded(&key, &device.to_string());
                            }
                        }
                        Ok(())
                    } else {
                        Err(ControlError::NotFound(format!(
                            "model '{}' has no loaded version '{}'",
                            key.model, key.version
                        )))
                    }
                }
            }
        })
    }
}

/// Every instance not yet stopped, for the admin listing and the repository index.
#[derive(Message)]
#[rtype(result = "Vec<Arc<VersionState>>")]
pub struct ListInstances;

impl Handler<ListInstances> for ModelSupervisor {
    type Result = MessageResult<ListInstances>;

    fn handle(&mut self, _msg: ListInstances, _ctx: &mut Self::Context) -> Self::Result {
        self.prune();
        MessageResult(self.instances.lock().clone())
    }
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;

/// Panics in the supervisor's handler (tests of its guardian only).
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PanicForTest;

#[cfg(test)]
impl Handler<PanicForTest> for ModelSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: PanicForTest, _ctx: &mut Self::Context) {
        panic!("PanicForTest: the supervisor's handler panics on purpose");
    }
}
