//! `ModelRouter`: the route table (model → default version, canary split → loaded versions).
//! The actor owns the table: every change (register, remove, routing) is one message, after
//! which it publishes the model's routes whole to the [`RouteTable`] the request path reads, so
//! every request sees a model's routes before or after a change, never half of it.
//! [`RouteTable::route`] (on the caller's thread, no actor hop) resolves the version,
//! preprocesses and validates the input against its schema, applies the deadline (the model's
//! default; a request may only shorten it; counted from the request's arrival at the server when
//! known) and puts a job on the version's queue with `try_send`, answering at once: a ticket to
//! await, or a clear error. It never waits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use burnserve_models::{prepare_input, Device, ModelSpec, RequestInput};
use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::error::{DeadlineRefusal, InferError};
use crate::lifecycle::{VersionPhase, VersionState};
use crate::messages::{Job, VersionKey};
use crate::metrics::VersionMetrics;
use crate::model_actor::ModelActor;
use crate::reply::JobReply;
use crate::shed::{LoadView, ModelLoad, VersionLoad};
use crate::split::TrafficSplit;

/// How long a client is told to back off when a queue is full.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Everything the router holds for one loaded version.
#[derive(Clone)]
pub struct VersionEntry {
    pub addr: Addr<ModelActor>,
    pub queue: Sender<Job>,
    pub spec: Arc<ModelSpec>,
    pub state: Arc<VersionState>,
    pub metrics: VersionMetrics,
}

#[derive(Default)]
struct ModelRoutes {
    default: Option<String>,
    versions: BTreeMap<String, VersionEntry>,
    /// Weighted split of unpinned requests; `None` sends them all to `default`.
    split: Option<TrafficSplit>,
}

impl ModelRoutes {
    fn routing(&self) -> Routing {
        Routing {
            default_version: self.default.clone(),
            weights: self
                .split
                .as_ref()
                .map(TrafficSplit::weights)
                .unwrap_or_default(),
        }
    }
}

/// Orders version names numerically when both are numbers ("10" after "9"), else as text.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[derive(Default)]
pub struct ModelRouter {
    models: HashMap<String, ModelRoutes>,
    /// Republished on every change of a model's routes, for refusals before a body is read.
    view: LoadView,
    /// Republished on every change of a model's routes, for the request path.
    table: RouteTable,
}

/// What the request path needs of one routed version.
#[derive(Clone)]
struct RoutedEntry {
    queue: Sender<Job>,
    spec: Arc<ModelSpec>,
    state: Arc<VersionState>,
    metrics: VersionMetrics,
}

/// One model's routes as last published by the router.
struct PublishedRoutes {
    default: Option<String>,
    versions: BTreeMap<String, RoutedEntry>,
    /// The split's own round-robin state (reset at each publish).
    split: Option<Mutex<TrafficSplit>>,
}

/// The routes the router publishes, read by [`crate::InferenceService`] for each request
/// without a message to the router: one read lock and an `Arc` clone per request.
#[derive(Clone, Default)]
pub struct RouteTable(Arc<RwLock<HashMap<String, Arc<PublishedRoutes>>>>);

impl RouteTable {
    fn publish(&self, model: &str, routes: Option<&ModelRoutes>) {
        let published = routes.map(|routes| {
            Arc::new(PublishedRoutes {
                default: routes.default.clone(),
                versions: routes
                    .versions
                    .iter()
                    .map(|(version, entry)| {
                        let routed = RoutedEntry {
                            queue: entry.queue.clone(),
                            spec: entry.spec.clone(),
                            state: entry.state.clone(),
                            metrics: entry.metrics.clone(),
                        };
                        (version.clone(), routed)
                    })
                    .collect(),
                split: routes.split.clone().map(Mutex::new),
            })
        });
        // Each write replaces one model's entry whole: a poisoned lock still holds a valid map.
        let mut models = self.0.write().unwrap_or_else(|p| p.into_inner());
        match published {
            Some(routes) => models.insert(model.to_string(), routes),
            None => models.remove(model),
        };
    }

    /// Resolves, checks and queues one request (see the module's documentation).
    pub fn route(&self, msg: Route) -> RouteOutcome {
        let routes = {
            let models = self.0.read().unwrap_or_else(|p| p.into_inner());
            models.get(&msg.model).cloned()
        };
        let Some(routes) = routes else {
            return RouteOutcome {
                key: None,
                result: Err(InferError::ModelNotFound(msg.model)),
            };
        };
        let (key, entry) = match resolve(&routes, &msg.model, msg.version.as_deref()) {
            Ok(found) => found,
            Err((key, err)) => {
                return RouteOutcome {
                    key,
                    result: Err(err),
                }
            }
        };
        let result = match msg.output_len {
            _ if !msg.output_names.is_empty() => {
                burnserve_models::check_requested_outputs(&entry.spec, &msg.output_names)
                    .map_err(InferError::from)
            }
            Some(wanted) if wanted != entry.spec.output().item_len() => {
                Err(InferError::InvalidInput(format!(
                    "dimensions {wanted} is not supported: '{key}' returns {}",
                    entry.spec.output().item_len()
                )))
            }
            _ => Ok(()),
        }
        .and_then(|()| {
            let deadline = (msg.timeout, msg.received_at);
            enqueue(&key, entry, msg.input, msg.output_names, deadline)
        });
        if result.is_err() {
            // Refused before the queue: a failure with no time spent.
            entry.state.stats().record_request(Err(Duration::ZERO));
        }
        RouteOutcome {
            key: Some(key),
            result,
        }
    }
}

type Resolved<'a> = Result<(VersionKey, &'a RoutedEntry), (Option<VersionKey>, InferError)>;

/// Finds the version a request goes to: the one named, else the split's pick, else the default.
fn resolve<'a>(routes: &'a PublishedRoutes, model: &str, version: Option<&str>) -> Resolved<'a> {
    let version = match (version, routes.split.as_ref()) {
        (Some(v), _) => v.to_string(),
        (None, Some(split)) => split
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pick()
            .to_string(),
        (None, None) => routes
            .default
            .clone()
            .ok_or_else(|| (None, InferError::NoDefaultVersion(model.to_string())))?,
    };
    let entry = routes.versions.get(&version).ok_or_else(|| {
        (
            None,
            InferError::VersionNotFound {
                model: model.to_string(),
                version: version.clone(),
            },
        )
    })?;
    Ok((VersionKey::new(model, version), entry))
}

impl Actor for ModelRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl ModelRouter {
    /// A router that publishes its load to `view` and its routes to `table`.
    pub fn new(view: LoadView, table: RouteTable) -> Self {
        Self {
            models: HashMap::new(),
            view,
            table,
        }
    }

    /// Republishes `model`'s routes to the route table and the load view.
    fn publish(&self, model: &str) {
        self.table.publish(model, self.models.get(model));
        let load = self.models.get(model).map(|routes| ModelLoad {
            versions: routes
                .versions
                .iter()
                .map(|(version, entry)| {
                    let load = VersionLoad {
                        state: entry.state.clone(),
                        default_timeout: entry.spec.default_timeout(),
                        max_rows: entry.spec.batching.max_rows(),
                        queue_capacity: entry.spec.batching.queue_capacity,
                    };
                    (version.clone(), load)
                })
                .collect(),
            unpinned: match &routes.split {
                Some(split) => split
                    .weights()
                    .into_iter()
                    .filter(|(_, weight)| *weight > 0)
                    .map(|(version, _)| version)
                    .collect(),
                None => routes.default.iter().cloned().collect(),
            },
        });
        self.view.publish(model, load);
    }
}

/// A predict request to route.
pub struct Route {
    pub model: String,
    pub version: Option<String>,
    pub input: RequestInput,
    /// Requested deadline; only a shorter one than the model's default applies.
    pub timeout: Option<Duration>,
    /// When the request reached the server; the deadline counts from it (else from now).
    pub received_at: Option<Instant>,
    /// The output item length the caller needs (`/v1/embeddings`' `dimensions`): another
    /// answers `invalid_input` before the job is queued.
    pub output_len: Option<usize>,
    /// Output names the caller asked for (v2 `outputs`): a name the model does not have
    /// answers `invalid_input` before the job is queued.
    pub output_names: Vec<String>,
}

/// A queued job's receipt.
#[derive(Debug)]
pub struct Ticket {
    pub key: VersionKey,
    /// The instance it was queued on (its statistics count the answer).
    pub state: Arc<VersionState>,
    pub reply: oneshot::Receiver<crate::reply::Answer>,
    pub deadline: Instant,
    pub timeout: Duration,
    pub spec: Arc<ModelSpec>,
}

/// The routing answer, with the resolved version for metric labels (`None` when unknown).
#[derive(Debug, MessageResponse)]
pub struct RouteOutcome {
    pub key: Option<VersionKey>,
    pub result: Result<Ticket, InferError>,
}

/// The statistics of routed versions: every one (`model` `None`), a model's, or one version's.
#[derive(Message)]
#[rtype(result = "Result<Vec<(VersionKey, crate::stats::StatsSnapshot)>, InferError>")]
pub struct CollectStats {
    pub model: Option<String>,
    pub version: Option<String>,
}

impl Handler<CollectStats> for ModelRouter {
    type Result = Result<Vec<(VersionKey, crate::stats::StatsSnapshot)>, InferError>;

    fn handle(&mut self, msg: CollectStats, _ctx: &mut Self::Context) -> Self::Result {
        let snapshot = |model: &str, version: &str, entry: &VersionEntry| {
            (
                VersionKey::new(model, version),
                entry.state.stats().snapshot(),
            )
        };
        let Some(model) = msg.model else {
            return Ok(self
                .models
                .iter()
                .flat_map(|(model, routes)| {
                    routes
                        .versions
                        .iter()
                        .map(move |(version, entry)| snapshot(model, version, entry))
                })
                .collect());
        };
        let routes = self
            .models
            .get(&model)
            .ok_or_else(|| InferError::ModelNotFound(model.clone()))?;
        match msg.version {
            None => Ok(routes
                .versions
                .iter()
                .map(|(version, entry)| snapshot(&model, version, entry))
                .collect()),
            Some(version) => {
                let entry =
                    routes
                        .versions
                        .get(&version)
                        .ok_or_else(|| InferError::VersionNotFound {
                            model: model.clone(),
                            version: version.clone(),
                        })?;
                Ok(vec![snapshot(&model, &version, entry)])
            }
        }
    }
}

fn enqueue(
    key: &VersionKey,
    entry: &RoutedEntry,
    input: RequestInput,
    outputs: Vec<String>,
    (timeout, received_at): (Option<Duration>, Option<Instant>),
) -> Result<Ticket, InferError> {
    if !entry.state.is_ready() {
        return Err(InferError::NotReady(format!(
            "model '{}' version '{}' is not ready",
            key.model, key.version
        )));
    }
    let prepared = prepare_input(&entry.spec, input)?;
    let rows = prepared.rows;
    let default_timeout = entry.spec.default_timeout();
    // A request's own timeout shortens the model's only where the model allows it (Triton's
    // `allow_timeout_override`).
    let timeout = match timeout {
        Some(t) if entry.spec.allow_timeout_override => t.min(default_timeout),
        _ => default_timeout,
    };
    let now = Instant::now();
    let deadline = received_at.map_or(now, |arrived| arrived.min(now)) + timeout;
    let remaining = deadline.saturating_duration_since(now);
    let cost = entry.state.cost();
    let max_rows = entry.spec.batching.max_rows();
    let mut probe = false;
    let estimate = cost.time_to_finish(rows, max_rows);
    if let Some(expected) = estimate.map(|ahead| cost.with_margin(ahead)) {
        if expected > remaining && cost.probe() {
            probe = true;
        } else if expected > remaining {
            cost.set_shedding(true);
            // Retry once the work ahead has drained.
            let ahead = cost.time_to_finish(0, max_rows).unwrap_or(expected);
            return Err(InferError::CannotMeetDeadline(Box::new(DeadlineRefusal {
                model: key.model.clone(),
                version: key.version.clone(),
                expected,
                timeout,
                retry_after: ahead,
            })));
        }
    }
    let (reply, reply_rx) = JobReply::channel(deadline);
    let job = Job {
        inputs: prepared.tensors,
        outputs,
        rows,
        deadline,
        enqueued_at: now,
        reply,
        probe,
        estimate: estimate.filter(|_| !probe),
    };
    // Counted before the send: the executor may take the job (and uncount it) at once.
    cost.add_pending(rows);
    let sent = entry.queue.try_send(job);
    if sent.is_err() {
        cost.sub_pending(1, rows);
    }
    match sent {
        Ok(()) => {
            entry.metrics.set_queue_depth(entry.queue.len());
            Ok(Ticket {
                key: key.clone(),
                state: entry.state.clone(),
                reply: reply_rx,
                deadline,
                timeout,
                spec: entry.spec.clone(),
            })
        }
        Err(TrySendError::Full(_)) => {
            // Until the queue drains below its mark, refuse before reading bodies.
            cost.set_shedding(true);
            Err(InferError::Overloaded {
                model: key.model.clone(),
                version: key.version.clone(),
                capacity: entry.spec.batching.queue_capacity,
                retry_after: RETRY_AFTER,
            })
        }
        Err(TrySendError::Disconnected(_)) => Err(InferError::NotReady(format!(
            "model '{}' version '{}' is stopping",
            key.model, key.version
        ))),
    }
}

/// Adds a loaded version to the table. Answers the entry it replaced (a reload), which the
/// caller must drain.
#[derive(Message)]
#[rtype(result = "Option<VersionEntry>")]
pub struct RegisterVersion {
    pub key: VersionKey,
    pub entry: VersionEntry,
    /// Make it the model's default; the first version of a model always becomes the default.
    pub make_default: bool,
}

impl Handler<RegisterVersion> for ModelRouter {
    type Result = Option<VersionEntry>;

    fn handle(&mut self, msg: RegisterVersion, _ctx: &mut Self::Context) -> Self::Result {
        let routes = self.models.entry(msg.key.model.clone()).or_default();
        if msg.make_default || routes.default.is_none() {
            routes.default = Some(msg.key.version.clone());
        }
        let replaced = routes.versions.insert(msg.key.version, msg.entry);
        self.publish(&msg.key.model);
        replaced
    }
}

/// Takes a version out of the table: new requests no longer reach it (404 at once when it was
/// the model's last version). Answers the entry, which the caller must drain.
#[derive(Message)]
#[rtype(result = "Option<VersionEntry>")]
pub struct RemoveVersion {
    pub key: VersionKey,
    /// Remove only this instance (a load retiring what it registered), not a newer one.
    pub only: Option<Arc<VersionState>>,
}

impl Handler<RemoveVersion> for ModelRouter {
    type Result = Option<VersionEntry>;

    fn handle(&mut self, msg: RemoveVersion, _ctx: &mut Self::Context) -> Self::Result {
        let routes = self.models.get_mut(&msg.key.model)?;
        if let Some(only) = &msg.only {
            let routed = routes.versions.get(&msg.key.version)?;
            if !Arc::ptr_eq(&routed.state, only) {
                return None;
            }
        }
        let removed = routes.versions.remove(&msg.key.version)?;
        if routes.versions.is_empty() {
            self.models.remove(&msg.key.model);
            self.publish(&msg.key.model);
            return Some(removed);
        }
        routes.split = routes
            .split
            .as_ref()
            .and_then(|s| s.without(&msg.key.version));
        if routes.default.as_deref() == Some(msg.key.version.as_str()) {
            // The highest remaining version takes over.
            routes.default = routes
                .versions
                .keys()
                .max_by(|a, b| version_order(a, b))
                .cloned();
        }
        self.publish(&msg.key.model);
        Some(removed)
    }
}

/// How a model's unpinned requests are routed.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub default_version: Option<String>,
    /// Version → weight; empty when every unpinned request goes to the default.
    pub weights: BTreeMap<String, u32>,
}

/// Sets a model's default version and/or weighted split, atomically. `weights: Some(empty)`
/// removes the split.
#[derive(Message)]
#[rtype(result = "Result<Routing, InferError>")]
pub struct SetRouting {
    pub model: String,
    pub default_version: Option<String>,
    pub weights: Option<BTreeMap<String, u32>>,
}

impl Handler<SetRouting> for ModelRouter {
    type Result = Result<Routing, InferError>;

    fn handle(&mut self, msg: SetRouting, _ctx: &mut Self::Context) -> Self::Result {
        let routes = self
            .models
            .get_mut(&msg.model)
            .ok_or_else(|| InferError::ModelNotFound(msg.model.clone()))?;
        let missing = |version: &String| InferError::VersionNotFound {
            model: msg.model.clone(),
            version: version.clone(),
        };
        if let Some(default) = &msg.default_version {
            if !routes.versions.contains_key(default) {
                return Err(missing(default));
            }
        }
        let split = match &msg.weights {
            None => routes.split.clone(),
            Some(weights) if weights.is_empty() => None,
            Some(weights) => {
                if let Some(version) = weights.keys().find(|v| !routes.versions.contains_key(*v)) {
                    return Err(missing(version));
                }
                Some(TrafficSplit::new(weights).ok_or_else(|| {
                    InferError::InvalidInput(
                        "weights must give at least one version a weight above 0".into(),
                    )
                })?)
            }
        };
        if let Some(default) = msg.default_version {
            routes.default = Some(default);
        }
        routes.split = split;
        let routing = routes.routing();
        self.publish(&msg.model);
        Ok(routing)
    }
}

/// What a model (or one version of it) looks like, for metadata and readiness.
#[derive(Debug, Clone)]
pub struct ModelDescription {
    pub name: String,
    /// The version described (explicit, or the default).
    pub version: String,
    pub versions: Vec<String>,
    pub routing: Routing,
    pub spec: Arc<ModelSpec>,
    pub ready: bool,
    pub device: Device,
}

#[derive(Message)]
#[rtype(result = "Result<ModelDescription, InferError>")]
pub struct DescribeModel {
    pub model: String,
    pub version: Option<String>,
}

impl Handler<DescribeModel> for ModelRouter {
    type Result = Result<ModelDescription, InferError>;

    fn handle(&mut self, msg: DescribeModel, _ctx: &mut Self::Context) -> Self::Result {
        let routes = self
            .models
            .get(&msg.model)
            .ok_or_else(|| InferError::ModelNotFound(msg.model.clone()))?;
        let version = msg
            .version
            .or_else(|| routes.default.clone())
            .ok_or_else(|| InferError::NoDefaultVersion(msg.model.clone()))?;
        let entry = routes
            .versions
            .get(&version)
            .ok_or_else(|| InferError::VersionNotFound {
                model: msg.model.clone(),
                version: version.clone(),
            })?;
        let mut versions: Vec<String> = routes.versions.keys().cloned().collect();
        versions.sort_by(|a, b| version_order(a, b));
        Ok(ModelDescription {
            name: msg.model,
            version,
            versions,
            routing: routes.routing(),
            spec: entry.spec.clone(),
            ready: entry.state.is_ready(),
            device: entry.state.device(),
        })
    }
}

/// Readiness of every loaded version.
#[derive(Message)]
#[rtype(result = "Vec<(VersionKey, bool)>")]
pub struct ListVersions;

impl Handler<ListVersions> for ModelRouter {
    type Result = MessageResult<ListVersions>;

    fn handle(&mut self, _msg: ListVersions, _ctx: &mut Self::Context) -> Self::Result {
        let mut all: Vec<(VersionKey, bool)> = self
            .models
            .iter()
            .flat_map(|(model, routes)| {
                routes.versions.iter().map(move |(version, entry)| {
                    (
                        VersionKey::new(model.clone(), version.clone()),
                        entry.state.is_ready(),
                    )
                })
            })
            .collect();
        all.sort();
        MessageResult(all)
    }
}

/// One routed version as the admin API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub model: String,
    pub version: String,
    /// `Ready`, or `Restarting` while its supervisor rebuilds it.
    pub phase: VersionPhase,
    pub device: Device,
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

#[derive(Message)]
#[rtype(result = "Vec<VersionInfo>")]
pub struct ListDetailed;

impl Handler<ListDetailed> for ModelRouter {
    type Result = MessageResult<ListDetailed>;

    fn handle(&mut self, _msg: ListDetailed, _ctx: &mut Self::Context) -> Self::Result {
        let mut all = Vec::new();
        for (model, routes) in &self.models {
            let weights = routes.split.as_ref().map(TrafficSplit::weights);
            for (version, entry) in &routes.versions {
                all.push(VersionInfo {
                    model: model.clone(),
                    version: version.clone(),
                    phase: entry.state.phase(),
                    device: entry.state.device(),
                    default: routes.default.as_deref() == Some(version.as_str()),
                    weight: weights
                        .as_ref()
                        .map(|w| w.get(version).copied().unwrap_or(0)),
                    queue_depth: entry.queue.len(),
                    inflight: entry.state.inflight(),
                    restarts: entry.state.restarts(),
                    load_time_ms: entry.state.load_time().as_secs_f64() * 1000.0,
                    weight_bytes: entry.state.weight_bytes(),
                    max_batch_size: entry.spec.batching.max_batch_size,
                    queue_capacity: entry.spec.batching.queue_capacity,
                    instances: entry.state.cost().instances(),
                });
            }
        }
        all.sort_by(|a, b| {
            a.model
                .cmp(&b.model)
                .then(version_order(&a.version, &b.version))
        });
        MessageResult(all)
    }
}

/// Stops the router for good (tests of the control plane's liveness only).
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopForTest;

#[cfg(test)]
impl Handler<StopForTest> for ModelRouter {
    type Result = ();

    fn handle(&mut self, _msg: StopForTest, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
