//! The `InferenceModel` seam: what the actors see of a model (plain data in and out),
//! and `load_model`, which builds a version's architecture on its device from the repository.

use std::path::Path;

use crate::arch;
use crate::device::Device;
use crate::error::ModelError;
use crate::input::{InputData, ModelOutput};
use crate::spec::ModelSpec;

/// A loaded network, owned by one executor thread.
pub trait InferenceModel: Send {
    /// Runs one batch of `rows` items: FP32 input is row-major `[rows, input item length]`,
    /// BYTES input one string per row; the output values are row-major
    /// `[rows, output item length]`.
    fn forward(&mut self, input: InputData, rows: usize) -> Result<ModelOutput, ModelError>;

    /// Bytes of parameters held on the device.
    fn weight_bytes(&self) -> usize {
        0
    }
}

/// Builds the version described by `spec` (read from `dir`) on `device`.
pub fn load_model(
    spec: &ModelSpec,
    dir: &Path,
    device: Device,
) -> Result<Box<dyn InferenceModel>, ModelError> {
    if !device.is_supported() {
        return Err(ModelError::Load(format!(
            "device {device} needs burnserve built with the `cuda` feature"
        )));
    }
    match spec.architecture.as_str() {
        "mlp" => arch::mlp::load(spec, dir, device),
        "cnn" => arch::cnn::load(spec, dir, device),
        "bert-embedding" => arch::bert::load(spec, dir, device),
        "identity" => arch::identity::load(spec),
        #[cfg(feature = "test-util")]
        fake if fake.starts_with("fake-") => crate::fakes::load(spec),
        other => Err(ModelError::Load(format!(
            "unknown architecture '{other}' (known: {})",
            arch::KNOWN.join(", ")
        ))),
    }
}
