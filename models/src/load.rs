//! What one load may read and spend. [`LoadLimits`] (`repository.max_model_bytes`,
//! `repository.load_timeout_ms`); [`LoadBudget`], the deadline and cancel flag a build checks
//! between its steps; [`MemoryEstimate`], admitted against the cap before anything is built; and
//! [`LoadContext`], through which an architecture reads its files: each resolved in the
//! repository [`Jail`], bounded in size, and verified against its pinned digest
//! ([`crate::digest`]) before it is parsed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::device::Device;
use crate::digest::{sha256_of_bytes, sha256_of_checked};
use crate::error::ModelError;
use crate::header::WeightsHeader;
use crate::jail::Jail;
use crate::spec::ModelSpec;

/// `repository.max_model_bytes` when unset: 8 GiB per version.
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 8 << 30;
/// Bounds of `repository.max_model_bytes`: 1 MiB to 1 TiB.
pub const MIN_MAX_MODEL_BYTES: u64 = 1 << 20;
pub const MAX_MAX_MODEL_BYTES: u64 = 1 << 40;
/// `repository.load_timeout_ms` when unset: two minutes.
pub const DEFAULT_LOAD_TIMEOUT_MS: u64 = 120_000;
/// Bounds of `repository.load_timeout_ms`: 10 ms to an hour.
pub const MIN_LOAD_TIMEOUT_MS: u64 = 10;
pub const MAX_LOAD_TIMEOUT_MS: u64 = 3_600_000;

/// What one version's load may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The most bytes a version's estimate ([`MemoryEstimate::total`]) may reach.
    pub max_model_bytes: u64,
    /// How long a load may take, from its request to its warm-up's end.
    pub load_timeout: Duration,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_model_bytes: DEFAULT_MAX_MODEL_BYTES,
            load_timeout: Duration::from_millis(DEFAULT_LOAD_TIMEOUT_MS),
        }
    }
}

impl LoadLimits {
    /// Limits from the settings' values; a value past its bounds is refused naming its key.
    pub fn new(max_model_bytes: u64, load_timeout_ms: u64) -> Result<Self, (String, String)> {
        if !(MIN_MAX_MODEL_BYTES..=MAX_MAX_MODEL_BYTES).contains(&max_model_bytes) {
            return Err((
                "repository.max_model_bytes".into(),
                format!("must be {MIN_MAX_MODEL_BYTES} (1 MiB) to {MAX_MAX_MODEL_BYTES} (1 TiB)"),
            ));
        }
        if !(MIN_LOAD_TIMEOUT_MS..=MAX_LOAD_TIMEOUT_MS).contains(&load_timeout_ms) {
            return Err((
                "repository.load_timeout_ms".into(),
                format!("must be {MIN_LOAD_TIMEOUT_MS} to {MAX_LOAD_TIMEOUT_MS}"),
            ));
        }
        Ok(Self {
            max_model_bytes,
            load_timeout: Duration::from_millis(load_timeout_ms),
        })
    }

    /// The answer of a load past its deadline.
    pub fn timeout_error(&self) -> ModelError {
        ModelError::Load(format!(
            "load did not finish within {} ms (repository.load_timeout_ms); it was cancelled",
            self.load_timeout.as_millis()
        ))
    }
}

/// A flag the loader sets when it gave up on a load; the build stops at its next check.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// One build's deadline and its loader's cancel flag, checked between the steps of a load
/// (files, hashing pieces, layers, weights, warm-up).
#[derive(Debug, Clone)]
pub struct LoadBudget {
    deadline: Option<Instant>,
    limits: LoadLimits,
    cancel: Cancel,
}

impl LoadBudget {
    /// A budget of `limits.load_timeout` from now, also ended by `cancel`.
    pub fn new(limits: LoadLimits, cancel: Cancel) -> Self {
        Self {
            deadline: Instant::now().checked_add(limits.load_timeout),
            limits,
            cancel,
        }
    }

    /// No deadline (direct loads: tools, tests, benches).
    pub fn unlimited() -> Self {
        Self {
            deadline: None,
            limits: LoadLimits::default(),
            cancel: Cancel::default(),
        }
    }

    /// `Err` once the deadline passed or the load was cancelled.
    pub fn check(&self) -> Result<(), ModelError> {
        let late = self.deadline.is_some_and(|d| Instant::now() >= d);
        if late || self.cancel.is_cancelled() {
            return Err(self.limits.timeout_error());
        }
        Ok(())
    }
}

/// A bound on what a version holds at its peak, computed from the weights' header before
/// anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEstimate {
    /// The parameters once loaded ([`WeightsHeader::loaded_bytes`]); counted twice, as loading
    /// holds a tensor's copy beside the network (and the PyTorch layout's contiguous copy).
    pub weights: u64,
    /// Executor instances (they share the weights; each has its own working memory).
    pub instances: u64,
    /// One instance's activations for a full batch (the architecture's bound).
    pub working: u64,
    /// Anything else the version holds (a parsed tokenizer).
    pub other: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_mul(2)
            .saturating_add(self.instances.saturating_mul(self.working))
            .saturating_add(self.other)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

impl std::fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes ({}: weights {} twice while loading, {} instance(s) × {} working memory, \
             {} other)",
            self.total(),
            mib(self.total()),
            mib(self.weights),
            self.instances,
            mib(self.working),
            mib(self.other)
        )
    }
}

/// The weights file of a version, verified, and its header.
#[derive(Debug, Clone)]
pub struct Weights {
    pub path: PathBuf,
    pub header: WeightsHeader,
}

/// Everything one build of a version reads through: its spec, its version directory inside the
/// repository jail, the device, the limits and the budget.
pub struct LoadContext<'a> {
    pub spec: &'a ModelSpec,
    /// The version directory (canonical when the runtime loads it).
    pub dir: &'a Path,
    pub device: Device,
    jail: &'a Jail,
    limits: LoadLimits,
    budget: &'a LoadBudget,
}

impl<'a> LoadContext<'a> {
    pub fn new(
        spec: &'a ModelSpec,
        dir: &'a Path,
        device: Device,
        jail: &'a Jail,
        limits: LoadLimits,
        budget: &'a LoadBudget,
    ) -> Self {
        Self {
            spec,
            dir,
            device,
            jail,
            limits,
            budget,
        }
    }

    /// The repository jail every file of the load is resolved in.
    pub fn jail(&self) -> &Jail {
        self.jail
    }

    /// `Err` once the load's deadline passed or it was cancelled.
    pub fn check(&self) -> Result<(), ModelError> {
        self.budget.check()
    }

    /// The file `model.toml` names `name` in `field`, inside the jail, checked against its pin
    /// (hashed in pieces, between deadline checks).
    pub fn file(&self, field: &str, name: &str) -> Result<PathBuf, ModelError> {
        self.check()?;
        let path = self.jail.file(self.dir, field, name)?;
        self.spec.verify_pin(field, name, || {
            sha256_of_checked(&path, &mut || self.check())
        })?;
        Ok(path)
    }

    /// The bytes of the file `name` (field `field`), at most `max_bytes` of them, checked
    /// against its pin before the caller parses them (what is hashed is what is parsed).
    pub fn read(&self, field: &str, name: &str, max_bytes: u64) -> Result<Vec<u8>, ModelError> {
        self.check()?;
        let path = self.jail.file(self.dir, field, name)?;
        let unreadable = |e: std::io::Error| {
            ModelError::Load(format!("`{field}` file '{name}' cannot be read: {e}"))
        };
        let file = std::fs::File::open(&path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > max_bytes {
            return Err(ModelError::Load(format!(
                "`{field}` file '{name}' is larger than the {max_bytes} bytes read for it"
            )));
        }
        self.spec
            .verify_pin(field, name, || Ok(sha256_of_bytes(&bytes)))?;
        Ok(bytes)
    }

    /// The weights file (`weights` in model.toml, which `architecture` needs), verified, and
    /// its header.
    pub fn weights(&self, architecture: &str) -> Result<Weights, ModelError> {
        let name = self.spec.weights.as_deref().ok_or_else(|| {
            ModelError::Load(format!(
                "architecture '{architecture}' needs a `weights` file"
            ))
        })?;
        let path = self.file("weights", name)?;
        self.check()?;
        let header = WeightsHeader::read(&path)?;
        Ok(Weights { path, header })
    }

    /// Refuses a version whose estimate is over `repository.max_model_bytes`, before anything
    /// is allocated.
    pub fn admit(&self, estimate: &MemoryEstimate) -> Result<(), ModelError> {
        if estimate.total() > self.limits.max_model_bytes {
            return Err(ModelError::Load(format!(
                "the version would need an estimated {estimate}, over repository.max_model_bytes \
                 = {} bytes ({})",
                self.limits.max_model_bytes,
                mib(self.limits.max_model_bytes)
            )));
        }
        Ok(())
    }

    /// The estimate of a version whose parameters take `weights` bytes and each of whose
    /// instances works in `working` bytes.
    pub fn estimate(&self, weights: u64, working: u64) -> MemoryEstimate {
        MemoryEstimate {
            weights,
            instances: self.spec.batching.instances.resolve() as u64,
            working,
            other: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded_and_budgets_end() {
        assert_eq!(
            LoadLimits::new(8 << 30, 120_000).expect("defaults"),
            LoadLimits::default()
        );
        assert_eq!(
            LoadLimits::new(1024, 1000).unwrap_err().0,
            "repository.max_model_bytes"
        );
        assert_eq!(
            LoadLimits::new(1 << 30, 0).unwrap_err().0,
            "repository.load_timeout_ms"
        );
        let limits = LoadLimits::new(1 << 20, 10).expect("limits");
        let cancel = Cancel::default();
        let budget = LoadBudget::new(limits, cancel.clone());
        assert!(budget.check().is_ok());
        std::thread::sleep(Duration::from_millis(15));
        let err = budget.check().unwrap_err().to_string();
        assert!(err.contains("within 10 ms"), "{err}");
        let long = LoadBudget::new(LoadLimits::default(), cancel.clone());
        assert!(long.check().is_ok());
        cancel.cancel();
        assert!(long.check().is_err(), "cancelled");
        assert!(LoadBudget::unlimited().check().is_ok());
    }

    #[test]
    fn estimates_count_weights_twice_and_working_memory_per_instance() {
        let estimate = MemoryEstimate {
            weights: 100,
            instances: 3,
            working: 10,
            other: 5,
        };
        assert_eq!(estimate.total(), 235);
        let huge = MemoryEstimate {
            weights: u64::MAX,
            ..estimate
        };
        assert_eq!(huge.total(), u64::MAX, "saturates, never wraps");
        let text = estimate.to_string();
        assert!(text.starts_with("235 bytes"), "{text}");
    }

    /// The refusal of loading the bundled Fashion-MNIST MLP with `limits` and `budget`.
    fn refusal(limits: LoadLimits, budget: &LoadBudget) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("repository/fashion/1");
        let spec = ModelSpec::from_dir(&dir).expect("bundled spec");
        let jail = Jail::open(&dir, crate::Symlinks::Inside).expect("jail");
        let ctx = LoadContext::new(&spec, &dir, Device::Cpu, &jail, limits, budget);
        match crate::load_version(&ctx) {
            Ok(_) => "loaded".into(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_load_over_the_cap_or_past_its_deadline_builds_nothing() {
        assert_eq!(
            refusal(LoadLimits::default(), &LoadBudget::unlimited()),
            "loaded"
        );
        // 235,146 parameters (940,584 bytes) twice, and 64 rows of 1,178 values twice.
        let tight = LoadLimits::new(1 << 20, 60_000).expect("limits");
        let err = refusal(tight, &LoadBudget::unlimited());
        assert!(
            err.contains("estimated 2484304 bytes")
                && err.contains("over repository.max_model_bytes = 1048576 bytes"),
            "{err}"
        );
        let cancel = Cancel::default();
        cancel.cancel();
        let err = refusal(
            LoadLimits::default(),
            &LoadBudget::new(LoadLimits::default(), cancel),
        );
        assert!(err.contains("did not finish within 120000 ms"), "{err}");
    }
}
