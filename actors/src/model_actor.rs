//! `ModelActor`: one per loaded version, run under an actix `Supervisor`. It owns the version's
//! bounded job queue (kept across restarts, so queued jobs survive one) and its executor thread;
//! when the executor dies the actor stops, the supervisor restarts it, and a new executor is
//! built after a backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use burnserve_models::ModelError;
use crossbeam_channel::{bounded, Receiver, Sender};
use tokio::sync::oneshot;

use crate::executor::{self, ExecutorConfig, ExecutorExit, Loaded, ReadySender};
use crate::messages::Job;
use crate::metrics::VersionMetrics;

/// State of a version shared with the router (read on the request path, lock-free).
#[derive(Debug, Default)]
pub struct VersionState {
    ready: AtomicBool,
    restarts: AtomicU64,
    weight_bytes: AtomicUsize,
}

impl VersionState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes.load(Ordering::Relaxed)
    }
}

/// Backoff before rebuilding the executor after the n-th restart: 50 ms doubling, at most 5 s.
pub fn restart_backoff(restarts: u64) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(50u64.saturating_mul(1 << (restarts - 1).min(7)))
        .min(Duration::from_secs(5))
}

pub struct ModelActor {
    config: ExecutorConfig,
    queue_tx: Sender<Job>,
    queue_rx: Receiver<Job>,
    metrics: VersionMetrics,
    state: Arc<VersionState>,
    /// Answered once, by the first executor's load.
    first_ready: Option<ReadySender>,
    ever_ready: bool,
}

/// What the loader gets back from [`ModelActor::start`].
pub struct StartedVersion {
    pub addr: Addr<ModelActor>,
    pub queue: Sender<Job>,
    pub state: Arc<VersionState>,
    pub ready: oneshot::Receiver<Result<Loaded, ModelError>>,
}

impl ModelActor {
    /// Starts the actor under its own supervisor on the current arbiter.
    pub fn start(config: ExecutorConfig, metrics: VersionMetrics) -> StartedVersion {
        let (queue_tx, queue_rx) = bounded(config.spec.batching.queue_capacity);
        let (ready_tx, ready_rx) = oneshot::channel();
        let state = Arc::new(VersionState::default());
        let actor = ModelActor {
            config,
            queue_tx: queue_tx.clone(),
            queue_rx,
            metrics,
            state: state.clone(),
            first_ready: Some(ready_tx),
            ever_ready: false,
        };
        let addr = Supervisor::start(move |_| actor);
        StartedVersion {
            addr,
            queue: queue_tx,
            state,
            ready: ready_rx,
        }
    }

    fn spawn_executor(&mut self, ctx: &mut Context<Self>) {
        let addr = ctx.address();
        let config = self.config.clone();
        let queue = self.queue_rx.clone();
        let metrics = self.metrics.clone();
        let (ready_tx, ready_rx) = oneshot::channel();
        let name = format!("exec-{}-{}", config.key.model, config.key.version);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let exit = executor::run(config, queue, metrics, ready_tx);
            addr.do_send(ExecutorExited(exit));
        });
        if let Err(err) = spawned {
            tracing::error!(version = %self.config.key, error = %err, "cannot spawn executor thread");
            ctx.stop();
            return;
        }
        ctx.spawn(fut::wrap_future(ready_rx).map(|result, actor: &mut Self, _ctx| {
            let result = result.unwrap_or_else(|_| Err(ModelError::Load("executor ended before loading".into())));
            if let Ok(loaded) = &result {
                actor.ever_ready = true;
                actor.state.weight_bytes.store(loaded.weight_bytes, Ordering::Relaxed);
                actor.state.ready.store(true, Ordering::Release);
                actor.metrics.loaded.set(1);
                tracing::info!(version = %actor.config.key, took_ms = loaded.took.as_millis() as u64, "version ready");
            }
            if let Some(first) = actor.first_ready.take() {
                let _ = first.send(result);
            }
        }));
    }

    /// The sender side of the queue, for the router.
    pub fn queue(&self) -> Sender<Job> {
        self.queue_tx.clone()
    }
}

impl Actor for ModelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let delay = restart_backoff(self.state.restarts());
        if delay.is_zero() {
            self.spawn_executor(ctx);
        } else {
            ctx.run_later(delay, |actor, ctx| actor.spawn_executor(ctx));
        }
    }
}

impl Supervised for ModelActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.state.restarts.fetch_add(1, Ordering::Relaxed);
        self.metrics.restarts.inc();
        tracing::warn!(version = %self.config.key, restarts = self.state.restarts(), "restarting version");
    }
}

/// Sent by the executor thread as it ends.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExecutorExited(pub ExecutorExit);

impl Handler<ExecutorExited> for ModelActor {
    type Result = ();

    fn handle(&mut self, msg: ExecutorExited, ctx: &mut Self::Context) {
        self.state.ready.store(false, Ordering::Release);
        self.metrics.loaded.set(0);
        match msg.0 {
            ExecutorExit::QueueClosed => ctx.stop(),
            // A version that never loaded is not restarted: its loader reports the error and
            // drops the address, which ends the actor.
            ExecutorExit::LoadFailed(_) if !self.ever_ready => {}
            ExecutorExit::LoadFailed(_) | ExecutorExit::Fatal(_) => ctx.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(restart_backoff(0), Duration::ZERO);
        assert_eq!(restart_backoff(1), Duration::from_millis(50));
        assert_eq!(restart_backoff(3), Duration::from_millis(200));
        assert_eq!(restart_backoff(60), Duration::from_secs(5));
    }
}
