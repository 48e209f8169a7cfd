//! `[repository]`: where the model repository is, which links a load follows, what one load
//! may spend, and Triton's model control mode (`none`, `explicit`, `poll`) with its poll
//! interval and `--load-model` names.

use std::path::PathBuf;

use serde::Deserialize;

use super::validate::invalid;
use super::SettingsError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepositorySettings {
    pub path: PathBuf,
    /// Symbolic links below `path` a load follows: `"inside"` (those resolving inside the
    /// repository root; any other is refused) or `"none"` (no link at all).
    #[serde(default)]
    pub symlinks: burnserve_models::Symlinks,
    /// The most bytes one version's estimate (weights twice, plus each instance's working
    /// memory for a full batch) may reach; a load over it is refused before anything is built.
    #[serde(default = "default_max_model_bytes")]
    pub max_model_bytes: u64,
    /// How long one load may take (request to warm-up); past it the load answers
    /// `load_failed`, the version ends failed and its build is cancelled.
    #[serde(default = "default_load_timeout_ms")]
    pub load_timeout_ms: u64,
    /// Triton's model control mode: `explicit` (the settings' models and `load_models` at
    /// start, then the repository API), `none` (every repository model at start; the
    /// repository API may not load or unload) or `poll` (as `none`, then the repository is
    /// watched every `poll_interval_ms`).
    #[serde(default)]
    pub control_mode: burnserve_actors::ControlMode,
    /// How often `poll` looks at the repository (Triton's `--repository-poll-secs`).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Repository models loaded at start in `explicit` mode, beside the settings' models
    /// (Triton's `--load-model`; `*`: every one).
    #[serde(default)]
    pub load_models: Vec<String>,
}

fn default_poll_interval_ms() -> u64 {
    15_000
}

/// Bounds of `repository.poll_interval_ms`.
pub const POLL_INTERVAL_MS: std::ops::RangeInclusive<u64> = 100..=86_400_000;

fn default_max_model_bytes() -> u64 {
    burnserve_models::load::DEFAULT_MAX_MODEL_BYTES
}

fn default_load_timeout_ms() -> u64 {
    burnserve_models::load::DEFAULT_LOAD_TIMEOUT_MS
}

impl RepositorySettings {
    pub(super) fn limits(&self) -> Result<burnserve_models::LoadLimits, SettingsError> {
        burnserve_models::LoadLimits::new(self.max_model_bytes, self.load_timeout_ms)
            .map_err(|(key, message)| invalid(key, message))
    }

    /// The repository as the runtime reads it (`Runtime::start`).
    pub fn runtime_config(&self) -> burnserve_actors::control::RepositoryConfig {
        burnserve_actors::control::RepositoryConfig {
            path: self.path.clone(),
            symlinks: self.symlinks,
            limits: self.limits().unwrap_or_default(),
            mode: self.control_mode,
        }
    }
}
