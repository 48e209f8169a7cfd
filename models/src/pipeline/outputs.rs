//! The model's side of the signature: the inputs of a warm-up pass, and the check that what a
//! forward pass gave is what `model.toml` declares (a model that answers otherwise fails its
//! batch with an inference error, never a malformed response).

use crate::error::ModelError;
use crate::spec::{ModelSpec, VARIABLE};
use crate::tensor::{DataType, NamedTensor, TensorData};

/// One item of every required input: zeros (a short text for BYTES), variable dimensions 1.
pub fn warm_up_inputs(spec: &ModelSpec) -> Vec<NamedTensor> {
    spec.inputs
        .iter()
        .filter(|t| !t.optional)
        .map(|t| {
            let mut shape: Vec<usize> = Vec::with_capacity(t.shape.len() + 1);
            if spec.batching.is_batched() {
                shape.push(1);
            }
            shape.extend(
                t.shape
                    .iter()
                    .map(|&d| if d == VARIABLE { 1 } else { d as usize }),
            );
            let count = shape.iter().product();
            let data = match t.datatype {
                DataType::Bytes => TensorData::Bytes(vec![b"warm up".to_vec(); count]),
                other => TensorData::zeros(other, count),
            };
            NamedTensor::new(t.name.clone(), shape, data)
        })
        .collect()
}

/// The outputs a request asks for: each one the model declares, once.
pub fn check_requested_outputs(spec: &ModelSpec, names: &[String]) -> Result<(), ModelError> {
    for (index, name) in names.iter().enumerate() {
        if spec.output_named(name).is_none() {
            let declared: Vec<String> = spec
                .outputs
                .iter()
                .map(|t| format!("'{}'", t.name))
                .collect();
            return Err(ModelError::InvalidInput(format!(
                "unknown output '{}'; this model gives {}",
                name.chars().take(64).collect::<String>(),
                declared.join(", ")
            )));
        }
        if names[..index].contains(name) {
            return Err(ModelError::InvalidInput(format!(
                "output '{name}' is asked for twice"
            )));
        }
    }
    Ok(())
}

/// Checks a forward pass's outputs against the signature: each a declared output, once, of its
/// datatype, with the declared dimensions (after the batch dimension of `rows` rows when the
/// model batches).
pub fn check_outputs(
    spec: &ModelSpec,
    outputs: &[NamedTensor],
    rows: usize,
) -> Result<(), ModelError> {
    let fail = |message: String| Err(ModelError::Inference(message));
    for (index, output) in outputs.iter().enumerate() {
        let Some(declared) = spec.output_named(&output.name) else {
            return fail(format!(
                "the model gave output '{}', which model.toml does not declare",
                output.name
            ));
        };
        if outputs[..index].iter().any(|o| o.name == output.name) {
            return fail(format!("the model gave output '{}' twice", output.name));
        }
        if output.datatype() != declared.datatype {
            return fail(format!(
                "output '{}' is {}; model.toml declares {}",
                output.name,
                output.datatype(),
                declared.datatype
            ));
        }
        let dims = if spec.batching.is_batched() {
            if output.shape.first() != Some(&rows) {
                return fail(format!(
                    "output '{}' has shape {:?} for {rows} rows",
                    output.name, output.shape
                ));
            }
            &output.shape[1..]
        } else {
            &output.shape[..]
        };
        let fits = dims.len() == declared.shape.len()
            && dims
                .iter()
                .zip(&declared.shape)
                .all(|(&d, &want)| want == VARIABLE || d as i64 == want);
        if !fits {
            return fail(format!(
                "output '{}' has item shape {dims:?}; model.toml declares {:?}",
                output.name, declared.shape
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_must_be_what_the_signature_declares() {
        let spec = ModelSpec::from_toml(
            "architecture = \"identity\"\n\
             [[inputs]]\nname = \"a\"\ndatatype = \"INT32\"\nshape = [-1, 2]\n\
             [[inputs]]\nname = \"t\"\ndatatype = \"BYTES\"\nshape = [1]\noptional = true\n\
             [[outputs]]\nname = \"b\"\ndatatype = \"INT32\"\nshape = [-1, 2]\n\
             [[outputs]]\nname = \"u\"\ndatatype = \"BYTES\"\nshape = [1]\n",
        )
        .expect("spec");
        let warm = warm_up_inputs(&spec);
        assert_eq!(warm.len(), 1, "the optional input is left out");
        assert_eq!(warm[0].shape, vec![1, 1, 2]);
        assert_eq!(warm[0].data, TensorData::I32(vec![0, 0]));
        let good = NamedTensor::new("b", vec![3, 5, 2], TensorData::I32(vec![0; 30]));
        assert_eq!(check_outputs(&spec, std::slice::from_ref(&good), 3), Ok(()));
        let cases = [
            (
                NamedTensor::new("zz", vec![3, 1, 2], TensorData::I32(vec![0; 6])),
                "does not declare",
            ),
            (
                NamedTensor::new("b", vec![3, 1, 2], TensorData::I64(vec![0; 6])),
                "is INT64",
            ),
            (
                NamedTensor::new("b", vec![2, 1, 2], TensorData::I32(vec![0; 4])),
                "for 3 rows",
            ),
            (
                NamedTensor::new("b", vec![3, 1, 3], TensorData::I32(vec![0; 9])),
                "item shape [1, 3]",
            ),
        ];
        for (output, says) in cases {
            let err = check_outputs(&spec, &[output], 3).unwrap_err().to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
        let twice = check_outputs(&spec, &[good.clone(), good], 3).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
    }
}
