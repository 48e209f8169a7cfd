//! `StoreSlot`: the open job store, or why it cannot write. An I/O failure (a full disk, EIO)
//! leaves redb's handle refusing every later operation, so the first one closes it here, logs
//! one ERROR with the cause, sets `job_store_available` to 0 and wakes the recovery loop
//! (`workers::recover`), which opens the file again with backoff; until then every operation
//! answers `store_unavailable` at once (redb fails reads of a failed handle too). A re-open logs
//! one INFO and sets the gauge back to 1. Nothing is logged per refused operation or per try.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::service::JobError;
use super::store::{JobStore, StoreError};
use crate::metrics::Metrics;

/// Opens the store in a directory (tests wrap the file to fail on demand).
pub type Opener = Arc<dyn Fn(&Path) -> Result<JobStore, StoreError> + Send + Sync>;

/// Why the store is down, and since when.
struct Down {
    cause: String,
    since: Instant,
}

pub(crate) struct StoreSlot {
    store: RwLock<Option<Arc<JobStore>>>,
    down: Mutex<Option<Down>>,
    available: AtomicBool,
    metrics: Metrics,
    /// Woken when the store goes down.
    pub went_down: tokio::sync::Notify,
}

impl StoreSlot {
    pub fn new(store: JobStore, metrics: Metrics) -> Self {
        metrics.set_job_store_available(true);
        Self {
            store: RwLock::new(Some(Arc::new(store))),
            down: Mutex::new(None),
            available: AtomicBool::new(true),
            metrics,
            went_down: tokio::sync::Notify::new(),
        }
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// Why the store cannot write, while it cannot.
    pub fn cause(&self) -> Option<String> {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.as_ref().map(|down| down.cause.clone())
    }

    /// The open store, or `Unavailable` with why.
    pub fn get(&self) -> Result<Arc<JobStore>, JobError> {
        let store = self.store.read().unwrap_or_else(|p| p.into_inner());
        match store.as_ref() {
            Some(store) if self.is_available() => Ok(store.clone()),
            _ => Err(JobError::Unavailable(
                self.cause()
                    .unwrap_or_else(|| "it is being re-opened".into()),
            )),
        }
    }

    /// The error to answer for a store failure. An I/O one takes the store down (the first
    /// one logs and wakes the recovery).
    pub fn failed(&self, err: StoreError) -> JobError {
        let StoreError::Unavailable(cause) = err else {
            return JobError::Store(err);
        };
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            *down = Some(Down {
                cause: cause.clone(),
                since: Instant::now(),
            });
            self.available.store(false, Ordering::Release);
            // Close the handle (once the last operation holding it ends) so that the file can
            // be opened again.
            let closed = self.store.write().unwrap_or_else(|p| p.into_inner()).take();
            let path = closed.as_ref().map(|s| s.path().display().to_string());
            drop(closed);
            self.metrics.set_job_store_available(false);
            tracing::error!(
                path = path.as_deref().unwrap_or_default(),
                cause = %cause,
                "the job store cannot write: submits answer 503 store_unavailable and no job \
                 starts until it re-opens (it retries by itself)"
            );
            self.went_down.notify_one();
        }
        let cause = down.as_ref().map_or(cause, |down| down.cause.clone());
        JobError::Unavailable(cause)
    }

    /// Puts a re-opened store in place: how long it was down.
    pub fn restore(&self, store: JobStore) -> Duration {
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(store));
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        let was = down.take();
        self.available.store(true, Ordering::Release);
        self.metrics.set_job_store_available(true);
        was.map_or(Duration::ZERO, |down| down.since.elapsed())
    }

    /// Drops this slot's handle (a re-open needs the file closed).
    pub fn close(&self) {
        let closed = self.store.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(closed);
    }
}
