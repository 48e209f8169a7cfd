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

    /// [`forward`](Self::forward) when only the outputs named in `wanted` are needed (`None`:
    /// every output; the batch's requests asked for these and no others). A model that can
    /// leave the others uncomputed does; by default every output is computed and the responses
    /// give only what each request asked for.
    fn forward_wanted(
        &mut self,
        inputs: Vec<NamedTensor>,
        rows: usize,
        wanted: Option<&[String]>,
    ) -> Result<ModelOutput, ModelError> {
        let _ = wanted;
        self.forward(inputs, rows)
    }

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

/// Runs a model of one input on `rows` rows of FP32 `values` (row-major items of the input's
/// shape) and answers its first output's values: tools, tests and benches, outside the runtime.
pub fn forward_f32(
    model: &mut dyn InferenceModel,
    spec: &crate::ModelSpec,
    values: Vec<f32>,
    rows: usize,
) -> Result<Vec<f32>, ModelError> {
    let input = crate::tensor::TensorData::F32(values);
    first_values(model, spec, input, rows)
}

/// Runs a text model on `texts` (one row each) and answers its first output's values.
pub fn forward_texts(
    model: &mut dyn InferenceModel,
    spec: &crate::ModelSpec,
    texts: &[&str],
) -> Result<Vec<f32>, ModelError> {
    let input =
        crate::tensor::TensorData::Bytes(texts.iter().map(|t| t.as_bytes().to_vec()).collect());
    first_values(model, spec, input, texts.len())
}

fn first_values(
    model: &mut dyn InferenceModel,
    spec: &crate::ModelSpec,
    data: crate::tensor::TensorData,
    rows: usize,
) -> Result<Vec<f32>, ModelError> {
    let declared = spec.input();
    let mut shape = vec![rows];
    shape.extend(declared.fixed_shape().unwrap_or_default());
    let inputs = vec![NamedTensor::new(declared.name.clone(), shape, data)];
    let output = model.forward(inputs, rows)?;
    match output.tensors.into_iter().next().map(|t| t.data) {
        Some(crate::tensor::TensorData::F32(values)) => Ok(values),
        _ => Err(ModelError::Inference("the first output is not FP32".into())),
    }
}
