//! The executor: one thread per version (plus one per extra `batching.instances`), bound to its
//! device. It builds and warms up the model, then gathers batches from the version's queue,
//! skips expired and abandoned jobs, runs forward passes under `catch_unwind`, and answers every
//! job it took.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burnserve_models::{
    check_outputs, load_version, warm_up_inputs, Cancel, Device, InferenceModel, Jail, LoadBudget,
    LoadContext, LoadLimits, ModelError, ModelOutput, ModelSpec, NamedTensor,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::oneshot;

use crate::batching::{
    gather_until, split_outputs, triage, Batch, BatchPolicy, DelayGovernor, Triage,
};
use crate::cost::CostModel;
use crate::error::InferError;
use crate::lifecycle::VersionState;
use crate::messages::{Job, JobOutput, VersionKey};
use crate::metrics::VersionMetrics;
use crate::reply::Answers;

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
    /// The repository jail every file of the version is read through.
    pub jail: Arc<Jail>,
    /// What one build may spend (memory estimate cap, deadline from the build's start).
    pub limits: LoadLimits,
    /// Set by the loader when the load passed its deadline: the build stops at its next check
    /// and the model is never served.
    pub cancel: Cancel,
}

impl ExecutorConfig {
    pub fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_rows: self.spec.batching.max_rows(),
            preferred: self.spec.batching.preferred_batch_sizes.clone(),
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

/// Runs `model.forward`, turning a panic into an error, and checks its outputs against the
/// signature.
fn guarded_forward(
    model: &mut dyn InferenceModel,
    spec: &ModelSpec,
    (inputs, rows): (Vec<NamedTensor>, usize),
    wanted: Option<&[String]>,
) -> Result<ModelOutput, ModelError> {
    let forward = || model.forward_wanted(inputs, rows, wanted);
    let output = catch_unwind(AssertUnwindSafe(forward)).unwrap_or_else(|payload| {
        Err(ModelError::Inference(format!(
            "forward pass panicked: {}",
            panic_message(&*payload)
        )))
    })?;
    check_outputs(spec, &output.tensors, rows)?;
    Ok(output)
}

/// Builds the model and runs one real forward pass (zeros, or a short text), within the load's
/// budget (`limits.load_timeout` from now, or until the loader cancels): the build checks it
/// between its steps, and it is checked once more after the warm-up.
fn build_and_warm(
    config: &ExecutorConfig,
) -> Result<(Box<dyn InferenceModel>, Loaded), ModelError> {
    let start = Instant::now();
    let budget = LoadBudget::new(config.limits, config.cancel.clone());
    let ctx = LoadContext::new(
        &config.spec,
        &config.dir,
        config.device,
        &config.jail,
        config.limits,
        &budget,
    );
    let mut model =
        catch_unwind(AssertUnwindSafe(|| load_version(&ctx))).unwrap_or_else(|payload| {
            Err(ModelError::Load(format!(
                "loading panicked: {}",
                panic_message(&*payload)
            )))
        })?;
    let warm_up = warm_up_inputs(&config.spec);
    // Two passes: the second, warm one seeds the cost estimate of admission. Each output is
    // checked against the signature.
    for pass in 0..2 {
        let started = Instant::now();
        guarded_forward(model.as_mut(), &config.spec, (warm_up.clone(), 1), None)
            .map_err(|e| ModelError::Load(format!("warm-up failed: {e}")))?;
        if pass == 1 {
            config.state.cost().record_pass(1, started.elapsed());
        }
    }
    // The configuration's own warm-up requests (Triton's `model_warmup`), each `count` times.
    for sample in &config.spec.warmup {
        for _ in 0..sample.count {
            budget.check()?;
            guarded_forward(
                model.as_mut(),
                &config.spec,
                (sample.inputs.clone(), sample.rows),
                None,
            )
            .map_err(|e| ModelError::Load(format!("model_warmup '{}' failed: {e}", sample.name)))?;
        }
    }
    budget.check()?;
    let weight_bytes = model.weight_bytes();
    Ok((
        model,
        Loaded {
            took: start.elapsed(),
            weight_bytes,
        },
    ))
}

/// The executor thread's body: build, report readiness on `ready`, then serve until the queue
/// closes or the model fails fatally, with `batching.instances` threads (this one and
/// `instances - 1` scoped ones) taking batches from the one queue, each with an instance of the
/// model sharing the first one's weights ([`InferenceModel::share`]; a model that cannot share
/// is loaded once more), each on a thread pool of its own when `batching.threads_per_instance`
/// gives it one ([`on_own_pool`]). A fatal error on any instance stops them all: the version
/// restarts whole.
pub fn run(
    config: ExecutorConfig,
    queue: Receiver<Job>,
    metrics: VersionMetrics,
    ready: ReadySender,
) -> ExecutorExit {
    let count = config.spec.batching.instances.resolve();
    // Until the models are built and handed over (or dropped): the supervisor starts no other
    // load of the version meanwhile.
    let building = config.state.building();
    let mut models = Vec::with_capacity(count);
    let loaded = match build_and_warm(&config) {
        Ok((model, loaded)) => {
            models.push(model);
            loaded
        }
        Err(err) => return load_failed(&config, ready, err),
    };
    while models.len() < count {
        let extra = match models[0].share() {
            Some(model) => model,
            None => match build_and_warm(&config) {
                Ok((model, _)) => model,
                Err(err) => return load_failed(&config, ready, err),
            },
        };
        models.push(extra);
    }
    if config.cancel.is_cancelled() {
        // The loader gave up (deadline): drop the models here rather than serve them.
        drop(models);
        return load_failed(&config, ready, config.limits.timeout_error());
    }
    drop(building);
    config.state.cost().set_instances(count);
    metrics.set_admission_margin(config.state.cost().margin());
    let _ = ready.send(Ok(loaded));
    let stop = AtomicBool::new(false);
    let threads = config.spec.batching.instance_pool_size();
    let wide = (count > 1 && threads.is_some())
        .then(|| wide_pool(&config.key))
        .flatten();
    let at_work = AtomicUsize::new(0);
    let spread = Spread {
        wide: wide.as_ref(),
        at_work: &at_work,
    };
    std::thread::scope(|scope| {
        let mut models = models.into_iter();
        let first = models.next();
        let others: Vec<_> = models
            .enumerate()
            .filter_map(|(i, model)| {
                let (config, metrics, stop, queue) = (&config, &metrics, &stop, queue.clone());
                let spread = &spread;
                let spawned = std::thread::Builder::new()
                    .name(format!("exec-{}-{}", config.key, i + 1))
                    .spawn_scoped(scope, move || {
                        on_own_pool(&config.key, i + 1, threads, || {
                            serve(config, &queue, metrics, model, stop, spread)
                        })
                    });
                if let Err(err) = &spawned {
                    tracing::error!(version = %config.key, error = %err,
                        "cannot spawn an executor instance; serving with fewer");
                    config
                        .state
                        .cost()
                        .set_instances(config.state.cost().instances() - 1);
                }
                spawned.ok()
            })
            .collect();
        let mut exit = match first {
            Some(model) => on_own_pool(&config.key, 0, threads, || {
                serve(&config, &queue, &metrics, model, &stop, &spread)
            }),
            None => ExecutorExit::QueueClosed,
        };
        for instance in others {
            let ended = instance.join().unwrap_or_else(|_| {
                ExecutorExit::Fatal(ModelError::Fatal("an executor instance panicked".into()))
            });
            if matches!(ended, ExecutorExit::Fatal(_)) && !matches!(exit, ExecutorExit::Fatal(_)) {
                exit = ended;
            }
        }
        exit
    })
}

/// Runs one instance's loop with its forward passes on a thread pool of its own of `threads`
/// threads (`batching.threads_per_instance`; the loop itself runs on one of them, this thread
/// waits), or here with the process's shared pool (`None`). Two instances each on one core of
/// two ran MiniLM's passes side by side with no fork-join wake-ups between the operations: 32
/// one-text clients were served 1.04–1.07× in-process batch 32 at 1.90–1.92 cores, where one
/// instance on both cores gave 0.88–0.94× at 1.77–1.78 (BENCHMARKS.md "Instances and threads
/// per instance").
fn on_own_pool<T: Send>(
    key: &VersionKey,
    instance: usize,
    threads: Option<usize>,
    work: impl FnOnce() -> T + Send,
) -> T {
    let Some(threads) = threads else {
        return work();
    };
    let name = format!("exec-{key}-{instance}");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}.{i}"))
        .build();
    match pool {
        Ok(pool) => pool.install(work),
        Err(err) => {
            tracing::error!(version = %key, error = %err,
                "cannot start an instance's thread pool; its passes use the shared pool");
            work()
        }
    }
}

/// Where an instance on a pool of its own runs a pass: there, or on the version's wide pool
/// (every core) when no other instance is at work and nothing waits in the queue. With
/// `instances = "auto"` on two cores, one client sending 32 texts in one request got one core
/// (563 sentences/s against 814 with one instance on both); alone, a pass now takes them all.
struct Spread<'a> {
    /// Every core the process may use; `None` for one instance or the shared pool.
    wide: Option<&'a rayon::ThreadPool>,
    /// Instances running a pass now.
    at_work: &'a AtomicUsize,
}

impl Spread<'_> {
    /// Runs `pass` on the wide pool when this instance is alone at work with an empty queue,
    /// on the current (own) pool otherwise.
    fn run<T: Send>(&self, queue: &Receiver<Job>, pass: impl FnOnce() -> T + Send) -> T {
        let Some(wide) = self.wide else {
            return pass();
        };
        let alone = self.at_work.fetch_add(1, Ordering::AcqRel) == 0 && queue.is_empty();
        let result = if alone { wide.install(pass) } else { pass() };
        self.at_work.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

/// A pool over every core the process may use, for passes of an instance alone at work.
fn wide_pool(key: &VersionKey) -> Option<rayon::ThreadPool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let name = format!("exec-{key}-all");
    rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .thread_name(move |i| format!("{name}.{i}"))
        .build()
        .map_err(|err| {
            tracing::error!(version = %key, error = %err,
                "cannot start the version's wide pool; every pass runs on its instance's own");
        })
        .ok()
}

fn load_failed(config: &ExecutorConfig, ready: ReadySender, err: ModelError) -> ExecutorExit {
    tracing::error!(version = %config.key, error = %err, "executor could not load its model");
    let _ = ready.send(Err(err.clone()));
    ExecutorExit::LoadFailed(err)
}

/// One instance's loop: gather a batch, run it, until the queue closes, this instance fails
/// fatally (it then sets `stop`), or another one did (`stop` set).
fn serve(
    config: &ExecutorConfig,
    queue: &Receiver<Job>,
    metrics: &VersionMetrics,
    mut model: Box<dyn InferenceModel>,
    stop: &AtomicBool,
    spread: &Spread,
) -> ExecutorExit {
    fine_timer_slack();
    let policy = config.policy();
    let spec = &*config.spec;
    let restart_after = config.spec.restart_after_failed_batches;
    let mut failed_in_a_row = 0u32;
    let mut gathering = Gathering::default();
    loop {
        let cost = config.state.cost();
        let Some(batch) = gather(queue, &policy, metrics, cost, stop, &mut gathering) else {
            return ExecutorExit::QueueClosed;
        };
        let backlogged_since = gathering.last_end.filter(|end| {
            batch
                .jobs()
                .first()
                .is_some_and(|job| job.enqueued_at <= *end)
        });
        let rows = batch.rows();
        let started = Instant::now();
        let outcome = spread.run(queue, || {
            execute(model.as_mut(), batch, spec, metrics, &config.state)
        });
        let ended = Instant::now();
        gathering
            .governor
            .record_forward(ended.duration_since(started));
        if let Some(previous) = backlogged_since {
            cost.record_interval(rows, ended.duration_since(previous));
        }
        metrics.set_admission_margin(cost.margin());
        gathering.last_end = Some(ended);
        let fatal = match outcome {
            Ok(BatchOutcome::Served) => {
                failed_in_a_row = 0;
                continue;
            }
            Ok(BatchOutcome::Failed) => {
                failed_in_a_row += 1;
                if restart_after == 0 || failed_in_a_row < restart_after {
                    continue;
                }
                ModelError::Fatal(format!(
                    "{failed_in_a_row} batches failed in a row (restart_after_failed_batches)"
                ))
            }
            Err(fatal) => fatal,
        };
        stop.store(true, Ordering::Relaxed);
        if let Some(held_back) = config.state.log_fatal() {
            tracing::error!(version = %config.key, error = %fatal, held_back,
                "executor stopping on a fatal model error");
        }
        return ExecutorExit::Fatal(fatal);
    }
}

/// How often an idle instance looks whether another one stopped the version.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Sleeps while gathering end within a microsecond of when they were asked to, not Linux's
/// default 50 µs later (a third of a small model's whole wait).
fn fine_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
}

/// Longest sleep while a batch gathers before the queue is looked at again (a batch that
/// filled meanwhile starts then).
const GATHER_SLICE: Duration = Duration::from_micros(250);

/// The next job, waiting for one; `None` when the queue is closed and empty, or `stop` is set.
fn next_job(queue: &Receiver<Job>, stop: &AtomicBool) -> Option<Job> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match queue.recv_timeout(STOP_CHECK) {
            Ok(job) => return Some(job),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// What one instance carries from one batch's gathering to the next.
#[derive(Default)]
struct Gathering {
    governor: DelayGovernor,
    /// Taken from the queue but too large for the last batch: it opens the next one.
    carried: Option<Job>,
    /// When this instance's last pass ended: a pass whose first job was queued by then ran
    /// from a backlog, and the time between the two ends is the pace the backlog drains at.
    last_end: Option<Instant>,
}

/// Blocks for the next batch: waits for a live job, then gathers until the batch is full or
/// the governor's delay (`max_delay`, or none while batches find no company) has passed since
/// the first job's arrival or the last pass's end (`batching::gather_until`). `None` when the
/// queue is closed and empty.
fn gather(
    queue: &Receiver<Job>,
    policy: &BatchPolicy,
    metrics: &VersionMetrics,
    cost: &CostModel,
    stop: &AtomicBool,
    gathering: &mut Gathering,
) -> Option<Batch> {
    let Gathering {
        governor,
        carried,
        last_end,
    } = gathering;
    let mut batch = Batch::new(policy.batch_rows());
    // A job joins only if it can still finish: its remaining time covers the expected pass
    // (with margin) of the batch it would make.
    let pass_for = |rows: usize| {
        cost.pass_for(rows)
            .map_or(Duration::ZERO, |pass| cost.with_margin(pass))
    };
    let too_late = |job: &Job, now: Instant, pass: Duration| {
        !job.probe && job.deadline.saturating_duration_since(now) < pass
    };
    let expire = |job: Job, now: Instant, pass: Duration| {
        cost.sub_pending(1, job.rows);
        // It would have answered a pass from now at the earliest.
        if let Some(estimate) = job.estimate {
            cost.record_outcome(estimate, (now + pass).duration_since(job.enqueued_at));
        }
        metrics.timed_out();
        let waited = job.deadline.saturating_duration_since(job.enqueued_at);
        job.reply.send(Err(InferError::Timeout(waited)));
    };
    let admit = |batch: &mut Batch, job: Job| {
        let now = Instant::now();
        let pass = pass_for(batch.rows() + job.rows);
        let triage = match triage(&job, now) {
            Triage::Run if too_late(&job, now, pass) => Triage::Expired,
            other => other,
        };
        match triage {
            Triage::Run => batch.push(job),
            Triage::Expired => expire(job, now, pass),
            Triage::Abandoned => cost.sub_pending(1, job.rows),
        }
    };
    // Gathers until the batch holds a job that can still finish when its pass starts.
    'batch: loop {
        if let Some(job) = carried.take() {
            admit(&mut batch, job);
        }
        while batch.is_empty() {
            admit(&mut batch, next_job(queue, stop)?);
        }
        let mut until = gather_until(
            batch.jobs()[0].enqueued_at,
            *last_end,
            governor.delay(policy),
        );
        let mut slept = false;
        'gathering: while !batch.is_full() {
            // Never wait for company past the point where the earliest deadline in the batch
            // leaves just the pass.
            if let Some(deadline) = batch.jobs().iter().map(|j| j.deadline).min() {
                let pass = pass_for(batch.rows());
                until = until.min(deadline.checked_sub(pass).unwrap_or(deadline));
            }
            // What is queued joins at once.
            let mut arrived = false;
            while !batch.is_full() {
                match queue.try_recv() {
                    Ok(job) if batch.fits(&job) => {
                        arrived = true;
                        admit(&mut batch, job);
                    }
                    Ok(job) => {
                        *carried = Some(job);
                        break 'gathering;
                    }
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            // A preferred size with nothing more queued goes now (Triton's dynamic batcher).
            let preferred = policy.preferred.contains(&batch.rows());
            if batch.is_full() || preferred || now >= until {
                break;
            }
            // A whole slice asleep and nobody came: the requests that were coming have come
            // (8 closed-loop clients never fill a batch of 64, and each waited out the whole
            // delay: the CNN served 0.6x of its unbatched rate at 8 clients, p50 1.4 ms).
            if slept && !arrived && batch.len() > 1 {
                break;
            }
            // Then sleep for company rather than block on the queue: a blocked receiver is woken
            // (and, on a shared core, switched to) by every job sent, and spins and yields before
            // it blocks again; asleep, the requests' threads run undisturbed and the executor looks
            // again after a slice.
            std::thread::sleep(until.duration_since(now).min(GATHER_SLICE));
            slept = true;
        }
        // Jobs that joined later made the pass longer, and a sleep can end late on a busy
        // machine (the executor waits for a core): a job whose time no longer covers the pass
        // is left out now rather than computed and late.
        let (now, pass) = (Instant::now(), pass_for(batch.rows()));
        if batch.jobs().iter().any(|job| too_late(job, now, pass)) {
            for job in batch.remove_where(|job| too_late(job, now, pass)) {
                expire(job, now, pass);
            }
        }
        if batch.is_empty() {
            continue 'batch;
        }
        governor.record(batch.len());
        metrics.set_queue_depth(queue.len());
        return Some(batch);
    }
}

/// How a batch went, for the count of failed batches in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchOutcome {
    /// Some job got an output, or none failed (expired or abandoned ones do not count).
    Served,
    /// Every job that ran failed, in the batch and again on its own.
    Failed,
}

/// Answers one job with its rows of a forward pass.
fn answer(
    answers: &mut Answers,
    job: Job,
    outputs: Vec<NamedTensor>,
    tokens: usize,
    run: &RunInfo,
) {
    answers.push(
        job.reply,
        Ok(JobOutput {
            outputs,
            rows: job.rows,
            queue_time: run.started.saturating_duration_since(job.enqueued_at),
            inference_time: run.inference_time,
            batch_size: run.batch_size,
            tokens,
        }),
    );
}

fn fail(job: Job, err: &ModelError) {
    job.reply.send(Err(InferError::Inference(err.to_string())));
}

/// One job's rows of every output of a forward pass, and the tokens they were encoded to.
type JobRows = (Vec<NamedTensor>, usize);

/// When and how long a forward pass ran, and for how many jobs.
struct RunInfo {
    started: Instant,
    inference_time: Duration,
    batch_size: usize,
}

/// Runs one forward pass over `input` (`rows` rows) with the metrics and in-flight count of a
/// batch of `jobs` jobs; the output split per job, with each job's tokens.
fn forward_rows(
    model: &mut dyn InferenceModel,
    inputs: Result<Vec<NamedTensor>, ModelError>,
    (rows_per_job, wanted): (&[usize], Option<Vec<String>>),
    enqueued: impl Iterator<Item = Instant>,
    spec: &ModelSpec,
    metrics: &VersionMetrics,
    state: &VersionState,
) -> (Result<Vec<JobRows>, ModelError>, RunInfo) {
    let started = Instant::now();
    let size = rows_per_job.len();
    let rows = rows_per_job.iter().sum();
    let queue_times: Vec<Duration> = enqueued
        .map(|at| started.saturating_duration_since(at))
        .collect();
    metrics.batch_started(size, queue_times.iter().copied());
    state.add_inflight(size);
    let result =
        inputs.and_then(|inputs| guarded_forward(model, spec, (inputs, rows), wanted.as_deref()));
    state.sub_inflight(size);
    let inference_time = started.elapsed();
    metrics.batch_finished(size);
    let outputs = result.and_then(|output| {
        let tokens = tokens_per_job(&output.tokens, rows_per_job);
        split_outputs(output.tensors, rows_per_job, spec.batching.is_batched())
            .map(|parts| parts.into_iter().zip(tokens).collect::<Vec<_>>())
    });
    state.cost().record_pass(rows, inference_time);
    state
        .stats()
        .record_pass(rows, &queue_times, inference_time);
    let run = RunInfo {
        started,
        inference_time,
        batch_size: size,
    };
    (outputs, run)
}

/// Runs one batch and answers each job. When the batch fails (a panic or a model error), each
/// of its jobs runs again on its own, once, so only a poisoned input fails. `Err` only for a
/// fatal model error.
fn execute(
    model: &mut dyn InferenceModel,
    mut batch: Batch,
    spec: &ModelSpec,
    metrics: &VersionMetrics,
    state: &VersionState,
) -> Result<BatchOutcome, ModelError> {
    let input = batch.joined_inputs();
    let rows_per_job: Vec<usize> = batch.jobs().iter().map(|j| j.rows).collect();
    let enqueued: Vec<Instant> = batch.jobs().iter().map(|j| j.enqueued_at).collect();
    let wanted = batch.wanted_outputs();
    let (outputs, run) = forward_rows(
        model,
        input,
        (&rows_per_job, wanted),
        enqueued.into_iter(),
        spec,
        metrics,
        state,
    );
    // Computed (or failed, to run again alone now): no longer work ahead of new requests.
    state
        .cost()
        .sub_pending(rows_per_job.len(), rows_per_job.iter().sum());
    let jobs = batch.into_jobs();
    match outputs {
        Ok(outputs) => {
            let computed = run.started + run.inference_time;
            let mut answers = Answers::default();
            for (job, (output, tokens)) in jobs.into_iter().zip(outputs) {
                if let Some(estimate) = job.estimate {
                    let took = computed.saturating_duration_since(job.enqueued_at);
                    state.cost().record_outcome(estimate, took);
                }
                answer(&mut answers, job, output, tokens, &run);
            }
            answers.deliver();
            Ok(BatchOutcome::Served)
        }
        Err(err @ ModelError::Fatal(_)) => {
            jobs.into_iter().for_each(|job| fail(job, &err));
            Err(err)
        }
        Err(_) if jobs.len() > 1 => retry_alone(model, jobs, spec, metrics, state),
        Err(err) => {
            jobs.into_iter().for_each(|job| fail(job, &err));
            Ok(BatchOutcome::Failed)
        }
    }
}

/// After a failed batch: each job runs again on its own, once (expired and abandoned ones are
/// skipped as when gathering).
fn retry_alone(
    model: &mut dyn InferenceModel,
    jobs: Vec<Job>,
    spec: &ModelSpec,
    metrics: &VersionMetrics,
    state: &VersionState,
) -> Result<BatchOutcome, ModelError> {
    let (mut served, mut failed) = (0usize, 0usize);
    let mut jobs = jobs.into_iter();
    while let Some(mut job) = jobs.next() {
        match triage(&job, Instant::now()) {
            Triage::Run => {}
            Triage::Expired => {
                metrics.timed_out();
                let waited = job.deadline.saturating_duration_since(job.enqueued_at);
                job.reply.send(Err(InferError::Timeout(waited)));
                continue;
            }
            Triage::Abandoned => continue,
        }
        let input = Ok(std::mem::take(&mut job.inputs));
        let wanted = (!job.outputs.is_empty()).then(|| job.outputs.clone());
        let (outputs, run) = forward_rows(
            model,
            input,
            (&[job.rows], wanted),
            std::iter::once(job.enqueued_at),
            spec,
            metrics,
            state,
        );
        match outputs.map(|mut parts| parts.pop()) {
            Ok(Some((output, tokens))) => {
                served += 1;
                let mut answers = Answers::default();
                answer(&mut answers, job, output, tokens, &run);
                answers.deliver();
            }
            Ok(None) => {
                failed += 1;
                fail(
                    job,
                    &ModelError::Inference("the model returned no rows".into()),
                );
            }
            Err(err @ ModelError::Fatal(_)) => {
                fail(job, &err);
                jobs.for_each(|job| fail(job, &err));
                return Err(err);
            }
            Err(err) => {
                failed += 1;
                fail(job, &err);
            }
        }
    }
    Ok(if served == 0 && failed > 0 {
        BatchOutcome::Failed
    } else {
        BatchOutcome::Served
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::reply::JobReply;
    use burnserve_models::TensorData;

    fn job() -> (Job, oneshot::Receiver<crate::reply::Answer>) {
        let (reply, answer) = JobReply::direct();
        let now = Instant::now();
        let job = Job {
            outputs: Vec::new(),
            inputs: vec![NamedTensor::new(
                "x",
                vec![1, 1],
                TensorData::F32(vec![0.0]),
            )],
            rows: 1,
            deadline: now + Duration::from_secs(60),
            enqueued_at: now,
            reply,
            probe: false,
            estimate: None,
        };
        (job, answer)
    }

    /// Gathers one batch from `queued` jobs under a fixed (not adaptive) `max_delay`: the
    /// batch's size and how long gathering took.
    fn gather_from(queued: usize, max_delay: Duration) -> (usize, Duration) {
        let metrics = Metrics::register(&prometheus::Registry::new(), true)
            .expect("metrics")
            .version(&VersionKey::new("m", "1"), "cpu");
        let (sender, queue) = crossbeam_channel::bounded(64);
        let mut answers = Vec::new();
        for _ in 0..queued {
            let (job, answer) = job();
            sender.send(job).expect("queued");
            answers.push(answer);
        }
        let policy = BatchPolicy {
            max_rows: 64,
            preferred: Vec::new(),
            max_delay,
            adaptive: false,
        };
        let started = Instant::now();
        let batch = gather(
            &queue,
            &policy,
            &metrics,
            &CostModel::default(),
            &AtomicBool::new(false),
            &mut Gathering::default(),
        )
        .expect("a batch");
        (batch.len(), started.elapsed())
    }

    #[test]
    fn a_batch_whose_company_stopped_coming_runs_after_one_idle_slice() {
        // Two jobs and nobody else: not the whole second of delay, one slice asleep.
        let (jobs, took) = gather_from(2, Duration::from_secs(1));
        assert_eq!(jobs, 2);
        assert!(took < Duration::from_millis(500), "gathered for {took:?}");
    }

    #[test]
    fn a_lone_job_waits_out_its_delay() {
        // Alone, there is no company to have stopped coming: the delay is the configured one.
        let (jobs, took) = gather_from(1, Duration::from_millis(20));
        assert_eq!(jobs, 1);
        assert!(took >= Duration::from_millis(20), "gathered for {took:?}");
    }
}
