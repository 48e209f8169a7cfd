//! `TrafficSplit`: the weighted split of a model's unpinned requests between versions (canary),
//! as smooth weighted round-robin: over every `total weight` requests each version gets exactly
//! its weight, interleaved evenly (90/10 sends one in ten to the canary, never ten in a row).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    version: String,
    weight: u32,
    current: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficSplit {
    slots: Vec<Slot>,
    total: i64,
}

impl TrafficSplit {
    /// A split from version → weight; versions with weight 0 get nothing. `None` if every
    /// weight is 0.
    pub fn new(weights: &BTreeMap<String, u32>) -> Option<Self> {
        let slots: Vec<Slot> = weights
            .iter()
            .filter(|(_, &w)| w > 0)
            .map(|(v, &w)| Slot {
                version: v.clone(),
                weight: w,
                current: 0,
            })
            .collect();
        let total = slots.iter().map(|s| i64::from(s.weight)).sum();
        (total > 0).then_some(Self { slots, total })
    }

    /// The version for the next request.
    pub fn pick(&mut self) -> &str {
        for slot in &mut self.slots {
            slot.current += i64::from(slot.weight);
        }
        let best = self.argmax();
        self.slots[best].current -= self.total;
        &self.slots[best].version
    }

    fn argmax(&self) -> usize {
        let mut best = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.current > self.slots[best].current {
                best = i;
            }
        }
        best
    }

    /// The split without `version` (`None` if nothing is left).
    pub fn without(&self, version: &str) -> Option<Self> {
        Self::new(
            &self
                .weights()
                .into_iter()
                .filter(|(v, _)| v != version)
                .collect(),
        )
    }

    pub fn weights(&self) -> BTreeMap<String, u32> {
        self.slots
            .iter()
            .map(|s| (s.version.clone(), s.weight))
            .collect()
    }

    pub fn contains(&self, version: &str) -> bool {
        self.slots.iter().any(|s| s.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pairs: &[(&str, u32)]) -> TrafficSplit {
        TrafficSplit::new(&pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect())
            .expect("non-zero split")
    }

    #[test]
    fn each_cycle_gives_each_version_exactly_its_weight_interleaved() {
        let mut s = split(&[("1", 90), ("2", 10)]);
        let picks: Vec<String> = (0..2000).map(|_| s.pick().to_string()).collect();
        assert_eq!(picks.iter().filter(|v| *v == "2").count(), 200);
        // Interleaved: the canary never gets two requests in a row at 90/10.
        assert!(picks.windows(2).all(|w| !(w[0] == "2" && w[1] == "2")));
        let mut s = split(&[("a", 1), ("b", 2), ("c", 0)]);
        let picks: Vec<String> = (0..3).map(|_| s.pick().to_string()).collect();
        assert_eq!(picks.iter().filter(|v| *v == "b").count(), 2);
        assert!(!s.contains("c"));
    }

    #[test]
    fn removing_versions_and_zero_weights() {
        assert!(TrafficSplit::new(&BTreeMap::from([("1".to_string(), 0)])).is_none());
        let s = split(&[("1", 50), ("2", 50)]);
        let mut only = s.without("2").expect("one left");
        assert_eq!(only.pick(), "1");
        assert!(only.without("1").is_none());
    }
}
