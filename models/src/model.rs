//! The `InferenceModel` seam: what the actors see of a model (plain data in and out). Which
//! architecture builds one is `arch`'s registry ([`crate::arch::load_model`]).

use crate::error::ModelError;
use crate::input::{InputData, ModelOutput};

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

    /// Another instance of this model for another executor thread of the same version
    /// (`batching.instances`), sharing its weights read-only: burn tensors are reference-counted,
    /// so a cloned network holds no second copy. `None`: it cannot be shared, and the version
    /// loads it once more for each extra instance.
    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        None
    }
}
