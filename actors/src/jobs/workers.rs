//! The job service's background loops: the workers (`dispatch`: each version's PENDING jobs in
//! submit order, at most `max_running_per_version` at once, only while
//! `InferenceService::background_room` says the version has room above the interactive
//! reserve; a run that ends in an error worth retrying goes back to PENDING up to
//! `max_attempts`, a job whose version is gone fails `model_not_found`), the retention `sweep`,
//! and `recover`, which re-opens the store after an I/O failure. While the store cannot write
//! the workers and the sweep do nothing (no store call, no log line) until it re-opens.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use burnserve_models::ErrorType;

use super::queues::Queues;
use super::record::{now_ms, JobFailure, JobStatus};
use super::service::{blocking, JobError, JobRunner, JobToRun, Shared};
use super::store::JobStore;
use crate::log_throttle::LogThrottle;
use crate::messages::VersionKey;
use crate::shed::BackgroundRoom;

/// How often the workers look for room when jobs wait (a submit or a finish wakes them sooner).
const POLL: Duration = Duration::from_millis(20);
/// How long the workers wait while the store cannot write (its re-open wakes them sooner).
const DOWN_WAIT: Duration = Duration::from_secs(1);
/// Jobs deleted or expired per sweep transaction at most.
const SWEEP_BATCH: usize = 1000;
/// The first wait before re-opening a store that failed, doubled after each failed try up to
/// [`REOPEN_MAX`].
pub const REOPEN_FIRST: Duration = Duration::from_millis(250);
pub const REOPEN_MAX: Duration = Duration::from_secs(5);
/// Error types after which a job is tried again (while attempts remain).
const RETRIED: [ErrorType; 4] = [
    ErrorType::Overloaded,
    ErrorType::NotReady,
    ErrorType::ShuttingDown,
    ErrorType::Timeout,
];

/// The workers' loop: hands each version's PENDING jobs to the runner while it has room.
pub(crate) async fn dispatch(shared: Arc<Shared>, runner: Rc<dyn JobRunner>) {
    // Store failures other than I/O (a record that does not parse) repeat every poll.
    let throttle = LogThrottle::per_version();
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if !shared.slot.is_available() {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(DOWN_WAIT) => {}
            }
            continue;
        }
        let paused = shared.paused.load(Ordering::Relaxed);
        let taken = match if paused {
            Ok(Vec::new())
        } else {
            take_ready(&shared).await
        } {
            Ok(taken) => taken,
            Err(JobError::Unavailable(_)) => Vec::new(),
            Err(err) => {
                if let Some(held_back) = throttle.admit() {
                    tracing::error!(error = %err, held_back, "job workers cannot read the job store");
                }
                Vec::new()
            }
        };
        for (job, attempt) in taken {
            let shared = shared.clone();
            let run = runner.run(job.clone());
            actix::spawn(async move {
                let answer = run.await;
                match settle(&shared, &job, attempt, answer).await {
                    // The re-open puts it back to PENDING: it runs again.
                    Ok(()) | Err(JobError::Unavailable(_)) => {}
                    Err(err) => {
                        tracing::error!(job = %job.id, error = %err, "cannot record a job's end");
                    }
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
        if shared.paused.load(Ordering::SeqCst) || queues.pending.is_empty() {
            return Ok(taken);
        }
        let store = shared.store()?;
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
                        fail_gone(&shared, &store, &mut queues, &key)?;
                        break;
                    }
                    BackgroundRoom::Free => {}
                }
                queues.remove(&key, seq);
                let Some((changed, body)) =
                    store.take(seq, now_ms()).map_err(|e| shared.fail(e))?
                else {
                    continue;
                };
                queues.account(&changed);
                queues.start_run(&key, seq);
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
fn fail_gone(
    shared: &Shared,
    store: &JobStore,
    queues: &mut Queues,
    key: &VersionKey,
) -> Result<(), JobError> {
    let seqs = queues.drain(key);
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
        let failed = store
            .finish(
                seq,
                &from,
                JobStatus::Failed,
                None,
                Some(failure.clone()),
                now_ms(),
            )
            .map_err(|e| shared.fail(e))?;
        if let Some(changed) = failed {
            queues.account(&changed);
            shared.record_final(&changed.record);
        }
    }
    Ok(())
}

/// Records how a run ended: SUCCEEDED with its result, PENDING again for another try, or
/// FAILED. When the store cannot write the job stays RUNNING there, and the re-open puts it
/// back to PENDING (it runs again: at least once).
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
        let seq = job.id.seq;
        queues.end_run(&job.key, seq);
        let store = shared.store()?;
        let from = [JobStatus::Running];
        let changed = match answer {
            Ok(result) => store.finish(
                seq,
                &from,
                JobStatus::Succeeded,
                Some(&result),
                None,
                now_ms(),
            ),
            Err((error_type, message)) => {
                let retry = RETRIED.contains(&error_type)
                    && attempt < shared.settings.max_attempts
                    && !shared.stopping.load(Ordering::Relaxed);
                let shutting_down = error_type == ErrorType::ShuttingDown;
                if retry || shutting_down {
                    // Shutting down: PENDING again, for the next process to run.
                    let requeued = store.requeue(seq).map_err(|e| shared.fail(e))?;
                    if let Some(changed) = &requeued {
                        queues.account(changed);
                        queues.push(job.key.clone(), seq, &job.tenant);
                        shared.publish_depths(&queues);
                    }
                    return Ok(());
                }
                let failure = JobFailure {
                    error: message,
                    error_type: error_type.as_str().into(),
                };
                store.finish(seq, &from, JobStatus::Failed, None, Some(failure), now_ms())
            }
        }
        .map_err(|e| shared.fail(e))?;
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
pub(crate) async fn sweep(shared: Arc<Shared>) {
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
        if !shared.slot.is_available() {
            continue;
        }
        let shared = shared.clone();
        let swept = blocking(move || {
            let now = now_ms();
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let mut queues = shared.lock();
            let store = shared.store()?;
            let swept = store
                .sweep(
                    now.saturating_sub(ms(shared.settings.retention)),
                    now.saturating_sub(ms(shared.settings.max_pending_age)),
                    SWEEP_BATCH,
                    now,
                )
                .map_err(|e| shared.fail(e))?;
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
            Ok((0, 0)) | Err(JobError::Unavailable(_)) => {}
            Ok((deleted, expired)) => tracing::info!(deleted, expired, "job retention sweep"),
            Err(err) => tracing::error!(error = %err, "job retention sweep failed"),
        }
    }
}

/// Re-opens the store after it went down: tries after [`REOPEN_FIRST`], doubling the wait up
/// to [`REOPEN_MAX`], until it opens. The open puts RUNNING jobs back to PENDING (but those
/// whose runs are still going on here) and the queues are rebuilt from what it holds. A store
/// that goes down again within [`FLAP_WINDOW`] of a re-open goes on from the wait it had, so a
/// disk at the edge of full costs a try (and two log lines) per 5 s at most.
pub(crate) async fn recover(shared: Arc<Shared>) {
    let mut wait = REOPEN_FIRST;
    let mut reopened_at: Option<std::time::Instant> = None;
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if shared.slot.is_available() {
            shared.slot.went_down.notified().await;
            continue;
        }
        if reopened_at.is_none_or(|at| at.elapsed() > FLAP_WINDOW) {
            wait = REOPEN_FIRST;
        }
        let mut tries = 0u32;
        loop {
            tokio::time::sleep(wait).await;
            if shared.stopping.load(Ordering::Relaxed) {
                return;
            }
            tries += 1;
            wait = (wait * 2).min(REOPEN_MAX);
            let reopening = shared.clone();
            match blocking(move || reopen(&reopening)).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::debug!(error = %err, tries, "the job store does not re-open yet");
                }
            }
        }
        reopened_at = Some(std::time::Instant::now());
        shared.wake.notify_one();
    }
}

/// A store that went down again this soon after a re-open does not start its waits over.
const FLAP_WINDOW: Duration = Duration::from_secs(10);
/// Free space the store's filesystem must have before a re-open counts (else the first write
/// of any size would take it down again).
pub const REOPEN_MIN_FREE: u64 = 1 << 20;

/// Bytes an unprivileged writer may still write on the filesystem of `dir` (`None`: unknown).
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` is written by statvfs before it is
    // read (only on success).
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // `fsblkcnt_t` and `c_ulong` are narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize));
    Some(free)
}

/// One try at re-opening the store.
fn reopen(shared: &Shared) -> Result<(), JobError> {
    let dir = &shared.settings.path;
    if let Some(free) = free_bytes(dir).filter(|&free| free < REOPEN_MIN_FREE) {
        return Err(JobError::Unavailable(format!(
            "{free} bytes free on its filesystem"
        )));
    }
    let mut queues = shared.lock();
    shared.slot.close();
    let store = (shared.opener)(dir).map_err(JobError::Store)?;
    let recovered = store.recover(&queues.in_flight).map_err(JobError::Store)?;
    queues.rebuild(&recovered);
    shared.publish_depths(&queues);
    let pending = recovered.pending.len();
    let requeued = recovered.requeued;
    let path = store.path().display().to_string();
    let down_for = shared.slot.restore(store);
    tracing::info!(
        path,
        down_ms = u64::try_from(down_for.as_millis()).unwrap_or(u64::MAX),
        pending,
        requeued,
        allocated_bytes = recovered.allocated_bytes,
        "the job store re-opened: submits and workers go on"
    );
    Ok(())
}
