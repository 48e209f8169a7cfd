//! Durable async jobs: a client submits a body, gets an id at once and polls for the result.
//!
//! - [`record`] — `JobRecord`, `JobStatus`, `JobId`: what is stored of a job.
//! - [`store`] — `JobStore`: the redb file; each change one durable transaction.
//! - [`service`] — `JobService`: the handle (submit, get, cancel, list) and its workers, which
//!   run jobs through the router as background traffic, kept below a reserve of each version's
//!   queue and deadline so a backlog never turns interactive requests into 429s.
//!
//! The job's body and result are the HTTP layer's business: it hands the service a
//! [`JobRunner`] that turns a stored body into a result (the same JSON as the synchronous route).

pub mod record;
pub mod service;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

pub use record::{JobFailure, JobId, JobKind, JobRecord, JobStatus, JOB_OUTCOMES};
pub use service::{JobError, JobRunner, JobService, JobToRun, NewSubmission, RunFuture};
pub use store::{ListFilter, Page, StoreError, Submitted};

/// `[jobs]` settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The store's directory (`jobs.path`).
    pub path: PathBuf,
    /// Jobs of one version running at once.
    pub max_running_per_version: usize,
    /// Share (0 to 1) of each version's queue and deadline kept for interactive requests: a
    /// job is dispatched only while the work ahead is under the rest.
    pub interactive_reserve: f64,
    /// Finished jobs are deleted this long after they finished.
    pub retention: Duration,
    /// A job still PENDING this long after its submit ends EXPIRED.
    pub max_pending_age: Duration,
    /// Submits answer 503 while this many jobs are PENDING.
    pub max_pending: usize,
    /// Submits answer 503 while the store holds this many bytes (bodies, results, metadata).
    pub max_store_bytes: u64,
    /// Tries of a job whose run ended in an error worth retrying (overloaded, not ready,
    /// timeout, shutting down) before it fails.
    pub max_attempts: u32,
}

impl JobSettings {
    /// The defaults, with the store in `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_running_per_version: 2,
            interactive_reserve: 0.5,
            retention: Duration::from_secs(24 * 3600),
            max_pending_age: Duration::from_secs(24 * 3600),
            max_pending: 100_000,
            max_store_bytes: 1 << 30,
            max_attempts: 3,
        }
    }
}
