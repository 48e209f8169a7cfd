//! `JobService`: the async-jobs handle (submit, get, cancel, list); its workers are in
//! `workers.rs`, the store's availability in `slot.rs`.
//!
//! Every change goes through the store under one lock (`Queues`), so the in-memory pending
//! queues, and `job_queue_depth` set from them, always equal the store's PENDING jobs. A submit
//! is refused past `jobs.max_pending`, past the tenant's share (`max_pending_per_tenant`), or
//! past `jobs.max_store_bytes` of redb's allocation (503 `store_full`); while the store cannot
//! write every call answers 503 `store_unavailable` until it re-opens by itself.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use burnserve_models::ErrorType;

use super::queues::Queues;
use super::record::{now_ms, JobId, JobKind, JobRecord, JobStatus};
use super::slot::{Opener, StoreSlot};
use super::store::{
    job_cost, near_cap, JobStore, ListFilter, NewJob, Page, Room, StoreError, SubmitError,
    Submitted,
};
use super::workers;
use super::JobSettings;
use crate::messages::VersionKey;
use crate::metrics::Metrics;
use crate::service::InferenceService;

/// `Retry-After` of a submit refused for a full store.
pub const STORE_FULL_RETRY: Duration = Duration::from_secs(5);
/// `Retry-After` while the store cannot write (it re-opens within 250 ms to 5 s of the disk
/// having room again).
pub const STORE_UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);
/// A submit near `jobs.max_store_bytes` measures the store at most this often.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An `Idempotency-Key` that names a job with another body (`digest`: this body's).
    #[error("Idempotency-Key '{}' names job {} with another body", .existing.idempotency_key.as_deref().unwrap_or_default(), .existing.id)]
    KeyConflict {
        existing: Box<JobRecord>,
        digest: String,
    },
    #[error("{0}; retry later")]
    Full(String),
    /// The store cannot write (why); it re-opens by itself.
    #[error("the job store cannot write ({0}); it re-opens by itself once it can: retry later")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl JobError {
    pub fn error_type(&self) -> ErrorType {
        match self {
            JobError::NotFound(_) => ErrorType::NotFound,
            JobError::Conflict(_) | JobError::KeyConflict { .. } => ErrorType::Conflict,
            JobError::Full(_) => ErrorType::StoreFull,
            JobError::Unavailable(_) => ErrorType::StoreUnavailable,
            JobError::Invalid(_) => ErrorType::InvalidInput,
            JobError::Store(_) => ErrorType::Internal,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JobError::Full(_) => Some(STORE_FULL_RETRY),
            JobError::Unavailable(_) => Some(STORE_UNAVAILABLE_RETRY),
            _ => None,
        }
    }
}

/// A job to submit, its version already resolved by the caller.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub tenant: String,
    pub key: VersionKey,
    pub kind: JobKind,
    /// The caller's tag of how `body` is encoded (kept on the record).
    pub body_format: u8,
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
    /// The most its result may take, as the caller estimates it (0: not estimated): held
    /// against `jobs.max_store_bytes` while the job is live.
    pub result_reserve: u64,
}

/// What a worker hands the runner.
#[derive(Debug, Clone)]
pub struct JobToRun {
    pub id: JobId,
    pub tenant: String,
    pub key: VersionKey,
    pub kind: JobKind,
    pub body: Vec<u8>,
    pub attempt: u32,
}

/// A run's answer: the result JSON, or why it failed.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, (ErrorType, String)>>>>;

/// Turns a stored body into its result: the HTTP layer's side of a job.
pub trait JobRunner: 'static {
    fn run(&self, job: JobToRun) -> RunFuture;
}

pub(crate) struct Shared {
    pub slot: StoreSlot,
    pub opener: Opener,
    pub queues: Mutex<Queues>,
    pub settings: JobSettings,
    pub metrics: Metrics,
    pub service: InferenceService,
    pub wake: tokio::sync::Notify,
    pub stopping: AtomicBool,
    /// Set by an operator: workers start nothing until resumed (submits still queue).
    pub paused: AtomicBool,
    last_measure: Mutex<Option<Instant>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish_depths(&self, queues: &Queues) {
        self.metrics.set_job_queue_depths(&queues.depths());
    }

    /// The open store, or `Unavailable`.
    pub fn store(&self) -> Result<Arc<JobStore>, JobError> {
        self.slot.get()
    }

    /// The error to answer for a store failure (an I/O one takes the store down).
    pub fn fail(&self, err: StoreError) -> JobError {
        self.slot.failed(err)
    }

    /// Counts a job that reached a final status.
    pub fn record_final(&self, record: &JobRecord) {
        let Some(outcome) = record.status.outcome() else {
            return;
        };
        let ran = matches!(record.status, JobStatus::Succeeded | JobStatus::Failed)
            && record.started_ms.is_some();
        let took = ran
            .then(|| record.duration_ms())
            .flatten()
            .map(Duration::from_millis);
        self.metrics.record_job(&record.key(), outcome, took);
    }

    /// Whether a submit may measure the store now (at most once per [`MEASURE_EVERY`]).
    fn may_measure(&self) -> bool {
        let mut last = self.last_measure.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < MEASURE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// The async-jobs handle. Cheap to clone.
#[derive(Clone)]
pub struct JobService(pub(crate) Arc<Shared>);

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobError::Store(StoreError::Io(format!("a store task ended: {e}"))))?
}

impl JobService {
    /// Opens the store in `settings.path`: jobs RUNNING when the last process ended are PENDING
    /// again (their attempt count says so). Workers start with [`JobService::start`].
    pub fn open(
        settings: JobSettings,
        service: InferenceService,
        metrics: Metrics,
    ) -> Result<Self, StoreError> {
        Self::open_with(
            settings,
            service,
            metrics,
            Arc::new(|dir: &Path| JobStore::open(dir)),
        )
    }

    /// [`JobService::open`] with the way to open the store (also used to re-open it).
    pub(crate) fn open_with(
        settings: JobSettings,
        service: InferenceService,
        metrics: Metrics,
        opener: Opener,
    ) -> Result<Self, StoreError> {
        let store = opener(&settings.path)?;
        let recovered = store.recover(&Default::default())?;
        let mut queues = Queues::default();
        queues.rebuild(&recovered);
        if recovered.requeued > 0 {
            tracing::warn!(
                jobs = recovered.requeued,
                "jobs that were running when the server stopped will run again"
            );
        }
        tracing::info!(
            path = %store.path().display(),
            pending = recovered.pending.len(),
            allocated_bytes = recovered.allocated_bytes,
            "job store open"
        );
        metrics.set_job_queue_depths(&queues.depths());
        Ok(Self(Arc::new(Shared {
            slot: StoreSlot::new(store, metrics.clone()),
            opener,
            queues: Mutex::new(queues),
            settings,
            metrics,
            service,
            wake: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            last_measure: Mutex::new(None),
        })))
    }

    /// Starts the workers, the retention sweep and the store's recovery on the current actix
    /// system.
    pub fn start(&self, runner: Rc<dyn JobRunner>) {
        actix::spawn(workers::dispatch(self.0.clone(), runner));
        actix::spawn(workers::sweep(self.0.clone()));
        actix::spawn(workers::recover(self.0.clone()));
    }

    /// Stops taking jobs (shutdown); jobs running now finish or go back to PENDING.
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::Relaxed);
        self.0.wake.notify_one();
        self.0.slot.went_down.notify_one();
    }

    /// Pauses (`true`) or resumes the workers: while paused no job starts; submits, reads and
    /// cancels go on, and running jobs finish.
    pub fn set_paused(&self, paused: bool) {
        self.0.paused.store(paused, Ordering::SeqCst);
        self.0.wake.notify_one();
    }

    pub fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::Relaxed)
    }

    /// Jobs PENDING now (all versions).
    pub fn pending(&self) -> usize {
        self.0.lock().pending_total()
    }

    /// `None` while the store can write; else why it cannot (it is re-opening by itself).
    pub fn store_unavailable(&self) -> Option<String> {
        if self.0.slot.is_available() {
            return None;
        }
        Some(
            self.0
                .slot
                .cause()
                .unwrap_or_else(|| "it is being re-opened".into()),
        )
    }

    /// The PENDING jobs each tenant may hold (`jobs.max_pending_per_tenant`, resolved).
    pub fn max_pending_per_tenant(&self) -> usize {
        self.0.settings.max_pending_per_tenant
    }

    /// Stores a job (or finds the one its idempotency key names). Answered once its
    /// transaction committed.
    pub async fn submit(&self, submission: NewSubmission) -> Result<Submitted, JobError> {
        let shared = self.0.clone();
        let submitted = blocking(move || {
            let mut queues = shared.lock();
            let store = shared.store()?;
            let settings = &shared.settings;
            let cost = job_cost(submission.body.len())
                + super::store::reserve_cost(submission.result_reserve);
            let room = Room {
                pending: queues.pending_total(),
                max_pending: settings.max_pending,
                tenant_pending: queues.tenant_pending(&submission.tenant),
                max_pending_per_tenant: settings.max_pending_per_tenant,
                used_bytes: queues.stored_bytes,
                reserved_bytes: queues.reserved_bytes,
                max_store_bytes: settings.max_store_bytes,
                may_measure: near_cap(
                    queues.stored_bytes + queues.reserved_bytes,
                    cost,
                    settings.max_store_bytes,
                ) && shared.may_measure(),
            };
            let tenant = submission.tenant.clone();
            let body_len = submission.body.len();
            let job = NewJob {
                tenant: submission.tenant,
                model: submission.key.model.clone(),
                version: submission.key.version.clone(),
                kind: submission.kind,
                body_format: submission.body_format,
                idempotency_key: submission.idempotency_key,
                body: submission.body,
                result_reserve: submission.result_reserve,
                now_ms: now_ms(),
            };
            let submitted = store.submit(job, room).map_err(|e| match e {
                SubmitError::Conflict { existing, digest } => {
                    JobError::KeyConflict { existing, digest }
                }
                SubmitError::Full { message, measured } => {
                    if let Some(measured) = measured {
                        // The measure included the refused job's own pages.
                        queues.stored_bytes = measured.saturating_sub(job_cost(body_len));
                    }
                    JobError::Full(message)
                }
                SubmitError::Store(err) => shared.fail(err),
            })?;
            if submitted.created {
                queues.stored_bytes = match submitted.measured {
                    Some(measured) => measured,
                    None => queues.stored_bytes + submitted.record.stored_bytes,
                };
                queues.reserved_bytes +=
                    super::store::reserve_cost(submitted.record.result_reserve);
                queues.push(submission.key, submitted.record.id.seq, &tenant);
                shared.publish_depths(&queues);
            }
            Ok(submitted)
        })
        .await?;
        self.0.wake.notify_one();
        Ok(submitted)
    }

    /// The tenant's job `id` (unknown, or another tenant's: `NotFound`), with its result once
    /// it succeeded.
    pub async fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(JobRecord, Option<Vec<u8>>), JobError> {
        let shared = self.0.clone();
        let (tenant, id) = (tenant.to_string(), id.to_string());
        blocking(move || {
            let store = shared.store()?;
            let record = find(&shared, &store, &tenant, &id)?;
            let result = match record.status {
                JobStatus::Succeeded => store.result(record.id.seq).map_err(|e| shared.fail(e))?,
                _ => None,
            };
            Ok((record, result))
        })
        .await
    }

    /// The stored body of the tenant's job `id` while it is live (`None` once final).
    pub async fn stored_body(&self, tenant: &str, id: &str) -> Result<Option<Vec<u8>>, JobError> {
        let shared = self.0.clone();
        let (tenant, id) = (tenant.to_string(), id.to_string());
        blocking(move || {
            let store = shared.store()?;
            let record = find(&shared, &store, &tenant, &id)?;
            store.body(record.id.seq).map_err(|e| shared.fail(e))
        })
        .await
    }

    /// Cancels the tenant's PENDING job `id`. A job that is running or finished cannot be:
    /// `Conflict`, naming its status.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<JobRecord, JobError> {
        let shared = self.0.clone();
        let (tenant, id) = (tenant.to_string(), id.to_string());
        blocking(move || {
            let mut queues = shared.lock();
            let store = shared.store()?;
            let record = find(&shared, &store, &tenant, &id)?;
            let from = [JobStatus::Pending];
            let to = JobStatus::Cancelled;
            let cancelled = store
                .finish(record.id.seq, &from, to, None, None, now_ms())
                .map_err(|e| shared.fail(e))?;
            let Some(changed) = cancelled else {
                let now = store
                    .get(record.id.seq)
                    .map_err(|e| shared.fail(e))?
                    .unwrap_or(record);
                return Err(JobError::Conflict(format!(
                    "job {} is {}; only a PENDING job can be cancelled",
                    now.id,
                    now.status.as_str()
                )));
            };
            queues.account(&changed);
            queues.remove(&changed.record.key(), changed.record.id.seq);
            shared.publish_depths(&queues);
            shared.record_final(&changed.record);
            Ok(changed.record)
        })
        .await
    }

    /// One page of the tenant's jobs in submit order, after `cursor`.
    pub async fn list(
        &self,
        filter: ListFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<Page, JobError> {
        let shared = self.0.clone();
        // Looked at per page at most, whatever the filter: a listing costs a bounded read.
        let scan = (limit * 100).max(10_000);
        blocking(move || {
            let store = shared.store()?;
            store
                .list(&filter, cursor, limit, scan)
                .map_err(|e| shared.fail(e))
        })
        .await
    }
}

/// The tenant's job named `id`; anything else (malformed, unknown, another tenant's, a wrong
/// token) is the same `NotFound`.
fn find(shared: &Shared, store: &JobStore, tenant: &str, id: &str) -> Result<JobRecord, JobError> {
    let not_found = || JobError::NotFound(id.chars().take(64).collect());
    let parsed: JobId = id.parse().map_err(|()| not_found())?;
    match store.get(parsed.seq).map_err(|e| shared.fail(e))? {
        Some(record) if record.id == parsed && record.tenant == tenant => Ok(record),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
