//! The executor: one thread per version, bound to its device. It builds and warms up the model,
//! then gathers batches from the version's queue, skips expired and abandoned jobs, runs
//! forward passes under `catch_unwind`, and answers every job it took.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burnserve_models::{
    load_model, Device, InferenceModel, InputData, ModelError, ModelOutput, ModelSpec, BYTES,
};
use crossbeam_channel::Receiver;
use tokio::sync::oneshot;

use crate::batching::{
    gather_until, split_rows, triage, Batch, BatchPolicy, DelayGovernor, Triage,
};
use crate::error::InferError;
use crate::lifecycle::VersionState;
use crate::messages::{Job, JobOutput, VersionKey};
use crate::metrics::VersionMetrics;

/// What an executor needs to build its model.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub key: VersionKey,
    pub spec: Arc<ModelSpec>,
    /// The version directory in the repository.
    pub dir: PathBuf,
    pub device: Device,
    /// Shared with the router and the admin listing.
    pub state: Arc<VersionState>,
}

impl ExecutorConfig {
    pub fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_rows: self.spec.batching.max_batch_size,
            max_delay: self.spec.batching.max_batch_delay(),
            adaptive: self.spec.batching.adaptive_delay,
        }
    }
}

/// A successful build and warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loaded {
    pub took: Duration,
    pub weight_bytes: usize,
}

/// Why an executor thread ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorExit {
    /// Every sender is gone: the version was unloaded.
    QueueClosed,
    LoadFailed(ModelError),
    /// A `ModelError::Fatal`, or the executor thread panicked outside a forward pass.
    Fatal(ModelError),
}

pub type ReadySender = oneshot::Sender<Result<Loaded, ModelError>>;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// Runs `model.forward`, turning a panic into an error.
fn guarded_forward(
    model: &mut dyn InferenceModel,
    input: InputData,
    rows: usize,
) -> Result<ModelOutput, ModelError> {
    catch_unwind(AssertUnwindSafe(|| model.forward(input, rows))).unwrap_or_else(|payload| {
        Err(ModelError::Inference(format!(
            "forward pass panicked: {}",
            panic_message(&*payload)
        )))
    })
}

/// Builds the model and runs one real forward pass (zeros, or a short text).
fn build_and_warm(
    config: &ExecutorConfig,
) -> Result<(Box<dyn InferenceModel>, Loaded), ModelError> {
    let start = Instant::now();
    let mut model = catch_unwind(AssertUnwindSafe(|| {
        load_model(&config.spec, &config.dir, config.device)
    }))
    .unwrap_or_else(|payload| {
        Err(ModelError::Load(format!(
            "loading panicked: {}",
            panic_message(&*payload)
        )))
    })?;
    let warm_up = if config.spec.input.datatype == BYTES {
        InputData::Bytes(vec!["warm up".to_string()])
    } else {
        InputData::Fp32(vec![0.0; config.spec.input.item_len()])
    };
    let output = guarded_forward(model.as_mut(), warm_up, 1)
        .map_err(|e| ModelError::Load(format!("warm-up failed: {e}")))?;
    if output.values.len() != config.spec.output.item_len() {
        return Err(ModelError::Load(format!(
            "warm-up returned {} values; model.toml declares output shape {:?}",
            output.values.len(),
            config.spec.output.shape
        )));
    }
    let weight_bytes = model.weight_bytes();
    Ok((
        model,
        Loaded {
            took: start.elapsed(),
            weight_bytes,
        },
    ))
}

/// The executor thread's body: build, report readiness on `ready`, serve until the queue closes
/// or the model fails fatally.
pub fn run(
    config: ExecutorConfig,
    queue: Receiver<Job>,
    metrics: VersionMetrics,
    ready: ReadySender,
) -> ExecutorExit {
    let mut model = match build_and_warm(&config) {
        Ok((model, loaded)) => {
            let _ = ready.send(Ok(loaded));
            model
        }
        Err(err) => {
            tracing::error!(version = %config.key, error = %err, "executor could not load its model");
            let _ = ready.send(Err(err.clone()));
            return ExecutorExit::LoadFailed(err);
        }
    };
    let policy = config.policy();
    let output_len = config.spec.output.item_len();
    let mut carried: Option<Job> = None;
    let mut governor = DelayGovernor::new();
    loop {
        let Some(batch) = gather(&queue, &policy, &mut governor, &metrics, &mut carried) else {
            return ExecutorExit::QueueClosed;
        };
        let started = Instant::now();
        let outcome = execute(model.as_mut(), batch, output_len, &metrics, &config.state);
        governor.record_forward(started.elapsed());
        if let Err(fatal) = outcome {
            if let Some(held_back) = config.state.log_fatal() {
                tracing::error!(version = %config.key, error = %fatal, held_back,
                    "executor stopping on a fatal model error");
            }
            return ExecutorExit::Fatal(fatal);
        }
    }
}

/// Blocks for the next batch: waits for a live job, then gathers until the batch is full or
/// the first job has waited the governor's delay (`max_delay`, or none while batches find no
/// company). `None` when the queue is closed and empty.
fn gather(
    queue: &Receiver<Job>,
    policy: &BatchPolicy,
    governor: &mut DelayGovernor,
    metrics: &VersionMetrics,
    carried: &mut Option<Job>,
) -> Option<Batch> {
    let mut batch = Batch::new(policy.max_rows);
    let admit = |batch: &mut Batch, job: Job| match triage(&job, Instant::now()) {
        Triage::Run => batch.push(job),
        Triage::Expired => {
            metrics.timed_out();
            let waited = job.deadline.saturating_duration_since(job.enqueued_at);
            let _ = job.reply.send(Err(InferError::Timeout(waited)));
        }
        Triage::Abandoned => {}
    };
    if let Some(job) = carried.take() {
        admit(&mut batch, job);
    }
    while batch.is_empty() {
        admit(&mut batch, queue.recv().ok()?);
    }
    let until = gather_until(batch.jobs()[0].enqueued_at, governor.delay(policy));
    while !batch.is_full() {
        // Past the deadline only what is already queued joins: `try_recv` does not spin the
        // way `recv_deadline` does before it looks at the clock.
        let next = if Instant::now() >= until {
            queue.try_recv().ok()
        } else {
            queue.recv_deadline(until).ok()
        };
        match next {
            Some(job) if batch.fits(&job) => admit(&mut batch, job),
            Some(job) => {
                *carried = Some(job);
                break;
            }
            None => break,
        }
    }
    governor.record(batch.len());
    metrics.set_queue_depth(queue.len());
    Some(batch)
}

/// Runs one batch and answers each job. `Err` only for a fatal model error.
fn execute(
    model: &mut dyn InferenceModel,
    mut batch: Batch,
    output_len: usize,
    metrics: &VersionMetrics,
    state: &VersionState,
) -> Result<(), ModelError> {
    let started = Instant::now();
    let size = batch.len();
    let rows = batch.rows();
    metrics.batch_started(
        size,
        batch
            .jobs()
            .iter()
            .map(|j| started.saturating_duration_since(j.enqueued_at)),
    );
    let input = batch.take_input();
    state.add_inflight(size);
    let result = input.and_then(|input| guarded_forward(model, input, rows));
    state.sub_inflight(size);
    let inference_time = started.elapsed();
    metrics.batch_finished(size);
    let jobs = batch.into_jobs();
    let rows_per_job: Vec<usize> = jobs.iter().map(|j| j.rows).collect();
    let outputs = result.and_then(|output| {
        let tokens = tokens_per_job(&output.tokens, &rows_per_job);
        split_rows(output.values, &rows_per_job, output_len)
            .map(|parts| parts.into_iter().zip(tokens).collect::<Vec<_>>())
    });
    match outputs {
        Ok(outputs) => {
            let finished = Instant::now();
            for (job, (output, tokens)) in jobs.into_iter().zip(outputs) {
                if finished > job.deadline {
                    metrics.timed_out();
                }
                let _ = job.reply.send(Ok(JobOutput {
                    output,
                    rows: job.rows,
                    queue_time: started.saturating_duration_since(job.enqueued_at),
                    inference_time,
                    batch_size: size,
                    tokens,
                }));
            }
            Ok(())
        }
        Err(err) => {
            let answer = InferError::Inference(err.to_string());
            for job in jobs {
                let _ = job.reply.send(Err(answer.clone()));
            }
            match err {
                ModelError::Fatal(_) => Err(err),
                _ => Ok(()),
            }
        }
    }
}

/// Sums per-row token counts into per-job counts (zeros when the model reports none).
fn tokens_per_job(row_tokens: &[usize], rows_per_job: &[usize]) -> Vec<usize> {
    let mut start = 0;
    rows_per_job
        .iter()
        .map(|&rows| {
            let end = (start + rows).min(row_tokens.len());
            let sum = row_tokens.get(start..end).map_or(0, |t| t.iter().sum());
            start += rows;
            sum
        })
        .collect()
}
