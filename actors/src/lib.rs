//! burnserve-actors: the serving runtime between HTTP and models. No actix-web here.
//!
//! # Layout
//! - [`error`] — `InferError`, the request-level error with its `error_type`.
//! - [`messages`] — the plain data that crosses actors and threads (`Job`, `JobOutput`, labels).
//! - [`batching`] — pure batching state (gathering rules, triage, concat/split), unit-tested.
//! - [`executor`] — the thread bound to one device that gathers batches and runs forward passes.
//! - [`model_actor`] — `ModelActor`, one per loaded version, under an actix `Supervisor`; owns the
//!   version's bounded queue and its executor, and restarts it when it dies.
//! - [`router`] — `ModelRouter`, the route table (model → default version → versions); turns a
//!   request into a queued job or a clear error, never waiting.
//! - [`split`] — `TrafficSplit`, weighted canary routing (smooth weighted round-robin).
//! - [`supervisor`] — `ModelSupervisor`, loads versions (build, warm up, route).
//! - [`state`] — `VersionState`, the lock-free facts about a version shared by router, executor
//!   and admin listing.
//! - [`service`] — `InferenceService`, the one entry point for callers: route, await with the
//!   deadline, record the request metrics.
//! - [`metrics`] — the metric contract of DESIGN.md §4 on a caller-provided registry.

pub mod batching;
pub mod error;
pub mod executor;
pub mod messages;
pub mod metrics;
pub mod model_actor;
pub mod router;
pub mod service;
pub mod split;
pub mod state;
pub mod supervisor;

pub use error::InferError;
pub use messages::{JobOutput, VersionKey};
pub use metrics::Metrics;
pub use model_actor::ModelActor;
pub use router::ModelRouter;
pub use service::{InferRequest, InferResponse, InferenceService};
pub use supervisor::{LifecycleError, LoadAction, LoadVersion, ModelSupervisor, UnloadVersion};
