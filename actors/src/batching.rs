//! Pure batching state: which queued jobs still deserve compute (triage), how jobs gather into
//! a batch bounded by rows, when gathering stops (and whether waiting is worth it), and how
//! inputs and outputs are joined and split.

use std::time::{Duration, Instant};

use burnserve_models::{InputData, ModelError};

use crate::messages::Job;

/// A version's batching rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolicy {
    /// Most rows (items) in one forward pass.
    pub max_rows: usize,
    /// Longest the first job of a batch waits for others to join.
    pub max_delay: Duration,
    /// Let a [`DelayGovernor`] skip the wait while batches find no company.
    pub adaptive: bool,
}

/// What to do with a job taken from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    Run,
    /// Its deadline passed while queued: answer `timeout`, do not compute.
    Expired,
    /// Its requester is gone (client left or already timed out): do not compute.
    Abandoned,
}

/// Expiry is checked first: a requester that timed out also closed its reply channel, and it
/// must count as a timeout, not as a client that left.
pub fn triage(job: &Job, now: Instant) -> Triage {
    if now >= job.deadline {
        Triage::Expired
    } else if job.reply.is_closed() {
        Triage::Abandoned
    } else {
        Triage::Run
    }
}

/// When gathering for a batch whose first job was enqueued at `first_enqueued` stops: the
/// delay counts from that job's arrival or from the end of the previous pass
/// (`last_pass_end`), whichever is later.
///
/// From the arrival alone, a job that waited behind a busy executor ran at once with whatever
/// had queued, and clients that send again when answered (most do) split into groups that took
/// turns: MiniLM at 32 one-text clients settled into passes of 16 (half of `max_batch_size`),
/// each group's requests arriving during the other's pass. Counting from the pass's end gives
/// the clients just answered the same delay to come back, and passes fill (served 0.90× → 0.96×
/// of in-process batch 32, BENCHMARKS.md). A backlogged job may wait one delay more; a full
/// batch never waits.
pub fn gather_until(
    first_enqueued: Instant,
    last_pass_end: Option<Instant>,
    delay: Duration,
) -> Instant {
    last_pass_end.map_or(first_enqueued, |end| end.max(first_enqueued)) + delay
}

/// Decides, batch by batch, how long the first job waits for company.
///
/// Waiting only pays when other requests arrive meanwhile. The governor keeps a moving average
/// of the extra jobs each batch gathered; while it stays below [`Self::WAIT_ABOVE`] (a lone
/// client, or load too light to meet), batches run with whatever is already queued and no wait.
/// Every [`Self::PROBE_EVERY`]-th batch waits anyway, so rising load is noticed even when the
/// forward pass is too fast for a queue to form; a queue that forms by itself counts too.
///
/// A wait is also never longer than [`Self::WAIT_PASSES`] recent forward passes: for a 30 µs MLP
/// a 1 ms wait would cost far more latency than it could save, while a 15 ms transformer pass
/// still gets the whole `max_delay`. Eight, not one: under load a small model's pass of one or
/// two jobs costs nearly what a pass of eight does (the executor's wake-up, the hand-overs, a
/// GEMM too small to vectorise: the MLP's pass of one row is 15 µs, of eight 24 µs), and a wait
/// of one pass rarely met the next request (2.4 jobs a batch for the MLP at 64 clients; 5 with
/// four passes, the server's CPU per binary request 36 → 28 µs; with eight, binary / JSON 0.60
/// → 0.52–0.53 in three runs, BENCHMARKS.md "Protocols"). For the MLP eight passes are ~0.2 ms
/// at most. The executor sleeps through the wait, so it costs no CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayGovernor {
    /// Moving average of the jobs beyond the first in recent batches.
    company: f64,
    /// Batches run without a wait since the last one that waited.
    skipped: u32,
    /// Moving average of recent forward passes (none yet: no cap).
    forward: Option<Duration>,
}

impl DelayGovernor {
    /// Weight of the newest batch in the moving average.
    pub const SMOOTHING: f64 = 0.2;
    /// Wait while recent batches averaged at least this many extra jobs.
    pub const WAIT_ABOVE: f64 = 0.5;
    /// While skipping, wait on every this-many-th batch to look for company.
    pub const PROBE_EVERY: u32 = 32;
    /// A wait lasts at most this many recent forward passes.
    pub const WAIT_PASSES: u32 = 8;

    /// Starts out waiting, as configured.
    pub fn new() -> Self {
        Self {
            company: 1.0,
            skipped: 0,
            forward: None,
        }
    }

    /// How long the next batch's first job may wait for others.
    pub fn delay(&mut self, policy: &BatchPolicy) -> Duration {
        if !policy.adaptive {
            return policy.max_delay;
        }
        let wait = self.forward.map_or(policy.max_delay, |forward| {
            (forward * Self::WAIT_PASSES).min(policy.max_delay)
        });
        if self.company >= Self::WAIT_ABOVE {
            self.skipped = 0;
            return wait;
        }
        self.skipped += 1;
        if self.skipped >= Self::PROBE_EVERY {
            self.skipped = 0;
            return wait;
        }
        Duration::ZERO
    }

    /// Records how long a batch's forward pass took.
    pub fn record_forward(&mut self, took: Duration) {
        self.forward = Some(match self.forward {
            None => took,
            Some(average) => average.mul_f64(1.0 - Self::SMOOTHING) + took.mul_f64(Self::SMOOTHING),
        });
    }

    /// Records a gathered batch of `jobs` jobs.
    pub fn record(&mut self, jobs: usize) {
        let extra = jobs.saturating_sub(1) as f64;
        self.company += Self::SMOOTHING * (extra - self.company);
    }

    /// Whether the next batch would wait (probes aside).
    pub fn waiting(&self) -> bool {
        self.company >= Self::WAIT_ABOVE
    }
}

impl Default for DelayGovernor {
    fn default() -> Self {
        Self::new()
    }
}

/// Jobs gathered for one forward pass.
#[derive(Debug)]
pub struct Batch {
    jobs: Vec<Job>,
    rows: usize,
    max_rows: usize,
}

impl Batch {
    pub fn new(max_rows: usize) -> Self {
        Self {
            jobs: Vec::new(),
            rows: 0,
            max_rows,
        }
    }

    /// Whether `job` can join without passing `max_rows` (an empty batch takes any job).
    pub fn fits(&self, job: &Job) -> bool {
        self.jobs.is_empty() || self.rows + job.rows <= self.max_rows
    }

    pub fn push(&mut self, job: Job) {
        self.rows += job.rows;
        self.jobs.push(job);
    }

    pub fn is_full(&self) -> bool {
        self.rows >= self.max_rows
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Every job's input in one buffer, rows in job order. Each job keeps its own input, so a
    /// failed batch can run its jobs again one by one; a lone job's input is moved (no copy).
    pub fn joined_input(&mut self) -> Result<InputData, ModelError> {
        let Some(first) = self.jobs.first() else {
            return Ok(InputData::default());
        };
        if self.jobs.len() == 1 {
            return Ok(std::mem::take(&mut self.jobs[0].input));
        }
        let total = self.jobs.iter().map(|j| j.input.len()).sum();
        let mut joined = first.input.empty_like(total);
        for job in &self.jobs {
            joined.extend_from(&job.input)?;
        }
        Ok(joined)
    }

    pub fn into_jobs(self) -> Vec<Job> {
        self.jobs
    }

    /// Takes out the jobs `leave_out` picks, keeping the others in order.
    pub fn remove_where(&mut self, mut leave_out: impl FnMut(&Job) -> bool) -> Vec<Job> {
        let (out, kept) = std::mem::take(&mut self.jobs)
            .into_iter()
            .partition(|job| leave_out(job));
        self.jobs = kept;
        self.rows = self.jobs.iter().map(|job| job.rows).sum();
        out
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }
}

/// Splits a row-major batch output back into one buffer per job.
pub fn split_rows(
    mut output: Vec<f32>,
    rows_per_job: &[usize],
    item_len: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let total_rows: usize = rows_per_job.iter().sum();
    if output.len() != total_rows * item_len {
        return Err(ModelError::Inference(format!(
            "model returned {} values for {total_rows} rows of {item_len}",
            output.len()
        )));
    }
    if rows_per_job.len() == 1 {
        return Ok(vec![output]);
    }
    let mut parts = Vec::with_capacity(rows_per_job.len());
    // Split from the back so each split_off is O(part).
    for rows in rows_per_job.iter().rev() {
        let at = output.len() - rows * item_len;
        parts.push(output.split_off(at));
    }
    parts.reverse();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn job(
        rows: usize,
        first: f32,
        deadline_in: Duration,
    ) -> (
        Job,
        oneshot::Receiver<Result<crate::JobOutput, crate::InferError>>,
    ) {
        let (reply, rx) = crate::reply::JobReply::direct();
        let now = Instant::now();
        let job = Job {
            input: InputData::Fp32(vec![first; rows * 2]),
            rows,
            deadline: now + deadline_in,
            enqueued_at: now,
            reply,
            probe: false,
            estimate: None,
        };
        (job, rx)
    }

    #[test]
    fn triage_skips_abandoned_and_expired_jobs() {
        let (live, _rx_live) = job(1, 0.0, Duration::from_secs(5));
        assert_eq!(triage(&live, Instant::now()), Triage::Run);
        assert_eq!(triage(&live, live.deadline), Triage::Expired);
        let (left, rx_left) = job(1, 0.0, Duration::from_secs(5));
        drop(rx_left);
        assert_eq!(triage(&left, Instant::now()), Triage::Abandoned);
        assert_eq!(triage(&left, left.deadline), Triage::Expired);
    }

    #[test]
    fn batch_respects_max_rows_and_joins_inputs_in_order() {
        let mut batch = Batch::new(4);
        let (a, _ra) = job(1, 1.0, Duration::from_secs(1));
        let (b, _rb) = job(3, 2.0, Duration::from_secs(1));
        let (c, _rc) = job(1, 3.0, Duration::from_secs(1));
        assert!(batch.fits(&a));
        batch.push(a);
        assert!(batch.fits(&b));
        batch.push(b);
        assert!(batch.is_full());
        assert!(!batch.fits(&c));
        assert_eq!((batch.len(), batch.rows()), (2, 4));
        assert_eq!(
            batch.joined_input(),
            Ok(InputData::Fp32(vec![
                1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0
            ]))
        );
        // An oversized job still runs alone.
        let (big, _rbig) = job(9, 0.0, Duration::from_secs(1));
        assert!(Batch::new(4).fits(&big));
    }

    #[test]
    fn gathering_stops_the_delay_after_the_first_arrival_or_the_last_pass() {
        let t0 = Instant::now();
        let delay = Duration::from_millis(5);
        // No pass yet, or an executor idle since before the job came: from its arrival.
        assert_eq!(gather_until(t0, None, delay), t0 + delay);
        let earlier = t0 - Duration::from_millis(20);
        assert_eq!(gather_until(t0, Some(earlier), delay), t0 + delay);
        // A job that queued during the last pass: from that pass's end.
        let end = t0 + Duration::from_millis(30);
        assert_eq!(gather_until(t0, Some(end), delay), end + delay);
    }

    fn policy(adaptive: bool) -> BatchPolicy {
        BatchPolicy {
            max_rows: 8,
            max_delay: Duration::from_millis(2),
            adaptive,
        }
    }

    #[test]
    fn governor_stops_waiting_for_a_lone_client_and_probes() {
        let policy = policy(true);
        let mut governor = DelayGovernor::new();
        let mut delays = Vec::new();
        for _ in 0..70 {
            delays.push(governor.delay(&policy));
            governor.record(1);
        }
        // 1.0 * 0.8^n falls below 0.5 after 4 solitary batches: those 4 waited.
        assert!(delays[..4].iter().all(|d| *d == policy.max_delay));
        assert!(!governor.waiting());
        // Then no wait, except one probe every PROBE_EVERY batches.
        let waited: Vec<usize> = (4..70).filter(|&i| delays[i] == policy.max_delay).collect();
        assert_eq!(waited, vec![4 + 31, 4 + 63]);
    }

    #[test]
    fn governor_resumes_waiting_when_batches_find_company() {
        let policy = policy(true);
        let mut governor = DelayGovernor::new();
        for _ in 0..10 {
            governor.delay(&policy);
            governor.record(1);
        }
        assert_eq!(governor.delay(&policy), Duration::ZERO);
        // A probe (or a queue that formed by itself) gathers 4 jobs: 3 extra lifts the average
        // well above the threshold.
        governor.record(4);
        assert!(governor.waiting());
        assert_eq!(governor.delay(&policy), policy.max_delay);
        // Pairs (one extra job each) keep it waiting.
        for _ in 0..20 {
            governor.record(2);
            assert_eq!(governor.delay(&policy), policy.max_delay);
        }
    }

    #[test]
    fn governor_waits_no_longer_than_eight_forward_passes() {
        let policy = policy(true);
        let mut governor = DelayGovernor::new();
        governor.record(3);
        governor.record_forward(Duration::from_micros(40));
        assert_eq!(governor.delay(&policy), Duration::from_micros(320));
        // A moving average: 0.8 * 40 µs + 0.2 * 140 µs = 60 µs; eight of them.
        governor.record_forward(Duration::from_micros(140));
        assert_eq!(governor.delay(&policy), Duration::from_micros(480));
        // Slow passes: the configured maximum.
        for _ in 0..40 {
            governor.record_forward(Duration::from_millis(15));
        }
        assert_eq!(governor.delay(&policy), policy.max_delay);
    }

    #[test]
    fn governor_always_waits_when_not_adaptive() {
        let policy = policy(false);
        let mut governor = DelayGovernor::new();
        for _ in 0..50 {
            assert_eq!(governor.delay(&policy), policy.max_delay);
            governor.record(1);
            governor.record_forward(Duration::from_micros(10));
        }
    }

    #[test]
    fn split_rows_returns_each_jobs_rows() {
        let out: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let parts = split_rows(out, &[1, 3, 1], 2).unwrap();
        assert_eq!(
            parts,
            vec![
                vec![0.0, 1.0],
                vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                vec![8.0, 9.0]
            ]
        );
        assert!(split_rows(vec![0.0; 3], &[1], 2).is_err());
    }
}
