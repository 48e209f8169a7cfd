//! `identity`: returns its input unchanged (no weights). A real model for measuring what the
//! runtime itself costs (HTTP, routing, queueing, batching) with no compute behind it.

use crate::error::ModelError;
use crate::input::{InputData, ModelOutput};
use crate::model::InferenceModel;
use crate::spec::ModelSpec;

#[derive(Debug)]
pub struct Identity {
    item_len: usize,
}

pub fn load(spec: &ModelSpec) -> Result<Box<dyn InferenceModel>, ModelError> {
    if spec.input.item_len() != spec.output.item_len() {
        return Err(ModelError::Load(
            "identity: input and output sizes must match".into(),
        ));
    }
    Ok(Box::new(Identity {
        item_len: spec.input.item_len(),
    }))
}

impl InferenceModel for Identity {
    fn forward(&mut self, input: InputData, rows: usize) -> Result<ModelOutput, ModelError> {
        let values = input.into_fp32()?;
        if values.len() != rows * self.item_len {
            return Err(ModelError::Inference(format!(
                "batch has {} values for {rows} rows of {}",
                values.len(),
                self.item_len
            )));
        }
        Ok(values.into())
    }

    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        Some(Box::new(Identity {
            item_len: self.item_len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_its_input_and_refuses_mismatched_specs() {
        let spec = |out: usize| {
            ModelSpec::from_toml(&format!(
                "architecture = \"identity\"\n[input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [{out}]\n"
            ))
            .expect("spec")
        };
        let mut model = load(&spec(2)).expect("loads");
        let out = model
            .forward(InputData::Fp32(vec![1.0, 2.0, 3.0, 4.0]), 2)
            .expect("forward");
        assert_eq!(out.values, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(model.forward(InputData::Fp32(vec![1.0]), 2).is_err());
        assert!(load(&spec(3)).is_err());
    }
}
