//! `SupervisorGuardian`: the model supervisor's own supervisor. actix restarts actors that stop,
//! not actors whose handler panicked: a panic ends the actor's task and closes its mailbox. The
//! guardian holds the supervisor's address and what a new one needs (the shared [`Instances`],
//! the repository, the router, the metrics); when the supervisor has died, the next call through
//! it, or its watchdog's tick (every second), starts a new one on the runtime's arbiter with the
//! same instances, counts `supervisor_restarts_total` and logs it. Loads and unloads run as
//! futures apart from the actor, so those in flight finish; only a call still in the dead
//! actor's mailbox (or the one whose handler panicked) answers `ControlError::Interrupted`
//! (503, retry).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};

use crate::error::ControlError;
use crate::metrics::Metrics;
use crate::router::ModelRouter;
use crate::supervisor::{Instances, ModelSupervisor};

/// How often the watchdog looks at the supervisor.
const WATCHDOG_TICK: Duration = Duration::from_secs(1);

/// What a new supervisor is made of.
struct Seed {
    repository: PathBuf,
    router: Addr<ModelRouter>,
    metrics: Metrics,
    instances: Instances,
    arbiter: ArbiterHandle,
}

impl Seed {
    fn start(&self) -> Addr<ModelSupervisor> {
        let (repository, router, metrics, instances) = (
            self.repository.clone(),
            self.router.clone(),
            self.metrics.clone(),
            self.instances.clone(),
        );
        ModelSupervisor::start_in_arbiter(&self.arbiter, move |_| {
            ModelSupervisor::new(repository, router, metrics, instances)
        })
    }
}

#[derive(Clone)]
pub struct SupervisorGuardian {
    seed: Arc<Seed>,
    current: Arc<Mutex<Addr<ModelSupervisor>>>,
}

impl SupervisorGuardian {
    /// Starts the supervisor on the current arbiter, and the watchdog beside it.
    pub fn start(repository: PathBuf, router: Addr<ModelRouter>, metrics: Metrics) -> Self {
        let seed = Seed {
            repository,
            router,
            metrics,
            instances: Instances::default(),
            arbiter: actix::Arbiter::current(),
        };
        let guardian = Self {
            current: Arc::new(Mutex::new(seed.start())),
            seed: Arc::new(seed),
        };
        let watched = guardian.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(WATCHDOG_TICK);
            loop {
                tick.tick().await;
                watched.addr();
            }
        });
        guardian
    }

    /// The live supervisor, restarted first when it died.
    pub fn addr(&self) -> Addr<ModelSupervisor> {
        // The guarded value is an address, replaced whole: a poisoned lock still holds one.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !current.connected() {
            *current = self.seed.start();
            self.seed.metrics.record_supervisor_restart();
            tracing::error!(
                instances = self.seed.instances.lock().len(),
                "the model supervisor died (a panic in one of its handlers); restarted it with \
                 the instances it held. This is a bug."
            );
        }
        current.clone()
    }

    /// Whether a supervisor is running (after restarting a dead one): false only once the
    /// runtime's arbiter is gone.
    pub fn is_alive(&self) -> bool {
        self.addr().connected()
    }

    /// Sends `msg` to the live supervisor; a supervisor that dies holding it answers
    /// `Interrupted`.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, ControlError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        ModelSupervisor: Handler<M>,
        <ModelSupervisor as Actor>::Context: ToEnvelope<ModelSupervisor, M>,
    {
        match self.addr().send(msg).await {
            Ok(answer) => Ok(answer),
            Err(MailboxError::Closed) if self.is_alive() => Err(ControlError::Interrupted(
                "the model supervisor died during this operation and was restarted; retry it"
                    .into(),
            )),
            Err(err) => Err(err.into()),
        }
    }

    #[cfg(test)]
    pub(crate) fn instances(&self) -> Instances {
        self.seed.instances.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use burnserve_models::RequestInput;
    use prometheus::Registry;

    use super::*;
    use crate::control::LoadOptions;
    use crate::router::StopForTest;
    use crate::runtime::Runtime;
    use crate::service::InferRequest;
    use crate::supervisor::PanicForTest;

    fn write_fake(root: &Path, model: &str, params: &str) {
        let dir = root.join(model).join("1");
        std::fs::create_dir_all(&dir).expect("version dir");
        std::fs::write(
            dir.join("model.toml"),
            format!(
                "architecture = \"fake-echo\"\nparams = {{ {params} }}\n[input]\nname = \"x\"\n\
                 shape = [2]\n[output]\nname = \"y\"\nshape = [2]\n"
            ),
        )
        .expect("model.toml");
    }

    async fn echo(runtime: &Runtime, model: &str) -> Vec<f32> {
        let request = InferRequest::new(model, None, RequestInput::new(vec![2], vec![3.0, 4.0]));
        let answer = runtime.service.infer(request).await.expect("served");
        answer.output.values().expect("FP32").to_vec()
    }

    async fn until_dead(addr: &Addr<ModelSupervisor>) {
        for _ in 0..200 {
            if !addr.connected() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the supervisor did not die");
    }

    #[actix::test]
    async fn a_supervisor_that_panics_is_restarted_with_the_instances_it_held() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_fake(dir.path(), "a", "");
        write_fake(dir.path(), "b", "");
        write_fake(dir.path(), "slow", "load_delay_ms = 400");
        let registry = Registry::new();
        let metrics = Metrics::register(&registry, true).expect("metrics");
        let runtime = Runtime::start(dir.path().to_path_buf(), metrics);
        let control = &runtime.control;
        control
            .load("a", "1", LoadOptions::default())
            .await
            .expect("a loads");
        let (_, guardian) = control.parts();

        // A panic while a load is in flight: the load goes on and answers, the supervisor is
        // back with every instance, and a message the dead one held answers Interrupted.
        let first = guardian.addr();
        let slow_load = {
            let control = control.clone();
            actix::spawn(async move { control.load("slow", "1", LoadOptions::default()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held = first.send(PanicForTest);
        until_dead(&first).await;
        assert!(held.await.is_err(), "the panicking handler never answered");
        let interrupted = guardian.send(PanicForTest).await;
        assert!(
            matches!(&interrupted, Err(ControlError::Interrupted(_))),
            "{interrupted:?}"
        );
        assert_eq!(
            interrupted.unwrap_err().error_type(),
            burnserve_models::ErrorType::NotReady
        );
        slow_load
            .await
            .expect("task")
            .expect("the load in flight finished");
        assert!(control.is_alive());
        let listing = control
            .list()
            .await
            .expect("the restarted supervisor answers");
        let mut routed: Vec<_> = listing.routed.iter().map(|v| v.model.clone()).collect();
        routed.sort();
        assert_eq!(routed, ["a", "slow"]);
        assert_eq!(guardian.instances().lock().len(), 2);
        assert_eq!(echo(&runtime, "slow").await, vec![3.0, 4.0]);

        // Everything works on the new supervisor: serve, load, load again what was interrupted,
        // unload what the old one loaded.
        assert_eq!(echo(&runtime, "a").await, vec![3.0, 4.0]);
        control
            .load("b", "1", LoadOptions::default())
            .await
            .expect("b loads after the restart");
        control
            .reload("slow", "1")
            .await
            .expect("a version loaded across the restart reloads");
        assert_eq!(echo(&runtime, "slow").await, vec![3.0, 4.0]);
        control.unload("a", "1").await.expect("a unloads");
        let listing = control.list().await.expect("listing");
        let mut routed: Vec<_> = listing.routed.iter().map(|v| v.model.clone()).collect();
        routed.sort();
        assert_eq!(routed, ["b", "slow"]);
        assert!(listing.pending.is_empty(), "{:?}", listing.pending);

        // A second death is restarted by the watchdog, with no call to wake it.
        let second = guardian.addr();
        second.do_send(PanicForTest);
        until_dead(&second).await;
        tokio::time::sleep(WATCHDOG_TICK + Duration::from_millis(300)).await;
        let restarts = registry
            .gather()
            .into_iter()
            .find(|family| family.name() == "supervisor_restarts_total")
            .map(|family| family.get_metric()[0].get_counter().get_value());
        assert_eq!(restarts, Some(3.0), "three deaths, three restarts");
        assert!(control.is_alive());
        assert_eq!(echo(&runtime, "b").await, vec![3.0, 4.0]);
    }

    #[actix::test]
    async fn the_control_plane_is_not_alive_once_the_router_is_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let registry = Registry::new();
        let metrics = Metrics::register(&registry, true).expect("metrics");
        let runtime = Runtime::start(dir.path().to_path_buf(), metrics);
        assert!(runtime.control.is_alive());
        let (router, _) = runtime.control.parts();
        router.do_send(StopForTest);
        for _ in 0..200 {
            if !runtime.control.is_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!runtime.control.is_alive());
        assert!(runtime.service.readiness().await.is_err());
    }
}
