//! Reconcile planning (pure): which versions a settings file adds, removes and keeps, compared
//! with what serves. `ModelControl::reconcile` executes the plan, loads before unloads.

use std::collections::BTreeSet;

use burnserve_models::Device;
use serde::Deserialize;

use crate::messages::VersionKey;

/// A model the settings file serves: versions from the repository, one of them the default,
/// on one device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub versions: Vec<String>,
    #[serde(default)]
    pub default_version: Option<String>,
    #[serde(default)]
    pub device: Device,
}

impl ModelConfig {
    pub fn keys(&self) -> impl Iterator<Item = VersionKey> + '_ {
        self.versions
            .iter()
            .map(|version| VersionKey::new(&self.name, version))
    }
}

/// What reconciling the served versions with a settings file does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReconcilePlan {
    pub load: Vec<VersionKey>,
    pub unload: Vec<VersionKey>,
    pub keep: Vec<VersionKey>,
}

/// Load what is wanted and not served, unload what is served and not wanted, keep the rest.
pub fn plan_reconcile(wanted: &[ModelConfig], served: &[VersionKey]) -> ReconcilePlan {
    let wanted: BTreeSet<VersionKey> = wanted.iter().flat_map(ModelConfig::keys).collect();
    let served: BTreeSet<VersionKey> = served.iter().cloned().collect();
    ReconcilePlan {
        load: wanted.difference(&served).cloned().collect(),
        unload: served.difference(&wanted).cloned().collect(),
        keep: wanted.intersection(&served).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, versions: &[&str]) -> ModelConfig {
        ModelConfig {
            name: name.into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            default_version: None,
            device: Device::Cpu,
        }
    }

    #[test]
    fn loads_new_unloads_removed_keeps_the_rest() {
        let plan = plan_reconcile(
            &[config("a", &["1", "2"]), config("b", &["1"])],
            &[VersionKey::new("a", "1"), VersionKey::new("c", "1")],
        );
        assert_eq!(
            plan.load,
            vec![VersionKey::new("a", "2"), VersionKey::new("b", "1")]
        );
        assert_eq!(plan.unload, vec![VersionKey::new("c", "1")]);
        assert_eq!(plan.keep, vec![VersionKey::new("a", "1")]);
    }

    #[test]
    fn nothing_wanted_unloads_everything() {
        let plan = plan_reconcile(&[], &[VersionKey::new("a", "1")]);
        assert_eq!(plan.unload, vec![VersionKey::new("a", "1")]);
        assert!(plan.load.is_empty() && plan.keep.is_empty());
    }
}
