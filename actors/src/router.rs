//! `ModelRouter`: the route table (model → default version → loaded versions). A `Route`
//! resolves the version, validates the input against its schema, applies the deadline (the
//! model's default; a request may only shorten it) and puts a job on the version's queue with
//! `try_send`, answering at once: a ticket to await, or a clear error. It never waits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use burnserve_models::{validate_input, Device, ModelSpec, RequestInput};
use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::error::InferError;
use crate::messages::{Job, JobOutput, VersionKey};
use crate::metrics::VersionMetrics;
use crate::model_actor::{ModelActor, VersionState};

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
    pub device: Device,
}

#[derive(Default)]
struct ModelRoutes {
    default: Option<String>,
    versions: BTreeMap<String, VersionEntry>,
}

#[derive(Default)]
pub struct ModelRouter {
    models: HashMap<String, ModelRoutes>,
}

impl Actor for ModelRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl ModelRouter {
    fn resolve(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<(VersionKey, &VersionEntry), (Option<VersionKey>, InferError)> {
        let routes = self
            .models
            .get(model)
            .ok_or_else(|| (None, InferError::ModelNotFound(model.to_string())))?;
        let version = match version {
            Some(v) => v,
            None => routes
                .default
                .as_deref()
                .ok_or_else(|| (None, InferError::NoDefaultVersion(model.to_string())))?,
        };
        let entry = routes.versions.get(version).ok_or_else(|| {
            (
                None,
                InferError::VersionNotFound {
                    model: model.to_string(),
                    version: version.to_string(),
                },
            )
        })?;
        Ok((VersionKey::new(model, version), entry))
    }
}

/// A predict request to route.
#[derive(Message)]
#[rtype(result = "RouteOutcome")]
pub struct Route {
    pub model: String,
    pub version: Option<String>,
    pub input: RequestInput,
    /// Requested deadline; only a shorter one than the model's default applies.
    pub timeout: Option<Duration>,
}

/// A queued job's receipt.
#[derive(Debug)]
pub struct Ticket {
    pub key: VersionKey,
    pub reply: oneshot::Receiver<Result<JobOutput, InferError>>,
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

impl Handler<Route> for ModelRouter {
    type Result = RouteOutcome;

    fn handle(&mut self, msg: Route, _ctx: &mut Self::Context) -> RouteOutcome {
        let (key, entry) = match self.resolve(&msg.model, msg.version.as_deref()) {
            Ok(found) => found,
            Err((key, err)) => {
                return RouteOutcome {
                    key,
                    result: Err(err),
                }
            }
        };
        let result = enqueue(&key, entry, msg.input, msg.timeout);
        RouteOutcome {
            key: Some(key),
            result,
        }
    }
}

fn enqueue(
    key: &VersionKey,
    entry: &VersionEntry,
    input: RequestInput,
    timeout: Option<Duration>,
) -> Result<Ticket, InferError> {
    if !entry.state.is_ready() {
        return Err(InferError::NotReady(format!(
            "model '{}' version '{}' is not ready",
            key.model, key.version
        )));
    }
    let rows = validate_input(&entry.spec, &input)?;
    let default_timeout = entry.spec.default_timeout();
    let timeout = timeout.map_or(default_timeout, |t| t.min(default_timeout));
    let now = Instant::now();
    let (reply, reply_rx) = oneshot::channel();
    let job = Job {
        input: input.data,
        rows,
        deadline: now + timeout,
        enqueued_at: now,
        reply,
    };
    match entry.queue.try_send(job) {
        Ok(()) => {
            entry.metrics.set_queue_depth(entry.queue.len());
            Ok(Ticket {
                key: key.clone(),
                reply: reply_rx,
                deadline: now + timeout,
                timeout,
                spec: entry.spec.clone(),
            })
        }
        Err(TrySendError::Full(_)) => Err(InferError::Overloaded {
            model: key.model.clone(),
            version: key.version.clone(),
            capacity: entry.spec.batching.queue_capacity,
            retry_after: RETRY_AFTER,
        }),
        Err(TrySendError::Disconnected(_)) => Err(InferError::NotReady(format!(
            "model '{}' version '{}' is stopping",
            key.model, key.version
        ))),
    }
}

/// Adds a loaded version to the table (replacing one of the same key).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterVersion {
    pub key: VersionKey,
    pub entry: VersionEntry,
    /// Make it the model's default; the first version of a model always becomes the default.
    pub make_default: bool,
}

impl Handler<RegisterVersion> for ModelRouter {
    type Result = ();

    fn handle(&mut self, msg: RegisterVersion, _ctx: &mut Self::Context) {
        let routes = self.models.entry(msg.key.model.clone()).or_default();
        routes.versions.insert(msg.key.version.clone(), msg.entry);
        if msg.make_default || routes.default.is_none() {
            routes.default = Some(msg.key.version);
        }
    }
}

/// What a model (or one version of it) looks like, for metadata and readiness.
#[derive(Debug, Clone)]
pub struct ModelDescription {
    pub name: String,
    /// The version described (explicit, or the default).
    pub version: String,
    pub versions: Vec<String>,
    pub default_version: Option<String>,
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
        let (key, entry) = self
            .resolve(&msg.model, msg.version.as_deref())
            .map_err(|(_, e)| e)?;
        let routes = &self.models[&msg.model];
        Ok(ModelDescription {
            name: key.model,
            version: key.version,
            versions: routes.versions.keys().cloned().collect(),
            default_version: routes.default.clone(),
            spec: entry.spec.clone(),
            ready: entry.state.is_ready(),
            device: entry.device,
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
