//! `JobService`: the async-jobs handle and its workers.
//!
//! Every change goes through the store under one lock (`Queues`), so the in-memory pending
//! queues, and `job_queue_depth` set from them, always equal the store's PENDING jobs. Workers
//! take each version's PENDING jobs in submit order, at most `max_running_per_version` at once,
//! and only while `InferenceService::background_room` says the version has room above the
//! interactive reserve; a run that ends in an error worth retrying goes back to PENDING (up to
//! `max_attempts`), a job whose version is gone fails `model_not_found`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use burnserve_models::ErrorType;

use super::record::{now_ms, JobFailure, JobId, JobKind, JobRecord, JobStatus};
use super::store::{
    Changed, JobStore, ListFilter, NewJob, Page, Room, StoreError, SubmitError, Submitted,
};
use super::JobSettings;
use crate::messages::VersionKey;
use crate::metrics::Metrics;
use crate::service::InferenceService;
use crate::shed::BackgroundRoom;

/// How often the workers look for room when jobs wait (a submit or a finish wakes them sooner).
const POLL: Duration = Duration::from_millis(20);
/// Jobs deleted or expired per sweep transaction at most.
const SWEEP_BATCH: usize = 1000;
/// `Retry-After` of a submit refused for a full store.
pub const STORE_FULL_RETRY: Duration = Duration::from_secs(5);
/// Error types after which a job is tried again (while attempts remain).
const RETRIED: [ErrorType; 4] = [
    ErrorType::Overloaded,
    ErrorType::NotReady,
    ErrorType::ShuttingDown,
    ErrorType::Timeout,
];

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}; retry later")]
    Full(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl JobError {
    pub fn error_type(&self) -> ErrorType {
        match self {
            JobError::NotFound(_) => ErrorType::NotFound,
            JobError::Conflict(_) => ErrorType::Conflict,
            JobError::Full(_) => ErrorType::StoreFull,
            JobError::Invalid(_) => ErrorType::InvalidInput,
            JobError::Store(_) => ErrorType::Internal,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        matches!(self, JobError::Full(_)).then_some(STORE_FULL_RETRY)
    }
}

/// A job to submit, its version already resolved by the caller.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub tenant: String,
    pub key: VersionKey,
    pub kind: JobKind,
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
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

#[derive(Default)]
struct Queues {
    /// PENDING seqs of each version, in submit order.
    pending: HashMap<VersionKey, VecDeque<u64>>,
    running: HashMap<VersionKey, usize>,
    stored_bytes: u64,
}

impl Queues {
    fn pending_total(&self) -> usize {
        self.pending.values().map(VecDeque::len).sum()
    }

    fn push(&mut self, key: VersionKey, seq: u64) {
        let queue = self.pending.entry(key).or_default();
        // Submit order, also for a job put back after a failed try.
        let at = queue.partition_point(|&queued| queued < seq);
        if queue.get(at) != Some(&seq) {
            queue.insert(at, seq);
        }
    }

    fn remove(&mut self, key: &VersionKey, seq: u64) {
        if let Some(queue) = self.pending.get_mut(key) {
            queue.retain(|&queued| queued != seq);
            if queue.is_empty() {
                self.pending.remove(key);
            }
        }
    }

    fn depths(&self) -> HashMap<VersionKey, usize> {
        self.pending
            .iter()
            .map(|(key, queue)| (key.clone(), queue.len()))
            .collect()
    }

    fn account(&mut self, changed: &Changed) {
        self.stored_bytes = self
            .stored_bytes
            .saturating_sub(changed.bytes_before)
            .saturating_add(changed.record.stored_bytes);
    }
}

struct Shared {
    store: JobStore,
    queues: Mutex<Queues>,
    settings: JobSettings,
    metrics: Metrics,
    service: InferenceService,
    wake: tokio::sync::Notify,
    stopping: AtomicBool,
    /// Set by an operator: workers start nothing until resumed (submits still queue).
    paused: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_depths(&self, queues: &Queues) {
        self.metrics.set_job_queue_depths(&queues.depths());
    }

    /// Counts a job that reached a final status.
    fn record_final(&self, record: &JobRecord) {
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
}

/// The async-jobs handle. Cheap to clone.
#[derive(Clone)]
pub struct JobService(Arc<Shared>);

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
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
        let store = JobStore::open(&settings.path)?;
        let recovered = store.recover()?;
        let mut queues = Queues {
            stored_bytes: recovered.stored_bytes,
            ..Queues::default()
        };
        for record in &recovered.pending {
            queues.push(record.key(), record.id.seq);
        }
        if recovered.requeued > 0 {
            tracing::warn!(
                jobs = recovered.requeued,
                "jobs that were running when the server stopped will run again"
            );
        }
        tracing::info!(
            path = %store.path().display(),
            pending = recovered.pending.len(),
            stored_bytes = recovered.stored_bytes,
            "job store open"
        );
        metrics.set_job_queue_depths(&queues.depths());
        Ok(Self(Arc::new(Shared {
            store,
            queues: Mutex::new(queues),
            settings,
            metrics,
            service,
            wake: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            paused: AtomicBool::new(false),
        })))
    }

    /// Starts the workers and the retention sweep on the current actix system.
    pub fn start(&self, runner: Rc<dyn JobRunner>) {
        actix::spawn(dispatch(self.0.clone(), runner));
        actix::spawn(sweep(self.0.clone()));
    }

    /// Stops taking jobs (shutdown); jobs running now finish or go back to PENDING.
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::Relaxed);
        self.0.wake.notify_one();
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

    /// Stores a job (or finds the one its idempotency key names).
    pub async fn submit(&self, submission: NewSubmission) -> Result<Submitted, JobError> {
        let shared = self.0.clone();
        let submitted = blocking(move || {
            let mut queues = shared.lock();
            let room = Room {
                pending: queues.pending_total(),
                max_pending: shared.settings.max_pending,
                stored_bytes: queues.stored_bytes,
                max_store_bytes: shared.settings.max_store_bytes,
            };
            let job = NewJob {
                tenant: submission.tenant,
                model: submission.key.model.clone(),
                version: submission.key.version.clone(),
                kind: submission.kind,
                idempotency_key: submission.idempotency_key,
                body: submission.body,
                now_ms: now_ms(),
            };
            let submitted = shared.store.submit(job, room).map_err(|e| match e {
                SubmitError::Conflict(existing) => JobError::Conflict(format!(
                    "Idempotency-Key '{}' names job {} with another body",
                    existing.idempotency_key.as_deref().unwrap_or_default(),
                    existing.id
                )),
                SubmitError::Full(message) => JobError::Full(message),
                SubmitError::Store(err) => JobError::Store(err),
            })?;
            if submitted.created {
                queues.stored_bytes += submitted.record.stored_bytes;
                queues.push(submission.key, submitted.record.id.seq);
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
            let record = find(&shared.store, &tenant, &id)?;
            let result = match record.status {
                JobStatus::Succeeded => shared.store.result(record.id.seq)?,
                _ => None,
            };
            Ok((record, result))
        })
        .await
    }

    /// Cancels the tenant's PENDING job `id`. A job that is running or finished cannot be:
    /// `Conflict`, naming its status.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<JobRecord, JobError> {
        let shared = self.0.clone();
        let (tenant, id) = (tenant.to_string(), id.to_string());
        blocking(move || {
            let record = find(&shared.store, &tenant, &id)?;
            let mut queues = shared.lock();
            let from = [JobStatus::Pending];
            let to = JobStatus::Cancelled;
            let cancelled = shared
                .store
                .finish(record.id.seq, &from, to, None, None, now_ms())?;
            let Some(changed) = cancelled else {
                let now = shared.store.get(record.id.seq)?.unwrap_or(record);
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
        blocking(move || Ok(shared.store.list(&filter, cursor, limit, scan)?)).await
    }
}

/// The tenant's job named `id`; anything else (malformed, unknown, another tenant's, a wrong
/// token) is the same `NotFound`.
fn find(store: &JobStore, tenant: &str, id: &str) -> Result<JobRecord, JobError> {
    let not_found = || JobError::NotFound(id.chars().take(64).collect());
    let parsed: JobId = id.parse().map_err(|()| not_found())?;
    match store.get(parsed.seq)? {
        Some(record) if record.id == parsed && record.tenant == tenant => Ok(record),
        _ => Err(not_found()),
    }
}

/// The workers' loop: hands each version's PENDING jobs to the runner while it has room.
async fn dispatch(shared: Arc<Shared>, runner: Rc<dyn JobRunner>) {
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let paused = shared.paused.load(Ordering::Relaxed);
        let taken = match if paused {
            Ok(Vec::new())
        } else {
            take_ready(&shared).await
        } {
            Ok(taken) => taken,
            Err(err) => {
                tracing::error!(error = %err, "job workers cannot read the job store");
                Vec::new()
            }
        };
        for (job, attempt) in taken {
            let shared = shared.clone();
            let run = runner.run(job.clone());
            actix::spawn(async move {
                let answer = run.await;
                if let Err(err) = settle(&shared, &job, attempt, answer).await {
                    tracing::error!(job = %job.id, error = %err, "cannot record a job's end");
                }
                shared.wake.notify_one();
            });
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Takes (marks RUNNING) every job that may start now; fails those whose version is gone.
async fn take_ready(shared: &Arc<Shared>) -> Result<Vec<(JobToRun, u32)>, JobError> {
    let shared = shared.clone();
    blocking(move || {
        let mut queues = shared.lock();
        let mut taken = Vec::new();
        // Read again under the lock: a pause that returned before a submit took the lock is
        // seen here, however late this closure runs after the loop read the flag (CI saw a job
        // submitted after a pause start).
        if shared.paused.load(Ordering::SeqCst) {
            return Ok(taken);
        }
        let keys: Vec<VersionKey> = queues.pending.keys().cloned().collect();
        for key in keys {
            loop {
                let running = queues.running.get(&key).copied().unwrap_or(0);
                if running >= shared.settings.max_running_per_version {
                    break;
                }
                let Some(&seq) = queues.pending.get(&key).and_then(VecDeque::front) else {
                    break;
                };
                let room = shared
                    .service
                    .background_room(&key, shared.settings.interactive_reserve);
                match room {
                    BackgroundRoom::Wait => break,
                    BackgroundRoom::Gone => {
                        fail_gone(&shared, &mut queues, &key)?;
                        break;
                    }
                    BackgroundRoom::Free => {}
                }
                queues.remove(&key, seq);
                let Some((changed, body)) = shared.store.take(seq, now_ms())? else {
                    continue;
                };
                queues.account(&changed);
                *queues.running.entry(key.clone()).or_default() += 1;
                let record = changed.record;
                taken.push((
                    JobToRun {
                        id: record.id,
                        tenant: record.tenant.clone(),
                        key: key.clone(),
                        kind: record.kind,
                        body,
                        attempt: record.attempts,
                    },
                    record.attempts,
                ));
            }
        }
        shared.publish_depths(&queues);
        Ok(taken)
    })
    .await
}

/// Every PENDING job of a version that is no longer loaded fails `model_not_found`.
fn fail_gone(shared: &Shared, queues: &mut Queues, key: &VersionKey) -> Result<(), JobError> {
    let seqs: Vec<u64> = queues
        .pending
        .remove(key)
        .map(Vec::from)
        .unwrap_or_default();
    let failure = JobFailure {
        error: format!(
            "model '{}' version '{}' is not loaded",
            key.model, key.version
        ),
        error_type: ErrorType::ModelNotFound.as_str().into(),
    };
    tracing::info!(version = %key, jobs = seqs.len(), "failing the pending jobs of a version that is not loaded");
    for seq in seqs {
        let from = [JobStatus::Pending];
        let failed = shared.store.finish(
            seq,
            &from,
            JobStatus::Failed,
            None,
            Some(failure.clone()),
            now_ms(),
        )?;
        if let Some(changed) = failed {
            queues.account(&changed);
        }
    }
    Ok(())
}

/// Records how a run ended: SUCCEEDED with its result, PENDING again for another try, or
/// FAILED.
async fn settle(
    shared: &Arc<Shared>,
    job: &JobToRun,
    attempt: u32,
    answer: Result<Vec<u8>, (ErrorType, String)>,
) -> Result<(), JobError> {
    let shared = shared.clone();
    let job = job.clone();
    blocking(move || {
        let mut queues = shared.lock();
        if let Some(running) = queues.running.get_mut(&job.key) {
            *running = running.saturating_sub(1);
        }
        let seq = job.id.seq;
        let from = [JobStatus::Running];
        let changed = match answer {
            Ok(result) => shared.store.finish(
                seq,
                &from,
                JobStatus::Succeeded,
                Some(&result),
                None,
                now_ms(),
            )?,
            Err((error_type, message)) => {
                let retry = RETRIED.contains(&error_type)
                    && attempt < shared.settings.max_attempts
                    && !shared.stopping.load(Ordering::Relaxed);
                let shutting_down = error_type == ErrorType::ShuttingDown;
                if retry || shutting_down {
                    // Shutting down: PENDING again, for the next process to run.
                    let requeued = shared.store.requeue(seq)?;
                    if let Some(changed) = &requeued {
                        queues.account(changed);
                        queues.push(job.key.clone(), seq);
                        shared.publish_depths(&queues);
                    }
                    return Ok(());
                }
                let failure = JobFailure {
                    error: message,
                    error_type: error_type.as_str().into(),
                };
                shared
                    .store
                    .finish(seq, &from, JobStatus::Failed, None, Some(failure), now_ms())?
            }
        };
        if let Some(changed) = changed {
            queues.account(&changed);
            shared.record_final(&changed.record);
        }
        Ok(())
    })
    .await
}

/// Deletes finished jobs past `jobs.retention` and expires jobs PENDING past
/// `jobs.max_pending_age`, a little more often than the shorter of the two.
async fn sweep(shared: Arc<Shared>) {
    let every = (shared
        .settings
        .retention
        .min(shared.settings.max_pending_age)
        / 4)
    .clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let shared = shared.clone();
        let swept = blocking(move || {
            let now = now_ms();
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let mut queues = shared.lock();
            let swept = shared.store.sweep(
                now.saturating_sub(ms(shared.settings.retention)),
                now.saturating_sub(ms(shared.settings.max_pending_age)),
                SWEEP_BATCH,
                now,
            )?;
            queues.stored_bytes = queues.stored_bytes.saturating_sub(swept.freed_bytes);
            for changed in &swept.expired {
                queues.account(changed);
                queues.remove(&changed.record.key(), changed.record.id.seq);
                shared.record_final(&changed.record);
            }
            shared.publish_depths(&queues);
            Ok((swept.deleted, swept.expired.len()))
        })
        .await;
        match swept {
            Ok((0, 0)) => {}
            Ok((deleted, expired)) => tracing::info!(deleted, expired, "job retention sweep"),
            Err(err) => tracing::error!(error = %err, "job retention sweep failed"),
        }
    }
}
