//! Which outputs a response gives and how, the same for every protocol: the ones the request
//! asked for, in its order (every output the model gave, in the signature's order, when it
//! asked for none), each as JSON or binary data (HTTP; gRPC answers raw contents always).

use burnserve_actors::InferError;
use burnserve_models::{ModelSpec, NamedTensor};

use super::json::first_non_utf8;
use super::request::RequestedOutput;

/// One output of a response.
#[derive(Debug)]
pub struct Answer {
    pub tensor: NamedTensor,
    /// Written as binary data after the JSON header (HTTP).
    pub binary: bool,
}

/// The outputs to answer with, from those the model gave. `binary_all`: every output as binary
/// data (`parameters.binary_data_output`); an output's own `binary_data` wins over it.
/// `json_only`: the protocol writes non-binary outputs as JSON, which cannot carry BYTES
/// elements that are not UTF-8 text.
/// An output asked for with `classification: k` is its top `k` classes (`classify`), labelled
/// from `spec`.
pub fn select(
    outputs: Vec<NamedTensor>,
    requested: &[RequestedOutput],
    (binary_all, json): (bool, bool),
    spec: &ModelSpec,
) -> Result<Vec<Answer>, InferError> {
    let answers: Vec<Answer> = if requested.is_empty() {
        outputs
            .into_iter()
            .map(|tensor| Answer {
                tensor,
                binary: binary_all,
            })
            .collect()
    } else {
        let mut outputs: Vec<Option<NamedTensor>> = outputs.into_iter().map(Some).collect();
        requested
            .iter()
            .map(|wanted| {
                let tensor = outputs
                    .iter_mut()
                    .find(|o| o.as_ref().is_some_and(|o| o.name == wanted.name))
                    .and_then(Option::take)
                    .ok_or_else(|| {
                        InferError::InvalidInput(format!(
                            "the model gave no output '{}' for this request (an output of an \
                             optional input that was left out)",
                            wanted.name
                        ))
                    })?;
                let tensor = match wanted.classification {
                    Some(k) if k > 0 => {
                        let labels = spec
                            .output_named(&tensor.name)
                            .map_or(&[][..], |t| t.labels.as_slice());
                        super::classify::classify(
                            tensor,
                            k as usize,
                            labels,
                            spec.batching.is_batched(),
                        )?
                    }
                    _ => tensor,
                };
                Ok(Answer {
                    tensor,
                    binary: wanted.binary_data.unwrap_or(binary_all),
                })
            })
            .collect::<Result<_, InferError>>()?
    };
    if json {
        for answer in answers.iter().filter(|a| !a.binary) {
            if let Some(index) = first_non_utf8(&answer.tensor.data) {
                return Err(InferError::InvalidInput(format!(
                    "output '{}': BYTES element {index} is not UTF-8 text, which JSON cannot \
                     carry; ask for it with parameters.binary_data = true",
                    answer.tensor.name
                )));
            }
        }
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use burnserve_models::TensorData;

    use super::*;

    fn outputs() -> Vec<NamedTensor> {
        vec![
            NamedTensor::new("a", vec![1], TensorData::I32(vec![1])),
            NamedTensor::new("b", vec![1], TensorData::Bytes(vec![vec![0xff]])),
        ]
    }

    fn asked(name: &str, binary: Option<bool>) -> RequestedOutput {
        RequestedOutput {
            name: name.into(),
            binary_data: binary,
            classification: None,
        }
    }

    #[test]
    fn outputs_come_as_asked_in_the_order_asked() {
        let spec = burnserve_models::onnx::default_spec().expect("spec");
        let all = select(outputs(), &[], (true, true), &spec).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|a| a.binary));
        let picked = select(
            outputs(),
            &[asked("b", Some(true)), asked("a", None)],
            (false, true),
            &spec,
        )
        .unwrap();
        let names: Vec<(&str, bool)> = picked
            .iter()
            .map(|a| (a.tensor.name.as_str(), a.binary))
            .collect();
        assert_eq!(names, vec![("b", true), ("a", false)]);
        let json = select(outputs(), &[asked("b", None)], (false, true), &spec).unwrap_err();
        assert!(json.to_string().contains("not UTF-8"), "{json}");
        assert!(select(outputs(), &[asked("b", None)], (false, false), &spec).is_ok());
        let gone = select(outputs(), &[asked("c", None)], (false, true), &spec).unwrap_err();
        assert!(gone.to_string().contains("no output 'c'"), "{gone}");
    }
}
