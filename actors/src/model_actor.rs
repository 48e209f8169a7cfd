//! `ModelActor`: one per loaded version, run under an actix `Supervisor`. It owns the version's
//! bounded job queue (kept across restarts, so queued jobs survive one) and its executor thread;
//! when the executor dies the actor stops, the supervisor restarts it, and a new executor is
//! built after a backoff. `Drain` retires a version: no new jobs, every accepted one answered,
//! then the executor ends and the weights are freed. What the executor reports becomes a
//! lifecycle event of the instance's `VersionState` (Loaded, LoadFailed, ExecutorDied, Drained).

use std::time::Duration;

use actix::prelude::*;
use burnserve_models::ModelError;
use crossbeam_channel::{bounded, Receiver, Sender};
use tokio::sync::oneshot;

use crate::executor::{self, ExecutorConfig, ExecutorExit, Loaded, ReadySender};
use crate::lifecycle::{LifecycleEvent, VersionPhase, VersionState};
use crate::messages::Job;
use crate::metrics::VersionMetrics;

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
    /// Dropped by `Drain`: once the router's sender is gone too, the executor sees the queue
    /// close after its last job.
    queue_tx: Option<Sender<Job>>,
    queue_rx: Receiver<Job>,
    metrics: VersionMetrics,
    /// The loader's reply: answered once, by the first executor's load.
    loader_reply: Option<ReadySender>,
    /// Told when a drain completes.
    drained: Vec<oneshot::Sender<()>>,
}

/// What the loader gets back from [`ModelActor::start`].
pub struct StartedVersion {
    pub addr: Addr<ModelActor>,
    pub queue: Sender<Job>,
    pub ready: oneshot::Receiver<Result<Loaded, ModelError>>,
}

impl ModelActor {
    /// Starts the actor under its own supervisor on the current arbiter.
    pub fn start(config: ExecutorConfig, metrics: VersionMetrics) -> StartedVersion {
        let (queue_tx, queue_rx) = bounded(config.spec.batching.queue_capacity);
        let (ready_tx, ready_rx) = oneshot::channel();
        let actor = ModelActor {
            config,
            queue_tx: Some(queue_tx.clone()),
            queue_rx,
            metrics,
            loader_reply: Some(ready_tx),
            drained: Vec::new(),
        };
        let addr = Supervisor::start(move |_| actor);
        StartedVersion {
            addr,
            queue: queue_tx,
            ready: ready_rx,
        }
    }

    fn state(&self) -> &VersionState {
        &self.config.state
    }

    fn spawn_executor(&mut self, ctx: &mut Context<Self>) {
        let config = self.config.clone();
        let queue = self.queue_rx.clone();
        let metrics = self.metrics.clone();
        let (ready_tx, ready_rx) = oneshot::channel();
        // The thread reports its end on a channel, not through an `Addr`: holding none, it
        // never keeps a drained actor alive for its supervisor to restart.
        let (exit_tx, exit_rx) = oneshot::channel();
        let name = format!("exec-{}-{}", config.key.model, config.key.version);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let _ = exit_tx.send(executor::run(config, queue, metrics, ready_tx));
        });
        if let Err(err) = spawned {
            tracing::error!(version = %self.config.key, error = %err, "cannot spawn executor thread");
            ctx.stop();
            return;
        }
        ctx.spawn(fut::wrap_future(ready_rx).map(|result, actor: &mut Self, _ctx| {
            let result = result.unwrap_or_else(|_| Err(ModelError::Load("executor ended before loading".into())));
            match &result {
                Ok(loaded) => {
                    actor.state().set_loaded(loaded.weight_bytes, loaded.took);
                    // A first load is made `Ready` by its loader once it is routed.
                    if actor.loader_reply.is_none() {
                        let _ = actor.state().apply(LifecycleEvent::Loaded);
                    }
                    tracing::info!(version = %actor.config.key, took_ms = loaded.took.as_millis() as u64, "version built");
                }
                Err(err) if actor.loader_reply.is_none() => {
                    let _ = actor.state().apply(LifecycleEvent::LoadFailed(err.to_string()));
                }
                Err(_) => {}
            }
            if let Some(loader) = actor.loader_reply.take() {
                let _ = loader.send(result);
            }
        }));
        ctx.spawn(
            fut::wrap_future(exit_rx).map(|exit, actor: &mut Self, ctx| {
                let exit = exit.unwrap_or_else(|_| {
                    ExecutorExit::Fatal(ModelError::Fatal("executor thread panicked".into()))
                });
                actor.executor_exited(exit, ctx);
            }),
        );
    }

    fn executor_exited(&mut self, exit: ExecutorExit, ctx: &mut Context<Self>) {
        match exit {
            ExecutorExit::QueueClosed => {
                let _ = self.state().apply(LifecycleEvent::Drained);
                tracing::info!(version = %self.config.key, "version drained and stopped");
                for waiter in self.drained.drain(..) {
                    let _ = waiter.send(());
                }
                ctx.stop();
            }
            // A version whose first load failed is not restarted: its loader reports the error
            // (phase `Failed`) and drops the address, which ends the actor.
            ExecutorExit::LoadFailed(_)
                if matches!(
                    self.state().phase(),
                    VersionPhase::Loading | VersionPhase::Failed
                ) => {}
            ExecutorExit::LoadFailed(_) => ctx.stop(),
            ExecutorExit::Fatal(_) => {
                let _ = self.state().apply(LifecycleEvent::ExecutorDied);
                ctx.stop();
            }
        }
    }
}

impl Actor for ModelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A draining version restarted by its supervisor still serves its accepted jobs.
        let delay = restart_backoff(self.state().restarts());
        if delay.is_zero() {
            self.spawn_executor(ctx);
        } else {
            ctx.run_later(delay, |actor, ctx| actor.spawn_executor(ctx));
        }
    }
}

impl Supervised for ModelActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.state().count_restart();
        self.metrics.restarts.inc();
        if let Some(held_back) = self.state().log_restart() {
            tracing::warn!(version = %self.config.key, restarts = self.state().restarts(), held_back,
                "restarting version");
        }
    }
}

/// Retire the version: stop taking jobs, answer every accepted one, then end the executor
/// (freeing the weights). Resolves once that happened. The router must have dropped its
/// sender first (see `router::RemoveVersion`), and the supervisor applied `Replaced` or
/// `Unloaded` (the instance is `Draining`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for ModelActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Drain, _ctx: &mut Self::Context) -> Self::Result {
        self.queue_tx = None;
        let (done, wait) = oneshot::channel();
        self.drained.push(done);
        Box::pin(async move {
            let _ = wait.await;
        })
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
