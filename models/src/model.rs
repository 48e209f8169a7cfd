//! The `InferenceModel` seam: what the actors see of a model (named, typed tensors in and out). Which
//! architecture builds one is `arch`'s registry ([`crate::arch::load_model`]).

use crate::error::ModelError;
use crate::input::ModelOutput;
use crate::tensor::NamedTensor;

/// A loaded network, owned by one executor thread.
pub trait InferenceModel: Send {
    /// Runs one batch of `rows` items. `inputs` are the inputs the request gave, in the
    /// signature's order, checked against it: each `[rows, ..its shape]` when the model has a
    /// batch dimension (`rows` is 1 and each is its whole shape when it has none). The outputs
    /// are named as the signature names them, each `[rows, ..]` when batched.
    fn forward(&mut self, inputs: Vec<NamedTensor>, rows: usize)
        -> Result<ModelOutput, ModelError>;

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
