//! `LoadView`: a read-only picture of the route table's load, which the router republishes on
//! every change of a model's routes, so a request can be refused before its body is read (and
//! decoded). Under a flood the body is what costs: refusing after reading and decoding it spends
//! on each refusal a good part of what serving it would. A version sheds once the router has
//! refused a request for its deadline or for a full queue (`CostModel::is_shedding`), and then
//! refuses early every request while the jobs queued exceed `cost::SHED_LOW_WATER` of the queue's
//! capacity (429, as a full queue) or the work ahead exceeds that share of the version's own
//! deadline (`timeout_ms`, which a request may only shorten); below both, shedding stops and
//! requests go through to the full admission again.
//!
//! It holds each version's `VersionState` (its cost model), never its queue, so a retired
//! version's executor still sees its queue close when the router lets go of it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cost::SHED_LOW_WATER;
use crate::error::{DeadlineRefusal, InferError};
use crate::lifecycle::VersionState;
use crate::messages::VersionKey;
use crate::router::RETRY_AFTER;

/// What the view keeps of one routed version.
#[derive(Clone)]
pub(crate) struct VersionLoad {
    pub state: Arc<VersionState>,
    pub default_timeout: Duration,
    pub max_rows: usize,
    pub queue_capacity: usize,
}

/// Whether background work (an async job) may go to a version now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundRoom {
    /// The version is not loaded (not in the route table).
    Gone,
    /// Not now: not ready, shedding, or its queue or deadline is used past the reserve.
    Wait,
    Free,
}

/// One model's routed versions, and those an unpinned request may go to (the split's, else the
/// default).
#[derive(Clone, Default)]
pub(crate) struct ModelLoad {
    pub versions: HashMap<String, VersionLoad>,
    pub unpinned: Vec<String>,
}

#[derive(Clone, Default)]
pub struct LoadView(Arc<RwLock<HashMap<String, ModelLoad>>>);

impl LoadView {
    /// Replaces what the view knows of `model` (`None`: it has no routed version).
    pub(crate) fn publish(&self, model: &str, load: Option<ModelLoad>) {
        // Each write replaces one model's entry whole: a poisoned lock still holds a valid map.
        let mut models = self.0.write().unwrap_or_else(|p| p.into_inner());
        match load {
            Some(load) => models.insert(model.to_string(), load),
            None => models.remove(model),
        };
    }

    /// A refusal when every version a request for `model` (`version`, when pinned) could go to
    /// is shedding and holds more work than its low-water mark, by its estimate with margin.
    /// `None` (let it through to the full admission) for an unknown model, a version not ready,
    /// or an estimate not measured for a while (the router's probes bring it down).
    pub fn refuse_early(&self, model: &str, version: Option<&str>) -> Option<InferError> {
        let models = self.0.read().unwrap_or_else(|p| p.into_inner());
        let routes = models.get(model)?;
        let pinned;
        let candidates: &[String] = match version {
            Some(version) => {
                pinned = [version.to_string()];
                &pinned
            }
            None => &routes.unpinned,
        };
        let mut first = None;
        for name in candidates {
            let load = routes.versions.get(name)?;
            let refusal = refusal(name, load)?;
            first.get_or_insert(refusal);
        }
        first
    }

    /// Whether a background request of one row may go to `key` now, leaving `reserve` (0 to 1)
    /// of its queue and of its deadline to interactive requests: the version is ready and not
    /// shedding, its pending rows are under `(1 - reserve)` of its queue, and the work ahead
    /// (by its estimate, with margin) is under `(1 - reserve)` of its deadline.
    pub fn background_room(&self, key: &VersionKey, reserve: f64) -> BackgroundRoom {
        let models = self.0.read().unwrap_or_else(|p| p.into_inner());
        let Some(load) = models
            .get(&key.model)
            .and_then(|routes| routes.versions.get(&key.version))
        else {
            return BackgroundRoom::Gone;
        };
        let share = (1.0 - reserve).clamp(0.0, 1.0);
        let cost = load.state.cost();
        let queue_room = (load.queue_capacity as f64 * share).floor() as usize;
        let busy = !load.state.is_ready()
            || cost.is_shedding()
            || cost.pending_rows() + 1 > queue_room
            || cost
                .time_to_finish(1, load.max_rows)
                .is_some_and(|ahead| cost.with_margin(ahead) > load.default_timeout.mul_f64(share));
        if busy {
            BackgroundRoom::Wait
        } else {
            BackgroundRoom::Free
        }
    }
}

fn refusal(version: &str, load: &VersionLoad) -> Option<InferError> {
    if !load.state.is_ready() {
        return None;
    }
    let cost = load.state.cost();
    if !cost.is_shedding() || cost.is_stale() {
        return None;
    }
    let key: &VersionKey = load.state.key();
    // Shedding after a full queue: refused while the jobs queued stay above the mark.
    if cost.pending_jobs() as f64 > load.queue_capacity as f64 * SHED_LOW_WATER {
        return Some(InferError::Overloaded {
            model: key.model.clone(),
            version: version.to_string(),
            capacity: load.queue_capacity,
            retry_after: RETRY_AFTER,
        });
    }
    let expected = cost.with_margin(cost.time_to_finish(1, load.max_rows)?);
    if expected <= load.default_timeout.mul_f64(SHED_LOW_WATER) {
        cost.set_shedding(false);
        return None;
    }
    Some(InferError::CannotMeetDeadline(Box::new(DeadlineRefusal {
        model: key.model.clone(),
        version: version.to_string(),
        expected,
        // While shedding, the bound is the low-water mark, not the whole deadline.
        timeout: load.default_timeout.mul_f64(SHED_LOW_WATER),
        retry_after: cost.time_to_finish(0, load.max_rows).unwrap_or(expected),
    })))
}

#[cfg(test)]
mod tests {
    use burnserve_models::Device;
    use prometheus::IntGauge;

    use super::*;
    use crate::lifecycle::LifecycleEvent;

    fn ready_version(model: &str, version: &str) -> Arc<VersionState> {
        let state = Arc::new(VersionState::new(
            VersionKey::new(model, version),
            Device::Cpu,
            IntGauge::new("loaded", "test").expect("gauge"),
        ));
        state.apply(LifecycleEvent::Loaded).expect("ready");
        // 10 ms a pass, one row a pass.
        state.cost().record_pass(1, Duration::from_millis(10));
        state
    }

    fn view_of(versions: &[(&str, &Arc<VersionState>)], unpinned: &[&str]) -> LoadView {
        let view = LoadView::default();
        view.publish(
            "m",
            Some(ModelLoad {
                versions: versions
                    .iter()
                    .map(|(name, state)| {
                        let load = VersionLoad {
                            state: (*state).clone(),
                            default_timeout: Duration::from_millis(100),
                            max_rows: 1,
                            queue_capacity: 10,
                        };
                        (name.to_string(), load)
                    })
                    .collect(),
                unpinned: unpinned.iter().map(|v| v.to_string()).collect(),
            }),
        );
        view
    }

    #[test]
    fn sheds_only_after_a_refusal_and_until_below_the_low_water_mark() {
        let one = ready_version("m", "1");
        let view = view_of(&[("1", &one)], &["1"]);
        // 20 rows ahead: 210 ms by the estimate (with margin 263 ms) against a 100 ms deadline,
        // but nothing was refused yet: every request goes to the full admission.
        one.cost().add_pending(20);
        assert!(view.refuse_early("m", None).is_none());
        one.cost().set_shedding(true);
        let Some(InferError::CannotMeetDeadline(refusal)) = view.refuse_early("m", None) else {
            panic!("expected a deadline refusal");
        };
        assert_eq!(
            (refusal.model.as_str(), refusal.version.as_str()),
            ("m", "1")
        );
        assert_eq!(refusal.timeout, Duration::from_millis(80));
        assert!(view.refuse_early("m", Some("1")).is_some());
        // 6 rows: 70 ms (with margin 88.5 ms), above the 80 ms mark: still shedding.
        one.cost().sub_pending(0, 14);
        assert!(view.refuse_early("m", None).is_some());
        // 5 rows: 60 ms (with margin 76 ms), below it: shedding stops, and stays off.
        one.cost().sub_pending(0, 1);
        assert!(view.refuse_early("m", None).is_none());
        assert!(!one.cost().is_shedding());
        one.cost().add_pending(20);
        assert!(view.refuse_early("m", None).is_none());
    }

    #[test]
    fn a_full_queue_sheds_until_its_jobs_fall_below_the_mark() {
        let one = ready_version("m", "1");
        let view = view_of(&[("1", &one)], &["1"]);
        // 9 one-row jobs of a 10-job queue: 100 ms by the estimate (with margin 126 ms), and
        // the deadline is 100 ms; after 2 of them are computed, 70 ms (88.5 ms) is still above
        // the deadline's mark (80 ms), so take them off the deadline's books by hand: what is
        // tested here is the queue's mark (8 jobs).
        for _ in 0..9 {
            one.cost().add_pending(1);
        }
        assert!(view.refuse_early("m", None).is_none(), "not shedding yet");
        one.cost().set_shedding(true);
        match view.refuse_early("m", None) {
            Some(InferError::Overloaded {
                model,
                version,
                capacity,
                ..
            }) => assert_eq!((model.as_str(), version.as_str(), capacity), ("m", "1", 10)),
            other => panic!("expected a full-queue refusal, got {other:?}"),
        }
        // 8 jobs: at the mark, no longer above it; the deadline decides (5 rows, 76 ms: below).
        one.cost().sub_pending(1, 0);
        one.cost().sub_pending(0, 4);
        assert_eq!(one.cost().pending_jobs(), 8);
        assert!(view.refuse_early("m", None).is_none());
        assert!(
            !one.cost().is_shedding(),
            "both marks passed: shedding stops"
        );
    }

    #[test]
    fn a_request_is_shed_only_when_every_version_it_could_reach_is() {
        let (one, two) = (ready_version("m", "1"), ready_version("m", "2"));
        let view = view_of(&[("1", &one), ("2", &two)], &["1", "2"]);
        one.cost().add_pending(20);
        one.cost().set_shedding(true);
        assert!(view.refuse_early("m", None).is_none(), "version 2 has room");
        assert!(view.refuse_early("m", Some("1")).is_some(), "pinned to 1");
        assert!(view.refuse_early("m", Some("2")).is_none());
        two.cost().add_pending(20);
        two.cost().set_shedding(true);
        assert!(view.refuse_early("m", None).is_some());
        // Unknown names are left to the full admission, which answers 404.
        assert!(view.refuse_early("m", Some("9")).is_none());
        assert!(view.refuse_early("other", None).is_none());
        view.publish("m", None);
        assert!(view.refuse_early("m", Some("1")).is_none());
    }

    #[test]
    fn background_work_waits_for_the_reserve_and_leaves_with_the_version() {
        let one = ready_version("m", "1");
        let view = view_of(&[("1", &one)], &["1"]);
        let key = VersionKey::new("m", "1");
        // Half kept for interactive requests: 5 of the 10 queue slots, 50 ms of the 100 ms.
        assert_eq!(view.background_room(&key, 0.5), BackgroundRoom::Free);
        // 2 rows ahead + 1: 30 ms (with margin 38.5 ms): still free.
        one.cost().add_pending(2);
        assert_eq!(view.background_room(&key, 0.5), BackgroundRoom::Free);
        // 3 + 1: 40 ms (with margin 51 ms), past 50 ms of deadline.
        one.cost().add_pending(1);
        assert_eq!(view.background_room(&key, 0.5), BackgroundRoom::Wait);
        // With no reserve the whole deadline (100 ms) and queue (10) are available.
        assert_eq!(view.background_room(&key, 0.0), BackgroundRoom::Free);
        one.cost().sub_pending(2, 3);
        one.cost().set_shedding(true);
        assert_eq!(view.background_room(&key, 0.0), BackgroundRoom::Wait);
        one.cost().set_shedding(false);
        assert_eq!(
            view.background_room(&VersionKey::new("m", "2"), 0.5),
            BackgroundRoom::Gone
        );
        view.publish("m", None);
        assert_eq!(view.background_room(&key, 0.5), BackgroundRoom::Gone);
    }
}
