//! Pure batching state: which queued jobs still deserve compute (triage), how jobs gather into
//! a batch bounded by rows and by shape (requests whose variable dimensions differ never share
//! a pass), when gathering stops (and whether waiting is worth it), and how typed inputs and
//! outputs are joined along the batch dimension and split back per job.

use std::time::{Duration, Instant};

use burnserve_models::{ModelError, NamedTensor, TensorData};

use crate::messages::Job;

/// A version's batching rules.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPolicy {
    /// Most rows (items) in one forward pass.
    pub max_rows: usize,
    /// Batch sizes worth sending at once (Triton's `preferred_batch_size`): a batch holds at
    /// most the largest, and goes as soon as it holds one of them and nothing more is queued.
    pub preferred: Vec<usize>,
    /// Longest the first job of a batch waits for others to join.
    pub max_delay: Duration,
    /// Let a [`DelayGovernor`] skip the wait while batches find no company.
    pub adaptive: bool,
}

impl BatchPolicy {
    /// Most rows of one batch: the largest preferred size, else `max_rows`.
    pub fn batch_rows(&self) -> usize {
        self.preferred
            .iter()
            .copied()
            .max()
            .map_or(self.max_rows, |largest| largest.min(self.max_rows))
    }
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

    /// The outputs the batch's requests asked for, each once; `None` when one of them wants
    /// every output.
    pub fn wanted_outputs(&self) -> Option<Vec<String>> {
        wanted_outputs(&self.jobs)
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

/// The outputs `jobs` asked for, each once, in the order first asked; `None` when one of them
/// wants every output.
pub fn wanted_outputs(jobs: &[Job]) -> Option<Vec<String>> {
    let mut wanted: Vec<String> = Vec::new();
    for job in jobs {
        if job.outputs.is_empty() {
            return None;
        }
        for name in &job.outputs {
            if !wanted.contains(name) {
                wanted.push(name.clone());
            }
        }
    }
    Some(wanted)
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
mod tests;
