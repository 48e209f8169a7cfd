//! The cost model of one version instance, for deadline-aware admission: running estimates
//! (EWMA) of a forward pass's duration, of the rows a pass takes and of the service interval
//! (pass end to pass end while work waits), and the rows admitted but not yet computed. From these the router refuses, at once, a request whose work ahead cannot
//! finish within its deadline (429 with a `Retry-After` from the estimate), and the executor
//! leaves out of a batch a job whose remaining time is shorter than the pass it would join.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Weight of the newest pass in the running estimates.
const ALPHA: f64 = 0.2;
/// Weight of the newest service interval in its slow estimate (about the last 50 passes).
const ALPHA_SLOW: f64 = 0.02;

/// Estimates are used with a margin (+25% at least, + 1 ms for scheduling noise on a busy
/// machine and the answer's own way back): a request that would finish just in time by the
/// estimate is refused rather than computed and late. Measured on the CNN: ×1.5 + 0.5 ms refused
/// half the requests a 20 ms deadline could serve; ×1.25 + 0.25 ms computed up to 13 late ones
/// at 2 ms. The factor is calibrated from there (see [`CostModel::record_outcome`]): where the
/// work ahead keeps taking longer than its estimate times the factor (a flood's HTTP work
/// taking the cores from the executor), the factor rises until about one admitted request in a
/// hundred runs past it.
pub const MIN_MARGIN: f64 = 1.25;
/// The factor never rises past this: beyond it admission would refuse what it could serve.
pub const MAX_MARGIN: f64 = 3.0;
/// How far one outcome moves the factor: up by `STEP * 0.99` when a job ran past its estimate
/// with margin, down by `STEP * 0.01` when it did not (a streaming estimate of the 99th
/// percentile of actual / estimated).
const MARGIN_STEP: f64 = 0.02;
const MARGIN_QUANTILE: f64 = 0.998;
/// The margin's absolute part.
const MARGIN_SLACK: Duration = Duration::from_millis(1);

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
    /// EWMAs of the service interval (see [`CostModel::record_interval`]) in nanoseconds, and
    /// per row, as `f64` bits, one fast ([`ALPHA`]) and one slow ([`ALPHA_SLOW`]); 0 before one
    /// was measured.
    interval_nanos: AtomicU64,
    interval_row_nanos: AtomicU64,
    interval_nanos_slow: AtomicU64,
    interval_row_nanos_slow: AtomicU64,
    /// Rows queued or in a pass now.
    pending_rows: AtomicUsize,
    /// Jobs (requests) queued or in a pass now: what the queue's capacity counts.
    pending_jobs: AtomicUsize,
    /// Set when the router refused a request for its deadline; cleared by the early check once
    /// the work ahead fell below [`SHED_LOW_WATER`] of the deadline (`shed`).
    shedding: AtomicBool,
    /// Executor threads taking passes from the queue at once (`batching.instances`).
    instances: AtomicUsize,
    /// The margin's factor, as `f64` bits (see [`MIN_MARGIN`]).
    margin: AtomicU64,
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
            interval_nanos: AtomicU64::new(0),
            interval_row_nanos: AtomicU64::new(0),
            interval_nanos_slow: AtomicU64::new(0),
            interval_row_nanos_slow: AtomicU64::new(0),
            pending_rows: AtomicUsize::new(0),
            pending_jobs: AtomicUsize::new(0),
            shedding: AtomicBool::new(false),
            instances: AtomicUsize::new(1),
            margin: AtomicU64::new(MIN_MARGIN.to_bits()),
        }
    }
}

fn load(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

fn blend(cell: &AtomicU64, sample: f64) {
    blend_at(cell, sample, ALPHA);
}

fn blend_at(cell: &AtomicU64, sample: f64, alpha: f64) {
    let old = load(cell);
    let new = if old == 0.0 {
        sample
    } else {
        old + alpha * (sample - old)
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

    /// Records one service interval of an instance: from the end of its previous pass to the end
    /// of this one (`rows` rows), when this pass's first job was already queued as the previous
    /// one ended. A backlog drains at this pace, not at the forward pass's: it adds gathering,
    /// joining the inputs, answering, and the time the executor waits for a core while the HTTP
    /// workers decode a flood beside it (session 10: under `tests/flood.rs` the CNN's passes
    /// alone priced the queue ~25% short, and 1.5% of the admitted requests timed out).
    ///
    /// The estimate is the larger of a fast and a slow average: it rises within a few passes
    /// and comes down over about fifty. Requests are admitted when the estimate is low, so a
    /// fast average alone admits on the passes that happened to run quick (under a flood the
    /// intervals vary by 2x from one pass to the next) and prices the queue short.
    pub fn record_interval(&self, rows: usize, took: Duration) {
        if rows == 0 {
            return;
        }
        let (nanos, per_row) = (took.as_nanos() as f64, took.as_nanos() as f64 / rows as f64);
        blend(&self.interval_nanos, nanos);
        blend(&self.interval_row_nanos, per_row);
        blend_at(&self.interval_nanos_slow, nanos, ALPHA_SLOW);
        blend_at(&self.interval_row_nanos_slow, per_row, ALPHA_SLOW);
    }

    /// The service interval's estimate (see [`CostModel::record_interval`]), whole and per row.
    fn interval(&self) -> (f64, f64) {
        (
            load(&self.interval_nanos).max(load(&self.interval_nanos_slow)),
            load(&self.interval_row_nanos).max(load(&self.interval_row_nanos_slow)),
        )
    }

    /// `estimate` with this version's margin: what admission compares with a deadline.
    pub fn with_margin(&self, estimate: Duration) -> Duration {
        estimate.mul_f64(self.margin()) + MARGIN_SLACK
    }

    /// The margin's factor now, from [`MIN_MARGIN`] to [`MAX_MARGIN`].
    pub fn margin(&self) -> f64 {
        load(&self.margin)
    }

    /// Calibrates the margin with one admitted job: `estimate` was the work ahead of it when it
    /// was admitted ([`CostModel::time_to_finish`]), `took` how long it actually took from its
    /// queueing to its answer (or, for a job that expired in the queue, at least how long it
    /// would have). Each executor thread writes; a lost update between two only delays a step.
    pub fn record_outcome(&self, estimate: Duration, took: Duration) {
        let margin = self.margin();
        let late = took > estimate.mul_f64(margin) + MARGIN_SLACK;
        let step = if late {
            MARGIN_STEP * MARGIN_QUANTILE
        } else {
            -MARGIN_STEP * (1.0 - MARGIN_QUANTILE)
        };
        let next = (margin + step).clamp(MIN_MARGIN, MAX_MARGIN);
        self.margin.store(next.to_bits(), Ordering::Relaxed);
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

    /// The expected duration of one pass over `rows` rows: the average pass, or longer where
    /// `rows` at the time a row has been taking come to more (a batch larger than most: the CNN
    /// under 2 ms deadlines averaged passes of a few rows, and a pass of 15 ran 1.4 ms and past
    /// its jobs' deadlines). `None` before any pass was measured.
    pub fn pass_for(&self, rows: usize) -> Option<Duration> {
        let pass = self.pass()?;
        let by_rows = Duration::from_nanos((rows as f64 * load(&self.row_nanos)) as u64);
        Some(pass.max(by_rows))
    }

    /// Expected time until `rows` more rows, queued behind the pending ones, are computed:
    /// the passes they all need (at the rows a pass has been taking, at most `max_rows`) times
    /// a pass's duration. `None` before any pass was measured.
    pub fn time_to_finish(&self, rows: usize, max_rows: usize) -> Option<Duration> {
        // A pass takes at least its service interval's time, once one was measured.
        let (interval, interval_per_row) = self.interval();
        let pass = self.pass()?.max(Duration::from_nanos(interval as u64));
        let row_nanos = load(&self.row_nanos).max(interval_per_row);
        let per_pass = load(&self.rows_per_pass).clamp(1.0, max_rows.max(1) as f64);
        let total = (self.pending_rows() + rows) as f64;
        // `instances` passes run side by side (each measured at the speed it has beside the
        // others).
        let instances = self.instances.load(Ordering::Relaxed).max(1) as f64;
        let passes = (total / per_pass / instances).ceil().max(1.0);
        // When passes grow (a flood fills them), a pass's time grows with its rows faster than
        // the two averages follow: the time per row bounds the estimate from below.
        let by_rows = Duration::from_nanos((total / instances * row_nanos) as u64);
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

    pub fn pending_jobs(&self) -> usize {
        self.pending_jobs.load(Ordering::Relaxed)
    }

    /// One job of `rows` rows was queued.
    pub fn add_pending(&self, rows: usize) {
        self.pending_rows.fetch_add(rows, Ordering::Relaxed);
        self.pending_jobs.fetch_add(1, Ordering::Relaxed);
    }

    /// `jobs` jobs of `rows` rows in all were computed, dropped or never queued.
    pub fn sub_pending(&self, jobs: usize, rows: usize) {
        // Saturating: a job counted by an old instance may finish on a new one's books.
        let saturating = |cell: &AtomicUsize, n: usize| {
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |have| {
                Some(have.saturating_sub(n))
            });
        };
        saturating(&self.pending_rows, rows);
        saturating(&self.pending_jobs, jobs);
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
        // A pass of up to 10 rows takes the average pass; of 15, 15 rows at 2 ms a row.
        assert_eq!(cost.pass_for(4), Some(Duration::from_millis(20)));
        assert_eq!(cost.pass_for(15), Some(Duration::from_millis(30)));
        // Nothing pending: one pass.
        assert_eq!(cost.time_to_finish(1, 32), Some(Duration::from_millis(20)));
        // 25 rows ahead + 5 at 10 rows a pass: three passes.
        cost.add_pending(25);
        assert_eq!(cost.time_to_finish(5, 32), Some(Duration::from_millis(60)));
        // The rows per pass never exceed the batch limit.
        assert_eq!(cost.time_to_finish(5, 4), Some(Duration::from_millis(160)));
        cost.sub_pending(1, 100);
        assert_eq!(cost.pending_jobs(), 0);
        assert_eq!(cost.pending_rows(), 0);
        // The running estimate moves a fifth of the way to each new pass.
        cost.record_pass(10, Duration::from_millis(70));
        assert_eq!(cost.pass(), Some(Duration::from_millis(30)));
        assert!(!cost.probe(), "a pass was just measured");
    }

    #[test]
    fn a_backlog_drains_at_the_service_interval_when_it_exceeds_the_pass() {
        let cost = CostModel::default();
        cost.record_pass(10, Duration::from_millis(20));
        cost.add_pending(25);
        assert_eq!(cost.time_to_finish(5, 32), Some(Duration::from_millis(60)));
        // Passes of 20 ms end 25 ms apart while work waits: three passes take 75 ms.
        cost.record_interval(10, Duration::from_millis(25));
        assert_eq!(cost.time_to_finish(5, 32), Some(Duration::from_millis(75)));
        // An interval shorter than the pass (never measured so, but rounding) does not lower it.
        let quick = CostModel::default();
        quick.record_pass(10, Duration::from_millis(20));
        quick.record_interval(10, Duration::from_millis(15));
        assert_eq!(quick.time_to_finish(0, 32), Some(Duration::from_millis(20)));
        // The time per row follows the interval too: 30 rows at 2.5 ms a row.
        cost.record_pass(30, Duration::from_millis(20));
        assert!(cost.time_to_finish(5, 32).unwrap() >= Duration::from_millis(75));
    }

    #[test]
    fn the_margin_rises_while_jobs_run_past_it_and_falls_back_to_its_floor() {
        let cost = CostModel::default();
        let ms = Duration::from_millis;
        assert_eq!(cost.margin(), MIN_MARGIN);
        assert_eq!(cost.with_margin(ms(100)), ms(126));
        // Within the margin: it stays at its floor.
        cost.record_outcome(ms(100), ms(120));
        assert_eq!(cost.margin(), MIN_MARGIN);
        // 20 jobs 40% past their estimate: the factor climbs towards 1.4 and past it.
        for _ in 0..20 {
            cost.record_outcome(ms(100), ms(140));
        }
        let risen = cost.margin();
        assert!(risen > 1.4 && risen < 1.5, "risen to {risen}");
        assert!(cost.with_margin(ms(100)) > ms(141));
        // Then every job in time: down by 0.2% of a step each, to the floor.
        for _ in 0..100 {
            cost.record_outcome(ms(100), ms(100));
        }
        let down = MARGIN_STEP * (1.0 - MARGIN_QUANTILE);
        assert!((risen - cost.margin() - 100.0 * down).abs() < 1e-9);
        for _ in 0..100_000 {
            cost.record_outcome(ms(100), ms(100));
        }
        assert_eq!(cost.margin(), MIN_MARGIN);
        // Never past the ceiling.
        for _ in 0..1_000 {
            cost.record_outcome(ms(1), ms(1_000));
        }
        assert_eq!(cost.margin(), MAX_MARGIN);
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
