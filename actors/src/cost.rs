//! The cost model of one version instance, for deadline-aware admission: running estimates
//! (EWMA) of a forward pass's duration and of the rows a pass takes, and the rows admitted but
//! not yet computed. From these the router refuses, at once, a request whose work ahead cannot
//! finish within its deadline (429 with a `Retry-After` from the estimate), and the executor
//! leaves out of a batch a job whose remaining time is shorter than the pass it would join.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Weight of the newest pass in the running estimates.
const ALPHA: f64 = 0.2;

/// Estimates are used with a margin (+25%, + 1 ms for scheduling noise on a busy machine and
/// the answer's own way back): a request that would finish just in time by the estimate is
/// refused rather than computed and late. Measured on the CNN: ×1.5 + 0.5 ms refused half the
/// requests a 20 ms deadline could serve; ×1.25 + 0.25 ms computed up to 13 late ones at 2 ms.
/// Session 8 raised +10% to +25%: with forward passes spread over both cores (rayon GELU, AVX-512
/// GEMM), a pass slows by more when the HTTP workers refuse a flood beside it, and +10% let 2–3%
/// of the admitted requests of `tests/flood.rs` time out.
pub fn with_margin(estimate: Duration) -> Duration {
    estimate.mul_f64(1.25) + Duration::from_millis(1)
}

/// While every request is refused no pass is measured, and an estimate that is too high would
/// never come down: one request per this interval is let through as a probe.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct CostModel {
    created: Instant,
    /// Nanoseconds after `created` of the last measured pass or probe.
    last_measure: AtomicU64,
    /// EWMA of a pass's duration in nanoseconds, as `f64` bits; 0 before the first pass.
    pass_nanos: AtomicU64,
    /// EWMA of rows per pass, as `f64` bits.
    rows_per_pass: AtomicU64,
    /// EWMA of a pass's nanoseconds per row, as `f64` bits.
    row_nanos: AtomicU64,
    /// Rows queued or in a pass now.
    pending_rows: AtomicUsize,
    /// Set when the router refused a request for its deadline; cleared by the early check once
    /// the work ahead fell below [`SHED_LOW_WATER`] of the deadline (`shed`).
    shedding: AtomicBool,
    /// Executor threads taking passes from the queue at once (`batching.instances`).
    instances: AtomicUsize,
}

/// While shedding, requests are refused before their body is read until the work ahead falls
/// below this share of the version's deadline: the queue drains a little between refusals and
/// admissions instead of sitting at the edge, where every request costs a full decode to refuse.
pub const SHED_LOW_WATER: f64 = 0.8;

impl Default for CostModel {
    fn default() -> Self {
        Self {
            created: Instant::now(),
            last_measure: AtomicU64::new(0),
            pass_nanos: AtomicU64::new(0),
            rows_per_pass: AtomicU64::new(0),
            row_nanos: AtomicU64::new(0),
            pending_rows: AtomicUsize::new(0),
            shedding: AtomicBool::new(false),
            instances: AtomicUsize::new(1),
        }
    }
}

fn load(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

fn blend(cell: &AtomicU64, sample: f64) {
    let old = load(cell);
    let new = if old == 0.0 {
        sample
    } else {
        old + ALPHA * (sample - old)
    };
    cell.store(new.to_bits(), Ordering::Relaxed);
}

impl CostModel {
    /// Records one measured forward pass (one executor thread writes; readers tolerate a torn
    /// pair of estimates).
    pub fn record_pass(&self, rows: usize, took: Duration) {
        if rows == 0 {
            return;
        }
        blend(&self.pass_nanos, took.as_nanos() as f64);
        blend(&self.rows_per_pass, rows as f64);
        blend(&self.row_nanos, took.as_nanos() as f64 / rows as f64);
        self.last_measure
            .store(self.created.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Whether a request the estimate refuses may go through as a probe: no pass was measured
    /// for [`PROBE_EVERY`] and no other probe took this interval.
    pub fn probe(&self) -> bool {
        let now = self.created.elapsed().as_nanos() as u64;
        let last = self.last_measure.load(Ordering::Relaxed);
        now.saturating_sub(last) >= PROBE_EVERY.as_nanos() as u64
            && self
                .last_measure
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether no pass (or probe) was measured for [`PROBE_EVERY`]: the estimate may be stale.
    pub fn is_stale(&self) -> bool {
        let now = self.created.elapsed().as_nanos() as u64;
        let last = self.last_measure.load(Ordering::Relaxed);
        now.saturating_sub(last) >= PROBE_EVERY.as_nanos() as u64
    }

    /// The expected duration of one pass; `None` before any was measured.
    pub fn pass(&self) -> Option<Duration> {
        let nanos = load(&self.pass_nanos);
        (nanos > 0.0).then(|| Duration::from_nanos(nanos as u64))
    }

    /// Expected time until `rows` more rows, queued behind the pending ones, are computed:
    /// the passes they all need (at the rows a pass has been taking, at most `max_rows`) times
    /// a pass's duration. `None` before any pass was measured.
    pub fn time_to_finish(&self, rows: usize, max_rows: usize) -> Option<Duration> {
        let pass = self.pass()?;
        let per_pass = load(&self.rows_per_pass).clamp(1.0, max_rows.max(1) as f64);
        let total = (self.pending_rows() + rows) as f64;
        // `instances` passes run side by side (each measured at the speed it has beside the
        // others).
        let instances = self.instances.load(Ordering::Relaxed).max(1) as f64;
        let passes = (total / per_pass / instances).ceil().max(1.0);
        // When passes grow (a flood fills them), a pass's time grows with its rows faster than
        // the two averages follow: the time per row bounds the estimate from below.
        let by_rows = Duration::from_nanos((total / instances * load(&self.row_nanos)) as u64);
        Some(pass.mul_f64(passes).max(by_rows))
    }

    /// How many executor threads take passes from the queue at once.
    pub fn set_instances(&self, instances: usize) {
        self.instances.store(instances.max(1), Ordering::Relaxed);
    }

    pub fn instances(&self) -> usize {
        self.instances.load(Ordering::Relaxed)
    }

    /// Whether the version is shedding (see [`SHED_LOW_WATER`]).
    pub fn is_shedding(&self) -> bool {
        self.shedding.load(Ordering::Relaxed)
    }

    pub fn set_shedding(&self, shedding: bool) {
        self.shedding.store(shedding, Ordering::Relaxed);
    }

    pub fn pending_rows(&self) -> usize {
        self.pending_rows.load(Ordering::Relaxed)
    }

    pub fn add_pending(&self, rows: usize) {
        self.pending_rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn sub_pending(&self, rows: usize) {
        // Saturating: a job counted by an old instance may finish on a new one's books.
        let _ = self
            .pending_rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(rows))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_measured_passes_and_count_the_work_ahead() {
        let cost = CostModel::default();
        assert_eq!(
            cost.time_to_finish(1, 32),
            None,
            "no estimate before a pass"
        );
        cost.record_pass(10, Duration::from_millis(20));
        assert_eq!(cost.pass(), Some(Duration::from_millis(20)));
        // Nothing pending: one pass.
        assert_eq!(cost.time_to_finish(1, 32), Some(Duration::from_millis(20)));
        // 25 rows ahead + 5 at 10 rows a pass: three passes.
        cost.add_pending(25);
        assert_eq!(cost.time_to_finish(5, 32), Some(Duration::from_millis(60)));
        // The rows per pass never exceed the batch limit.
        assert_eq!(cost.time_to_finish(5, 4), Some(Duration::from_millis(160)));
        cost.sub_pending(100);
        assert_eq!(cost.pending_rows(), 0);
        // The running estimate moves a fifth of the way to each new pass.
        cost.record_pass(10, Duration::from_millis(70));
        assert_eq!(cost.pass(), Some(Duration::from_millis(30)));
        assert!(!cost.probe(), "a pass was just measured");
    }

    #[test]
    fn one_probe_per_interval_without_passes() {
        let cost = CostModel::default();
        cost.record_pass(1, Duration::from_millis(5));
        assert!(!cost.probe());
        std::thread::sleep(PROBE_EVERY + Duration::from_millis(20));
        assert!(cost.probe(), "no pass for a while: one probe");
        assert!(!cost.probe(), "and only one");
    }
}
