//! burnserve-actors: the serving runtime between HTTP and models. No actix-web here, and no
//! actor outside it: callers hold the two handles [`InferenceService`] (data plane) and
//! [`ModelControl`] (control plane) that [`Runtime::start`] returns (ARCHITECTURE.md).
//!
//! # Layout
//! - [`runtime`] — `Runtime::start`: the actors wired together, the handles handed out.
//! - [`service`] — `InferenceService`: route, await with the deadline, record the request
//!   metrics; metadata and readiness reads.
//! - [`control`] — `ModelControl`: list, describe, load, reload, unload, route, reconcile.
//! - [`reconcile`] — `ModelConfig` (a configured model) and the pure reconcile plan.
//! - [`lifecycle`] — `VersionPhase`, its one transition function, and `VersionState`, where an
//!   instance's phase and lock-free facts live.
//! - [`jobs`] — `JobService`: durable async jobs (redb store, workers that run them as
//!   background traffic through the router), `JobRunner` (the HTTP layer's side).
//! - [`error`] — `InferError` and `ControlError`, each with its `ErrorType`.
//! - [`messages`] — the plain data that crosses actors and threads (`Job`, `JobOutput`, keys).
//! - [`reply`] — `JobReply`/`Answers`: a batch's answers reach each requesting actix worker
//!   thread with one wake-up.
//! - [`batching`] — pure batching state (gathering rules, triage, concat/split), unit-tested.
//! - [`metrics`] — the metric contract on a caller-provided registry.
//! - [`shed`] — `LoadView`, the route table's load as the router last published it, for
//!   refusals before a request's body is read.
//! - [`stats`] — `VersionStats`: the v2 statistics extension's counts per version instance.
//! - [`split`] — `TrafficSplit`, weighted canary routing (smooth weighted round-robin).
//! - `router` — `ModelRouter` (actor), the route table; turns a request into a queued job or a
//!   clear error, never waiting.
//! - `supervisor` — `ModelSupervisor` (actor): starts, replaces and retires instances.
//! - `guardian` — `SupervisorGuardian`: the supervisor's own supervisor; restarts it, with the
//!   instances it held, when a panic ended it.
//! - `model_actor` — `ModelActor`, one per instance, under an actix `Supervisor`; owns the
//!   version's bounded queue and its executor, and restarts it when it dies.
//! - `executor` — the thread bound to one device that gathers batches and runs forward passes.

pub mod batching;
pub mod control;
pub mod cost;
pub mod error;
mod executor;
mod guardian;
pub mod jobs;
pub mod lifecycle;
pub mod log_throttle;
pub mod messages;
pub mod metrics;
mod model_actor;
pub mod reconcile;
pub mod reply;
pub mod repository;
mod router;
pub mod runtime;
pub mod service;
pub mod shed;
pub mod split;
pub mod stats;
mod supervisor;

pub use burnserve_models::ErrorType;
pub use control::{
    ControlMode, IndexStatus, Listing, LoadOptions, ModelControl, PendingVersion, ReconcileReport,
    RoutingChange,
};
pub use error::{ControlError, InferError};
pub use jobs::{JobService, JobSettings};
pub use lifecycle::VersionPhase;
pub use messages::{JobOutput, VersionKey};
pub use metrics::{Metrics, MetricsConfig, ANONYMOUS};
pub use model_actor::restart_backoff;
pub use reconcile::ModelConfig;
pub use repository::SyncReport;
pub use router::{version_order, ModelDescription, Routing, VersionInfo, RETRY_AFTER};
pub use runtime::Runtime;
pub use service::{InferRequest, InferResponse, InferenceService};
pub use supervisor::LoadReport;
