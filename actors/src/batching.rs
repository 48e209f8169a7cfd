//! Pure batching state: which queued jobs still deserve compute (triage), how jobs gather into
//! a batch bounded by rows and by shape (requests whose variable dimensions differ never share
//! a pass), when gathering stops (and whether waiting is worth it), and how typed inputs and
//! outputs are joined along the batch dimension and split back per job.

use std::time::{Duration, Instant};

use burnserve_models::{ModelError, NamedTensor, TensorData};

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

    /// Whether `job` can join without passing `max_rows` and with the same inputs, each of the
    /// same item shape, as the batch's first job (an empty batch takes any job).
    pub fn fits(&self, job: &Job) -> bool {
        let Some(first) = self.jobs.first() else {
            return true;
        };
        self.rows + job.rows <= self.max_rows && same_items(&first.inputs, &job.inputs)
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

    /// Every job's inputs joined along the batch dimension, rows in job order. Each job keeps
    /// its own inputs, so a failed batch can run its jobs again one by one; a lone job's inputs
    /// are moved (no copy).
    pub fn joined_inputs(&mut self) -> Result<Vec<NamedTensor>, ModelError> {
        if self.jobs.len() == 1 {
            return Ok(std::mem::take(&mut self.jobs[0].inputs));
        }
        let Some(first) = self.jobs.first() else {
            return Ok(Vec::new());
        };
        let mut joined = Vec::with_capacity(first.inputs.len());
        for (index, head) in first.inputs.iter().enumerate() {
            let total = self.jobs.iter().map(|j| j.inputs[index].data.len()).sum();
            let mut data = TensorData::with_capacity(head.datatype(), total);
            for job in &self.jobs {
                if !data.extend_from(&job.inputs[index].data) {
                    return Err(ModelError::Inference(format!(
                        "cannot batch input '{}' of two datatypes",
                        head.name
                    )));
                }
            }
            let mut shape = head.shape.clone();
            shape[0] = self.rows;
            joined.push(NamedTensor::new(head.name.clone(), shape, data));
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

/// Whether two jobs' inputs are the same tensors with the same item shapes (all but the batch
/// dimension), so they can run in one pass.
fn same_items(a: &[NamedTensor], b: &[NamedTensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.shape.len() == y.shape.len()
                && x.shape.get(1..) == y.shape.get(1..)
        })
}

/// Splits a batch's outputs back into each job's rows: every output must be `[rows, ..]` of the
/// batch's rows with as many elements as its shape says. A model without a batch dimension runs
/// one job a pass, whose outputs are passed through whole.
pub fn split_outputs(
    outputs: Vec<NamedTensor>,
    rows_per_job: &[usize],
    batched: bool,
) -> Result<Vec<Vec<NamedTensor>>, ModelError> {
    let total_rows: usize = rows_per_job.iter().sum();
    for output in &outputs {
        let count = output
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(output.data.len()) {
            return Err(ModelError::Inference(format!(
                "output '{}' has {} elements for shape {:?}",
                output.name,
                output.data.len(),
                output.shape
            )));
        }
        if batched && output.shape.first() != Some(&total_rows) {
            return Err(ModelError::Inference(format!(
                "output '{}' has shape {:?} for a batch of {total_rows} rows",
                output.name, output.shape
            )));
        }
    }
    if rows_per_job.len() == 1 || !batched {
        return Ok(vec![outputs]);
    }
    let mut parts: Vec<Vec<NamedTensor>> = (0..rows_per_job.len())
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for mut output in outputs {
        let per_row = output.data.len() / total_rows.max(1);
        // Split from the back so each split_off is O(part).
        let mut end = total_rows;
        for (job, rows) in rows_per_job.iter().enumerate().rev() {
            let start = end - rows;
            let data = output.data.split_off(start * per_row);
            let mut shape = output.shape.clone();
            shape[0] = *rows;
            parts[job].push(NamedTensor::new(output.name.clone(), shape, data));
            end = start;
        }
    }
    // Each job's outputs were pushed in the outputs' order.
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
            inputs: vec![NamedTensor::new(
                "x",
                vec![rows, 2],
                TensorData::F32(vec![first; rows * 2]),
            )],
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
            batch.joined_inputs(),
            Ok(vec![NamedTensor::new(
                "x",
                vec![4, 2],
                TensorData::F32(vec![1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
            )])
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
    fn jobs_of_other_item_shapes_start_another_batch() {
        let mut batch = Batch::new(8);
        let (a, _ra) = job(1, 1.0, Duration::from_secs(1));
        let (mut b, _rb) = job(1, 2.0, Duration::from_secs(1));
        batch.push(a);
        b.inputs[0].shape = vec![1, 1, 2];
        assert!(!batch.fits(&b), "another rank");
        b.inputs[0].shape = vec![2, 1];
        b.rows = 2;
        assert!(!batch.fits(&b), "another item shape");
        b.inputs[0].shape = vec![1, 2];
        b.rows = 1;
        b.inputs[0].name = "other".into();
        assert!(!batch.fits(&b), "another input");
        b.inputs[0].name = "x".into();
        assert!(batch.fits(&b));
    }

    #[test]
    fn split_outputs_returns_each_jobs_rows_of_every_output() {
        let a = NamedTensor::new("a", vec![5, 2], TensorData::I64((0..10).collect()));
        let b = NamedTensor::new(
            "b",
            vec![5],
            TensorData::Bytes((0..5u8).map(|i| vec![i]).collect()),
        );
        let parts = split_outputs(vec![a, b], &[1, 3, 1], true).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1][0].shape, vec![3, 2]);
        assert_eq!(parts[1][0].data, TensorData::I64(vec![2, 3, 4, 5, 6, 7]));
        assert_eq!(parts[2][1].data, TensorData::Bytes(vec![vec![4]]));
        assert_eq!(parts[0][1].name, "b");
        let short = NamedTensor::new("a", vec![2, 2], TensorData::F32(vec![0.0; 3]));
        assert!(split_outputs(vec![short], &[2], true).is_err());
        let rows = NamedTensor::new("a", vec![3], TensorData::F32(vec![0.0; 3]));
        assert!(split_outputs(vec![rows.clone()], &[1, 1], true).is_err());
        // No batch dimension: passed through whole.
        assert_eq!(
            split_outputs(vec![rows.clone()], &[1], false).unwrap()[0][0],
            rows
        );
    }
}
