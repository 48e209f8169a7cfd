//! Durable async jobs: a client submits a body, gets an id at once and polls for the result.
//!
//! - [`record`] — `JobRecord`, `JobStatus`, `JobId`: what is stored of a job.
//! - [`store`] — `JobStore`: the redb file and the submit; each change one durable
//!   transaction (`transitions`: take, requeue, finish; `reads`; [`maintenance`]: recovery at
//!   open, the retention sweep).
//! - [`service`] — `JobService`: the handle (submit, get, cancel, list); `queues` counts what
//!   is PENDING (per version and per tenant) and the bytes held, `slot` holds the open store or
//!   why it cannot write, `workers` runs jobs through the router as background traffic, kept
//!   below a reserve of each version's queue and deadline so a backlog never turns interactive
//!   requests into 429s, and re-opens the store after an I/O failure.
//!
//! The job's body and result are the HTTP layer's business: it hands the service a
//! [`JobRunner`] that turns a stored body into a result (the same JSON as the synchronous route).

#[cfg(test)]
mod faulty;
pub mod maintenance;
mod queues;
mod reads;
pub mod record;
pub mod service;
mod slot;
pub mod store;
mod transitions;
mod workers;

use std::path::PathBuf;
use std::time::Duration;

pub use maintenance::{Recovered, Swept};
pub use record::{JobFailure, JobId, JobKind, JobRecord, JobStatus, JOB_OUTCOMES};
pub use service::{JobError, JobRunner, JobService, JobToRun, NewSubmission, RunFuture};
pub use store::{ListFilter, Page, StoreError, Submitted};
pub use workers::{REOPEN_FIRST, REOPEN_MAX};

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
    /// A tenant's submits answer 503 while it has this many jobs PENDING (its share of
    /// `max_pending`, so one tenant's backlog never refuses another's).
    pub max_pending_per_tenant: usize,
    /// Submits answer 503 when the store's file would hold more than this: redb's allocation
    /// (pages × page size: bodies, results, metadata, B-trees).
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
            max_pending_per_tenant: 100_000,
            max_store_bytes: 1 << 30,
            max_attempts: 3,
        }
    }
}
