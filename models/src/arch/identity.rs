//! `identity`: echoes each input as the output of the same position in the signature (like
//! Triton's identity backend), any datatype and shape, no weights. The model for measuring what
//! the runtime itself costs (protocols, routing, queueing, batching) with no compute behind it,
//! and for testing every datatype down every protocol path.

use crate::error::ModelError;
use crate::input::ModelOutput;
use crate::model::InferenceModel;
use crate::spec::ModelSpec;
use crate::tensor::NamedTensor;

/// The output name of each input, by the inputs' order.
#[derive(Debug, Clone)]
pub struct Identity {
    pairs: Vec<(String, String)>,
}

/// Builds the echo: input `i` goes to output `i`, which must have the same datatype and shape.
pub fn load(spec: &ModelSpec) -> Result<Box<dyn InferenceModel>, ModelError> {
    if spec.inputs.len() != spec.outputs.len() {
        return Err(ModelError::Load(format!(
            "identity: echoes each input to the output of the same position; model.toml \
             declares {} inputs and {} outputs",
            spec.inputs.len(),
            spec.outputs.len()
        )));
    }
    let mut pairs = Vec::with_capacity(spec.inputs.len());
    for (input, output) in spec.inputs.iter().zip(&spec.outputs) {
        if input.datatype != output.datatype || input.shape != output.shape {
            return Err(ModelError::Load(format!(
                "identity: input '{}' ({} {:?}) and output '{}' ({} {:?}) must have the same \
                 datatype and shape",
                input.name, input.datatype, input.shape, output.name, output.datatype, output.shape
            )));
        }
        pairs.push((input.name.clone(), output.name.clone()));
    }
    Ok(Box::new(Identity { pairs }))
}

impl InferenceModel for Identity {
    fn forward(
        &mut self,
        inputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<ModelOutput, ModelError> {
        self.forward_wanted(inputs, rows, None)
    }

    /// Echoes only the outputs asked for: the other inputs are dropped, not copied out.
    fn forward_wanted(
        &mut self,
        inputs: Vec<NamedTensor>,
        _rows: usize,
        wanted: Option<&[String]>,
    ) -> Result<ModelOutput, ModelError> {
        let is_wanted = |output: &str| wanted.is_none_or(|names| names.iter().any(|n| n == output));
        // Inputs come in the signature's order; optional ones may be absent, and so is their
        // output.
        let tensors = inputs
            .into_iter()
            .filter(|tensor| {
                self.pairs
                    .iter()
                    .find(|(input, _)| *input == tensor.name)
                    .is_none_or(|(_, output)| is_wanted(output))
            })
            .map(|mut tensor| {
                let (_, output) = self
                    .pairs
                    .iter()
                    .find(|(input, _)| *input == tensor.name)
                    .ok_or_else(|| {
                        ModelError::Inference(format!("identity: no input '{}'", tensor.name))
                    })?;
                tensor.name = output.clone();
                Ok(tensor)
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(ModelOutput {
            tensors,
            tokens: Vec::new(),
        })
    }

    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        Some(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    #[test]
    fn echoes_every_input_and_refuses_mismatched_specs() {
        let spec = |out: &str| {
            ModelSpec::from_toml(&format!(
                "architecture = \"identity\"\n\
                 [[inputs]]\nname = \"a\"\ndatatype = \"INT64\"\nshape = [-1]\n\
                 [[inputs]]\nname = \"b\"\ndatatype = \"BYTES\"\nshape = [1]\n\
                 [[outputs]]\nname = \"a_out\"\ndatatype = \"INT64\"\nshape = [-1]\n\
                 [[outputs]]\nname = \"b_out\"\n{out}\n"
            ))
            .expect("spec")
        };
        let mut model = load(&spec("datatype = \"BYTES\"\nshape = [1]")).expect("loads");
        let inputs = vec![
            NamedTensor::new("a", vec![2, 3], TensorData::I64(vec![1, 2, 3, 4, 5, 6])),
            NamedTensor::new("b", vec![2, 1], TensorData::Bytes(vec![vec![0], vec![]])),
        ];
        let out = model.forward(inputs.clone(), 2).expect("forward");
        assert_eq!(out.tensors[0].name, "a_out");
        assert_eq!(out.tensors[1].name, "b_out");
        assert_eq!(out.tensors[0].data, inputs[0].data);
        assert_eq!(out.tensors[1].shape, vec![2, 1]);
        let only_b = model
            .forward_wanted(inputs.clone(), 2, Some(&["b_out".to_string()]))
            .expect("forward");
        let names: Vec<&str> = only_b.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["b_out"], "the output not asked for is not made");
        for bad in [
            "datatype = \"FP32\"\nshape = [1]",
            "datatype = \"BYTES\"\nshape = [2]",
        ] {
            assert!(load(&spec(bad)).is_err(), "{bad}");
        }
    }
}
