//! `ModelSpec`: one version's `model.toml` (architecture, I/O schema, batching, timeout),
//! read from the model repository and validated before anything is built.

mod counts;
mod range;
mod signature;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::digest::sha256_of;
use crate::error::ModelError;
pub use crate::jail::{file_in, scan_repository};
use crate::tensor::DataType;
pub use counts::{Instances, Threads};
pub use signature::{TensorSpec, MAX_RANK, MAX_TENSORS, MAX_TENSOR_NAME, VARIABLE};

/// The file name of a version's description inside `<repo>/<name>/<version>/`.
pub const SPEC_FILE: &str = "model.toml";
/// The longest `model.toml` read.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Which architecture builds the network (`mlp`; fakes with the `test-util` feature).
    pub architecture: String,
    /// Weights file relative to the version directory (safetensors).
    #[serde(default)]
    pub weights: Option<String>,
    /// SHA-256 of the weights file (64 hex digits); when given, a load whose file differs fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-256 of the other files the version reads, by the name `model.toml` gives them
    /// (`[files]`, e.g. `"config.json" = "…"`). A version that pins anything (`sha256` or an
    /// entry here) must pin every file it reads ([`crate::digest`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    /// Architecture parameters (e.g. `hidden = [128]` for `mlp`).
    #[serde(default)]
    pub params: toml::Table,
    /// The inputs (`[[inputs]]`), in the order metadata lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TensorSpec>,
    /// The outputs (`[[outputs]]`), in the order responses give them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TensorSpec>,
    /// The single `[input]` of older files: read into `inputs`, never written.
    #[serde(default, rename = "input", skip_serializing)]
    pub legacy_input: Option<TensorSpec>,
    /// The single `[output]` of older files: read into `outputs`, never written.
    #[serde(default, rename = "output", skip_serializing)]
    pub legacy_output: Option<TensorSpec>,
    #[serde(default)]
    pub batching: BatchingSpec,
    /// Default per-request deadline; a request may only shorten it.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Restart the version (through its supervisor) after this many batches in a row failed
    /// even when their requests ran again one by one; 0 never restarts for failures.
    #[serde(default = "default_restart_after_failed_batches")]
    pub restart_after_failed_batches: u32,
    /// Whether a request's own `timeout` parameter may shorten `timeout_ms` (Triton's
    /// `allow_timeout_override`); `false`: every request gets `timeout_ms`.
    #[serde(default = "default_allow_timeout_override")]
    pub allow_timeout_override: bool,
    /// Requests run at load, after the warm-up pass (Triton's `model_warmup`).
    #[serde(skip)]
    pub warmup: Vec<WarmupSample>,
    /// The Triton configuration this spec was mapped from (`config.pbtxt`), for the
    /// configuration document; `None` for `model.toml` versions.
    #[serde(skip)]
    pub triton: Option<std::sync::Arc<crate::triton::pb::ModelConfig>>,
}

/// One `model_warmup` sample: its inputs (with the batch dimension), run `count` times.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupSample {
    pub name: String,
    pub inputs: Vec<crate::tensor::NamedTensor>,
    pub rows: usize,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchingSpec {
    /// Most items (rows) one forward pass runs; 0: the model has no batch dimension (each
    /// request's tensors are its whole inputs, and requests are never batched together).
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// Longest a request waits for others to join its batch.
    #[serde(default = "default_max_batch_delay_ms")]
    pub max_batch_delay_ms: f64,
    /// Bound of the version's queue; a full queue answers `overloaded`.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Skip the wait while recent batches found no company (a lone client then pays no
    /// delay), probing now and then; `false` always waits `max_batch_delay_ms`.
    #[serde(default = "default_adaptive_delay")]
    pub adaptive_delay: bool,
    /// Executor threads taking batches from the version's one queue, each with the model's
    /// weights shared read-only (Triton's `instance_group { count }`): a number, or `"auto"`
    /// (one per core).
    #[serde(default)]
    pub instances: Instances,
    /// Batch sizes worth waiting for (Triton's `preferred_batch_size`): gathering ends once a
    /// batch holds the largest of them, before `max_batch_size` and the delay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_batch_sizes: Vec<usize>,
    /// Threads each instance's forward passes use (the intra-op threads of ONNX Runtime and
    /// PyTorch): a number, or `"auto"`: with one instance, the process's shared pool (every
    /// core); with several, the cores divided among them, each instance on a pool of its own.
    #[serde(default)]
    pub threads_per_instance: Threads,
}

impl BatchingSpec {
    /// The size of each instance's own thread pool on this machine (`threads_per_instance`
    /// resolved against `instances` and the cores the process may use); `None`: the shared pool.
    pub fn instance_pool_size(&self) -> Option<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads_per_instance
            .pool_size(self.instances.resolve(), cores)
    }
}

impl Default for BatchingSpec {
    fn default() -> Self {
        Self {
            max_batch_size: default_max_batch_size(),
            max_batch_delay_ms: default_max_batch_delay_ms(),
            queue_capacity: default_queue_capacity(),
            adaptive_delay: default_adaptive_delay(),
            instances: Instances::default(),
            threads_per_instance: Threads::default(),
            preferred_batch_sizes: Vec::new(),
        }
    }
}

fn default_max_batch_size() -> usize {
    32
}
fn default_max_batch_delay_ms() -> f64 {
    2.0
}
fn default_queue_capacity() -> usize {
    256
}
fn default_adaptive_delay() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_restart_after_failed_batches() -> u32 {
    20
}
fn default_allow_timeout_override() -> bool {
    true
}

/// Bounds of the `model.toml` values that size memory or time: a value outside is refused
/// naming its key, never allocated.
pub const MAX_BATCH_SIZE: usize = 4096;
/// Most executor threads (`batching.instances`) one version may run.
pub const MAX_INSTANCES: usize = 64;
/// Most threads of one instance's own pool (`batching.threads_per_instance`), and of all a
/// version's instance pools together.
pub const MAX_THREADS_PER_INSTANCE: usize = 256;
pub const MAX_QUEUE_CAPACITY: usize = 65_536;
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
pub const MAX_BATCH_DELAY_MS: f64 = 10_000.0;

/// The most values one item of a tensor may hold (2^28 floats, 1 GiB).
pub const MAX_ITEM_LEN: usize = 1 << 28;

/// Whether `name` may name a model or a version: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, so it is
/// one path component that never climbs out of the repository.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl BatchingSpec {
    pub fn max_batch_delay(&self) -> Duration {
        Duration::from_secs_f64(self.max_batch_delay_ms / 1000.0)
    }

    /// Whether the model has a batch dimension (`max_batch_size` > 0).
    pub fn is_batched(&self) -> bool {
        self.max_batch_size > 0
    }

    /// Most rows of one forward pass: `max_batch_size`, or 1 for a model without a batch
    /// dimension (each request runs alone).
    pub fn max_rows(&self) -> usize {
        self.max_batch_size.max(1)
    }
}

impl ModelSpec {
    /// Reads and validates `<dir>/model.toml`.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        Self::from_file(&dir.join(SPEC_FILE))
    }

    /// Reads and validates a `model.toml` (at most [`MAX_SPEC_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        use std::io::Read;
        let unreadable =
            |e: String| ModelError::Load(format!("cannot read {}: {e}", path.display()));
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(|e| unreadable(e.to_string()))?
            .take(MAX_SPEC_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| unreadable(e.to_string()))?;
        if text.len() as u64 > MAX_SPEC_BYTES {
            return Err(unreadable(format!("larger than {MAX_SPEC_BYTES} bytes")));
        }
        Self::from_toml(&text).map_err(|e| match e {
            ModelError::Load(msg) => ModelError::Load(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let mut spec: ModelSpec =
            toml::from_str(text).map_err(|e| ModelError::Load(e.to_string()))?;
        spec.adopt_legacy_tensors()?;
        spec.validate()?;
        Ok(spec)
    }

    /// Moves an older file's `[input]` / `[output]` into `inputs` / `outputs`.
    pub fn adopt_legacy_tensors(&mut self) -> Result<(), ModelError> {
        for (legacy, list, kind) in [
            (&mut self.legacy_input, &mut self.inputs, "input"),
            (&mut self.legacy_output, &mut self.outputs, "output"),
        ] {
            if let Some(tensor) = legacy.take() {
                if !list.is_empty() {
                    return Err(ModelError::Load(format!(
                        "give either [{kind}] or [[{kind}s]] tables, not both"
                    )));
                }
                list.push(tensor);
            }
        }
        Ok(())
    }

    /// The first input (the only one of single-input architectures). Validation guarantees
    /// one.
    pub fn input(&self) -> &TensorSpec {
        &self.inputs[0]
    }

    /// The first output (the only one of single-output architectures).
    pub fn output(&self) -> &TensorSpec {
        &self.outputs[0]
    }

    /// The input named `name`.
    pub fn input_named(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The output named `name`.
    pub fn output_named(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// For architectures of one fixed-shape input of `inputs` datatypes and one fixed-shape
    /// output of `output` datatype: `Err` naming the architecture and what it takes.
    pub fn require_single(
        &self,
        architecture: &str,
        inputs: &[DataType],
        output: DataType,
    ) -> Result<(), ModelError> {
        let fail = |what: String| Err(ModelError::Load(format!("{architecture}: {what}")));
        if self.inputs.len() != 1 || self.outputs.len() != 1 {
            return fail(format!(
                "takes one input and gives one output; model.toml declares {} and {}",
                self.inputs.len(),
                self.outputs.len()
            ));
        }
        let (input, out) = (self.input(), self.output());
        if !inputs.contains(&input.datatype) {
            let names: Vec<&str> = inputs.iter().map(|d| d.as_str()).collect();
            return fail(format!(
                "input '{}' is {}; this architecture takes {}",
                input.name,
                input.datatype,
                names.join(" or ")
            ));
        }
        if out.datatype != output {
            return fail(format!(
                "output '{}' is {}; this architecture gives {output}",
                out.name, out.datatype
            ));
        }
        if input.optional {
            return fail(format!("input '{}' cannot be optional", input.name));
        }
        for t in [input, out] {
            if t.fixed_shape().is_none() {
                return fail(format!(
                    "'{}' has shape {:?}; this architecture needs every dimension fixed",
                    t.name, t.shape
                ));
            }
        }
        if !self.batching.is_batched() {
            return fail("needs a batch dimension (batching.max_batch_size >= 1)".into());
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let fail = |msg: String| Err(ModelError::Load(msg));
        if self.legacy_input.is_some() || self.legacy_output.is_some() {
            return fail("[input] / [output] must be adopted into inputs / outputs".into());
        }
        // An `onnx` version may leave its signature to the graph (filled at load).
        let from_graph = self.architecture == "onnx";
        if !(from_graph && self.inputs.is_empty()) {
            signature::validate_list("inputs", &self.inputs).map_err(ModelError::Load)?;
        }
        if !(from_graph && self.outputs.is_empty()) {
            signature::validate_list("outputs", &self.outputs).map_err(ModelError::Load)?;
        }
        let batching = &self.batching;
        if batching.max_batch_size > MAX_BATCH_SIZE {
            return fail(format!(
                "batching.max_batch_size must be within 0..={MAX_BATCH_SIZE} (0: no batch \
                 dimension)"
            ));
        }
        if !(batching.max_batch_delay_ms >= 0.0
            && batching.max_batch_delay_ms <= MAX_BATCH_DELAY_MS)
        {
            return fail(format!(
                "batching.max_batch_delay_ms must be within 0..={MAX_BATCH_DELAY_MS}"
            ));
        }
        if let Some(bad) = batching
            .preferred_batch_sizes
            .iter()
            .find(|&&n| n == 0 || n > batching.max_rows())
        {
            return fail(format!(
                "batching.preferred_batch_sizes: {bad} is not within 1..={} (max_batch_size)",
                batching.max_rows()
            ));
        }
        if !(1..=MAX_QUEUE_CAPACITY).contains(&batching.queue_capacity) {
            return fail(format!(
                "batching.queue_capacity must be within 1..={MAX_QUEUE_CAPACITY}"
            ));
        }
        let instances = batching.instances.resolve();
        if let Some(threads) = batching.instance_pool_size() {
            if instances * threads > MAX_THREADS_PER_INSTANCE {
                return fail(format!(
                    "batching.instances ({instances}) times batching.threads_per_instance \
                     ({threads}) must be at most {MAX_THREADS_PER_INSTANCE} threads"
                ));
            }
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return fail(format!("timeout_ms must be within 1..={MAX_TIMEOUT_MS}"));
        }
        self.validate_pins()?;
        range::validate(self)
    }

    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Reads an architecture parameter, or `default` when absent.
    pub fn param<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, ModelError> {
        match self.params.get(key) {
            None => Ok(default),
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|e| ModelError::Load(format!("params.{key}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests;
