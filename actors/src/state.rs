//! `VersionState`: what the router, the admin listing and the executor share about one loaded
//! version, lock-free (atomics), readable on the request path.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct VersionState {
    ready: AtomicBool,
    draining: AtomicBool,
    restarts: AtomicU64,
    weight_bytes: AtomicUsize,
    inflight: AtomicUsize,
    load_micros: AtomicU64,
}

impl VersionState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes.load(Ordering::Relaxed)
    }
    pub fn set_loaded(&self, weight_bytes: usize, took: Duration) {
        self.weight_bytes.store(weight_bytes, Ordering::Relaxed);
        self.load_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }
    pub fn load_time(&self) -> Duration {
        Duration::from_micros(self.load_micros.load(Ordering::Relaxed))
    }
    /// Requests in the forward pass running now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }
    pub fn add_inflight(&self, n: usize) {
        self.inflight.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub_inflight(&self, n: usize) {
        self.inflight.fetch_sub(n, Ordering::Relaxed);
    }
}
