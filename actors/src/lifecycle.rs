//! The lifecycle of one version instance: `VersionPhase`, the one transition function
//! ([`VersionPhase::next`]) and `VersionState`, the one place an instance's phase is held. Every
//! change of phase goes through [`VersionState::apply`], which also sets the `model_loaded`
//! gauge; the router, readiness and `/admin/models` read the phase from here
//! (ARCHITECTURE.md, "Lifecycle").
//!
//! ```text
//!            Loaded                 ExecutorDied
//! Loading ──────────► Ready ◄──────────────────► Restarting
//!    │                  │        Loaded             │
//!    │ LoadFailed       │ Replaced | Unloaded       │ Replaced | Unloaded
//!    ▼                  ▼                           │
//!  Failed            Draining ◄─────────────────────┘
//!    │ Unloaded         │ Drained      (Loading ─Unloaded─► Draining: unload during a load)
//!    ▼                  ▼
//! Stopped ◄──────── Stopped
//! ```
//! A restart during a drain keeps the instance `Draining`: its accepted jobs are still answered.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burnserve_models::Device;
use prometheus::IntGauge;

use crate::cost::CostModel;
use crate::log_throttle::LogThrottle;
use crate::messages::VersionKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionPhase {
    /// Building and warming up; not routed yet.
    Loading,
    /// Routed and serving.
    Ready,
    /// Its executor died; the supervisor is rebuilding it (requests get `not_ready`).
    Restarting,
    /// Replaced or unloaded: takes no new request, answers the accepted ones.
    Draining,
    /// Its executor ended and its weights are freed.
    Stopped,
    /// Its first load failed; kept (with the error) until unloaded or loaded again.
    Failed,
}

impl VersionPhase {
    pub const ALL: [VersionPhase; 6] = [
        VersionPhase::Loading,
        VersionPhase::Ready,
        VersionPhase::Restarting,
        VersionPhase::Draining,
        VersionPhase::Stopped,
        VersionPhase::Failed,
    ];

    /// The one transition function: the phase after `event`, or `None` when `event` cannot
    /// happen in this phase.
    pub fn next(self, event: &LifecycleEvent) -> Option<VersionPhase> {
        use LifecycleEvent as E;
        use VersionPhase as P;
        Some(match (self, event) {
            (P::Loading | P::Restarting, E::Loaded) => P::Ready,
            (P::Loading, E::LoadFailed(_)) => P::Failed,
            // A rebuild that fails is retried after a backoff.
            (P::Restarting, E::LoadFailed(_) | E::ExecutorDied) => P::Restarting,
            (P::Ready, E::ExecutorDied) => P::Restarting,
            (P::Ready | P::Restarting, E::Replaced | E::Unloaded) => P::Draining,
            // An unload during a load: the loader retires the instance once it is built.
            (P::Loading, E::Unloaded) => P::Draining,
            // A restart during a drain keeps draining; so does a rebuild finishing.
            (P::Draining, E::ExecutorDied | E::Loaded | E::LoadFailed(_)) => P::Draining,
            (P::Draining, E::Drained) => P::Stopped,
            (P::Failed, E::Unloaded | E::Replaced) => P::Stopped,
            _ => return None,
        })
    }

    /// Whether the router may send it requests.
    pub fn serves(self) -> bool {
        self == VersionPhase::Ready
    }
}

/// What happened to an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEvent {
    /// Its executor built the model and warmed it up.
    Loaded,
    /// Its executor could not build the model.
    LoadFailed(String),
    /// Its executor ended on a fatal error or a panic.
    ExecutorDied,
    /// A newer instance of the same version took its place in the route table.
    Replaced,
    /// The version was unloaded.
    Unloaded,
    /// Its queue closed and its executor ended.
    Drained,
}

impl LifecycleEvent {
    /// The `model_loaded` value this event sets, if it sets one. A replaced instance leaves the
    /// gauge to its replacement, which shares the version's labels.
    fn loaded_gauge(&self, next: VersionPhase) -> Option<i64> {
        match (self, next) {
            (LifecycleEvent::Loaded, VersionPhase::Ready) => Some(1),
            (LifecycleEvent::ExecutorDied, VersionPhase::Restarting)
            | (LifecycleEvent::Unloaded, VersionPhase::Draining) => Some(0),
            _ => None,
        }
    }
}

/// The transition was refused: `event` cannot happen in `phase`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("version {key}: {event:?} cannot happen while {phase:?}")]
pub struct IllegalTransition {
    pub key: VersionKey,
    pub phase: VersionPhase,
    pub event: LifecycleEvent,
}

struct PhaseCell {
    phase: VersionPhase,
    /// Why the last load failed (phase `Failed`).
    failure: Option<String>,
}

/// One instance of a version: its phase (behind the transition function) and the lock-free
/// facts the router, the executor and the admin listing read on their paths.
pub struct VersionState {
    key: VersionKey,
    device: Device,
    created: Instant,
    cell: Mutex<PhaseCell>,
    /// `phase == Ready`, readable without the lock on the request path.
    serving: AtomicBool,
    loaded_gauge: IntGauge,
    /// Builds of its model running now (its executor between the start of a build and its
    /// end, success or not): a load that missed its deadline may still be building.
    building: AtomicUsize,
    restarts: AtomicU64,
    weight_bytes: AtomicUsize,
    inflight: AtomicUsize,
    load_micros: AtomicU64,
    /// Forward-pass estimates and pending rows, for deadline-aware admission.
    cost: CostModel,
    /// The v2 statistics extension's counts for this instance.
    stats: crate::stats::VersionStats,
    /// Paces the restart warnings and fatal-error logs of this instance.
    restart_log: LogThrottle,
    fatal_log: LogThrottle,
}

impl std::fmt::Debug for VersionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionState")
            .field("key", &self.key)
            .field("device", &self.device)
            .field("phase", &self.phase())
            .finish()
    }
}

impl VersionState {
    /// A new instance, `Loading`. `loaded_gauge` is its version's `model_loaded` series.
    pub fn new(key: VersionKey, device: Device, loaded_gauge: IntGauge) -> Self {
        Self {
            key,
            device,
            created: Instant::now(),
            cell: Mutex::new(PhaseCell {
                phase: VersionPhase::Loading,
                failure: None,
            }),
            serving: AtomicBool::new(false),
            loaded_gauge,
            building: AtomicUsize::new(0),
            restarts: AtomicU64::new(0),
            weight_bytes: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            load_micros: AtomicU64::new(0),
            cost: CostModel::default(),
            stats: crate::stats::VersionStats::default(),
            restart_log: LogThrottle::per_version(),
            fatal_log: LogThrottle::per_version(),
        }
    }

    /// The instance's cost model (router admission, executor batching).
    pub fn cost(&self) -> &CostModel {
        &self.cost
    }

    pub fn stats(&self) -> &crate::stats::VersionStats {
        &self.stats
    }

    /// Whether to log this restart (`Some(held back since the last)`); see [`LogThrottle`].
    pub fn log_restart(&self) -> Option<u64> {
        self.restart_log.admit()
    }

    /// Whether to log this fatal model error (`Some(held back since the last)`).
    pub fn log_fatal(&self) -> Option<u64> {
        self.fatal_log.admit()
    }

    fn cell(&self) -> std::sync::MutexGuard<'_, PhaseCell> {
        // The cell holds plain values and every write completes: a poisoned lock is still valid.
        self.cell
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `event` through [`VersionPhase::next`]; sets `model_loaded` as the event asks.
    pub fn apply(&self, event: LifecycleEvent) -> Result<VersionPhase, IllegalTransition> {
        let mut cell = self.cell();
        let Some(next) = cell.phase.next(&event) else {
            let refused = IllegalTransition {
                key: self.key.clone(),
                phase: cell.phase,
                event,
            };
            tracing::warn!(error = %refused, "lifecycle transition refused");
            return Err(refused);
        };
        if let Some(value) = event.loaded_gauge(next) {
            self.loaded_gauge.set(value);
        }
        if let LifecycleEvent::LoadFailed(error) = &event {
            if next == VersionPhase::Failed {
                cell.failure = Some(error.clone());
            }
        }
        cell.phase = next;
        self.serving.store(next.serves(), Ordering::Release);
        Ok(next)
    }

    pub fn phase(&self) -> VersionPhase {
        self.cell().phase
    }

    /// The error of a failed first load.
    pub fn failure(&self) -> Option<String> {
        self.cell().failure.clone()
    }

    pub fn key(&self) -> &VersionKey {
        &self.key
    }
    pub fn device(&self) -> Device {
        self.device
    }
    /// How long ago the instance was created (its load started).
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }
    /// `phase() == Ready`, without the lock.
    /// Loading, serving or restarting: an instance whose version's series must stay.
    pub fn is_active(&self) -> bool {
        matches!(
            self.phase(),
            VersionPhase::Loading | VersionPhase::Ready | VersionPhase::Restarting
        )
    }

    pub fn is_ready(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes.load(Ordering::Relaxed)
    }
    pub fn set_loaded(&self, weight_bytes: usize, took: Duration) {
        self.weight_bytes.store(weight_bytes, Ordering::Relaxed);
        self.load_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }
    pub fn load_time(&self) -> Duration {
        Duration::from_micros(self.load_micros.load(Ordering::Relaxed))
    }
    /// Requests in the forward pass running now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }
    pub fn add_inflight(&self, n: usize) {
        self.inflight.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub_inflight(&self, n: usize) {
        self.inflight.fetch_sub(n, Ordering::Relaxed);
    }

    /// Marks a build of the model as running until the guard is dropped (its end, an error or
    /// a panic).
    pub fn building(&self) -> Building<'_> {
        self.building.fetch_add(1, Ordering::AcqRel);
        Building(self)
    }

    /// Whether a build of the model runs now (the supervisor starts no second load of the
    /// version beside it).
    pub fn is_building(&self) -> bool {
        self.building.load(Ordering::Acquire) > 0
    }
}

/// A build of an instance's model in progress (see [`VersionState::building`]).
pub struct Building<'a>(&'a VersionState);

impl Drop for Building<'_> {
    fn drop(&mut self) {
        self.0.building.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleEvent as E;
    use VersionPhase as P;

    fn events() -> Vec<LifecycleEvent> {
        vec![
            E::Loaded,
            E::LoadFailed("bad weights".into()),
            E::ExecutorDied,
            E::Replaced,
            E::Unloaded,
            E::Drained,
        ]
    }

    /// The whole table: every phase against every event.
    #[test]
    fn every_transition_is_the_documented_one() {
        let expected = |phase: P, event: &E| -> Option<P> {
            match (phase, event) {
                (P::Loading, E::Loaded) => Some(P::Ready),
                (P::Loading, E::LoadFailed(_)) => Some(P::Failed),
                (P::Loading, E::Unloaded) => Some(P::Draining),
                (P::Ready, E::ExecutorDied) => Some(P::Restarting),
                (P::Ready, E::Replaced | E::Unloaded) => Some(P::Draining),
                (P::Restarting, E::Loaded) => Some(P::Ready),
                (P::Restarting, E::LoadFailed(_) | E::ExecutorDied) => Some(P::Restarting),
                (P::Restarting, E::Replaced | E::Unloaded) => Some(P::Draining),
                (P::Draining, E::Drained) => Some(P::Stopped),
                (P::Draining, E::ExecutorDied | E::Loaded | E::LoadFailed(_)) => Some(P::Draining),
                (P::Failed, E::Unloaded | E::Replaced) => Some(P::Stopped),
                _ => None,
            }
        };
        let mut legal = 0;
        for phase in P::ALL {
            for event in events() {
                assert_eq!(
                    phase.next(&event),
                    expected(phase, &event),
                    "{phase:?} + {event:?}"
                );
                legal += usize::from(phase.next(&event).is_some());
            }
        }
        assert_eq!(legal, 17, "legal transitions");
        for event in events() {
            assert_eq!(P::Stopped.next(&event), None, "Stopped is final");
        }
    }

    fn state() -> (VersionState, IntGauge) {
        let gauge = IntGauge::new("model_loaded_test", "test").expect("gauge");
        let state = VersionState::new(VersionKey::new("m", "1"), Device::Cpu, gauge.clone());
        (state, gauge)
    }

    #[test]
    fn a_life_sets_the_gauge_and_the_serving_flag() {
        let (s, gauge) = state();
        assert_eq!(
            (s.phase(), s.is_ready(), gauge.get()),
            (P::Loading, false, 0)
        );
        assert_eq!(s.apply(E::Loaded), Ok(P::Ready));
        assert_eq!((s.is_ready(), gauge.get()), (true, 1));
        assert_eq!(s.apply(E::ExecutorDied), Ok(P::Restarting));
        assert_eq!((s.is_ready(), gauge.get()), (false, 0));
        assert_eq!(s.apply(E::LoadFailed("again".into())), Ok(P::Restarting));
        assert_eq!(s.failure(), None, "a failed rebuild is not a failed load");
        assert_eq!(s.apply(E::Loaded), Ok(P::Ready));
        assert_eq!(gauge.get(), 1);
        assert_eq!(s.apply(E::Unloaded), Ok(P::Draining));
        assert_eq!((s.is_ready(), gauge.get()), (false, 0));
        assert_eq!(s.apply(E::Drained), Ok(P::Stopped));
        let refused = s.apply(E::Loaded).unwrap_err();
        assert_eq!(refused.phase, P::Stopped);
        assert_eq!(s.phase(), P::Stopped, "a refused event changes nothing");
    }

    #[test]
    fn a_replaced_instance_leaves_the_gauge_to_its_successor() {
        let (old, gauge) = state();
        old.apply(E::Loaded).expect("loads");
        assert_eq!(old.apply(E::Replaced), Ok(P::Draining));
        assert_eq!(
            gauge.get(),
            1,
            "the new instance serves under the same labels"
        );
        assert_eq!(old.apply(E::Drained), Ok(P::Stopped));
        assert_eq!(gauge.get(), 1);
    }

    #[test]
    fn a_restart_during_a_drain_keeps_draining() {
        let (s, gauge) = state();
        s.apply(E::Loaded).expect("loads");
        s.apply(E::Unloaded).expect("unloads");
        assert_eq!(s.apply(E::ExecutorDied), Ok(P::Draining));
        assert_eq!(
            s.apply(E::Loaded),
            Ok(P::Draining),
            "rebuilt, still draining"
        );
        assert!(!s.is_ready(), "a draining instance is never routed again");
        assert_eq!(gauge.get(), 0);
        assert_eq!(s.apply(E::Drained), Ok(P::Stopped));
    }

    #[test]
    fn an_unload_during_a_load_retires_the_instance() {
        let (s, gauge) = state();
        assert_eq!(s.apply(E::Unloaded), Ok(P::Draining));
        assert_eq!(
            s.apply(E::Loaded),
            Ok(P::Draining),
            "built after the unload"
        );
        assert!(!s.is_ready());
        assert_eq!(gauge.get(), 0, "never counted as loaded");
        assert_eq!(s.apply(E::Drained), Ok(P::Stopped));
    }

    #[test]
    fn a_failed_load_keeps_its_error_until_unloaded() {
        let (s, gauge) = state();
        assert_eq!(s.apply(E::LoadFailed("no weights".into())), Ok(P::Failed));
        assert_eq!(s.failure().as_deref(), Some("no weights"));
        assert_eq!(gauge.get(), 0);
        assert!(s.apply(E::ExecutorDied).is_err());
        assert_eq!(s.apply(E::Unloaded), Ok(P::Stopped));
    }
}
