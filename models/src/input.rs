//! What a request gives and what crosses the model seam: [`RequestInput`] (the client's tensors,
//! named or not, before they are checked against the signature), the checked inputs a forward
//! pass takes (named tensors with the batch dimension), and [`ModelOutput`] (named tensors, plus
//! tokens per row for text models).

use crate::error::ModelError;
use crate::tensor::{DataType, NamedTensor, TensorData};

/// One tensor of a request as the client gave it: its name (`None` for the unnamed single
/// input of `/v1/predict`), its shape and data (whose datatype is the one it declared).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTensor {
    pub name: Option<String>,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// A request's input tensors, in the order the client gave them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestInput {
    pub tensors: Vec<RequestTensor>,
}

impl RequestInput {
    /// One unnamed FP32 tensor.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self::unnamed(shape, TensorData::F32(data))
    }

    /// One unnamed tensor of any datatype.
    pub fn unnamed(shape: Vec<usize>, data: TensorData) -> Self {
        Self {
            tensors: vec![RequestTensor {
                name: None,
                shape,
                data,
            }],
        }
    }

    /// `n` text items, shape `[n]`, unnamed.
    pub fn texts(texts: Vec<String>) -> Self {
        let shape = vec![texts.len()];
        Self::unnamed(
            shape,
            TensorData::Bytes(texts.into_iter().map(String::into_bytes).collect()),
        )
    }

    /// Named tensors as the v2 protocol sends them.
    pub fn named(tensors: Vec<NamedTensor>) -> Self {
        Self {
            tensors: tensors
                .into_iter()
                .map(|t| RequestTensor {
                    name: Some(t.name),
                    shape: t.shape,
                    data: t.data,
                })
                .collect(),
        }
    }

    /// Elements in every tensor together.
    pub fn elements(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }
}

/// The first input's FP32 values (single-input architectures).
pub fn take_f32(inputs: Vec<NamedTensor>) -> Result<Vec<f32>, ModelError> {
    match inputs.into_iter().next().map(|t| t.data) {
        Some(TensorData::F32(values)) => Ok(values),
        other => Err(ModelError::SchemaMismatch(format!(
            "this model takes {} values, not {}",
            DataType::F32,
            other.map_or("nothing".to_string(), |d| d.datatype().to_string())
        ))),
    }
}

/// The first input's BYTES elements as UTF-8 text (text architectures).
pub fn take_texts(inputs: Vec<NamedTensor>) -> Result<Vec<String>, ModelError> {
    match inputs.into_iter().next().map(|t| t.data) {
        Some(TensorData::Bytes(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                String::from_utf8(item).map_err(|_| {
                    ModelError::InvalidInput(format!("text item {index} is not UTF-8"))
                })
            })
            .collect(),
        other => Err(ModelError::SchemaMismatch(format!(
            "this model takes {} (text) items, not {}",
            DataType::Bytes,
            other.map_or("nothing".to_string(), |d| d.datatype().to_string())
        ))),
    }
}

/// What one forward pass returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelOutput {
    /// Every output the model computed, each with the batch dimension where it has one.
    pub tensors: Vec<NamedTensor>,
    /// Tokens each row was encoded to (text models; empty for others).
    pub tokens: Vec<usize>,
}

impl ModelOutput {
    /// One FP32 output `name` of `rows` rows shaped `item` each.
    pub fn f32(name: &str, rows: usize, item: &[usize], values: Vec<f32>) -> Self {
        let mut shape = Vec::with_capacity(item.len() + 1);
        shape.push(rows);
        shape.extend_from_slice(item);
        Self {
            tensors: vec![NamedTensor::new(name, shape, TensorData::F32(values))],
            tokens: Vec::new(),
        }
    }

    /// The values of output `name` when it is FP32.
    pub fn f32_values(&self, name: &str) -> Option<&[f32]> {
        self.tensors.iter().find(|t| t.name == name).and_then(|t| {
            if let TensorData::F32(values) = &t.data {
                Some(values.as_slice())
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_input_helpers_take_the_right_kind() {
        let floats = vec![NamedTensor::new(
            "x",
            vec![1, 2],
            TensorData::F32(vec![1.0, 2.0]),
        )];
        assert_eq!(take_f32(floats.clone()).unwrap(), vec![1.0, 2.0]);
        assert_eq!(
            take_texts(floats).unwrap_err().error_type().as_str(),
            "invalid_input"
        );
        let texts = RequestInput::texts(vec!["a".into(), "é".into()]);
        let named = vec![NamedTensor::new(
            "t",
            vec![2],
            texts.tensors[0].data.clone(),
        )];
        assert_eq!(take_texts(named).unwrap(), vec!["a", "é"]);
        let bad = vec![NamedTensor::new(
            "t",
            vec![1],
            TensorData::Bytes(vec![vec![0xff]]),
        )];
        assert!(take_texts(bad).unwrap_err().to_string().contains("UTF-8"));
        let out = ModelOutput::f32("y", 2, &[1], vec![3.0, 4.0]);
        assert_eq!(out.tensors[0].shape, vec![2, 1]);
        assert_eq!(out.f32_values("y"), Some(&[3.0, 4.0][..]));
        assert_eq!(out.f32_values("z"), None);
    }
}
