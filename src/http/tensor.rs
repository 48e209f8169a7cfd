//! `NestedTensor`: the simple API's JSON array of numbers (flat or nested to any depth) read
//! straight into a flat row-major `Vec<f32>`, or of strings (text items), plus the shape its
//! nesting implies (ragged nesting and mixed numbers/strings are rejected): the KServe core's
//! JSON reader ([`InferredData`]) with the datatype its elements say.

use burnserve_models::TensorData;
use serde::de::{self, DeserializeSeed};
use serde::{Deserialize, Deserializer};

use crate::kserve::json::InferredData;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NestedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Text items, when the leaves are strings (then `data` is empty).
    pub texts: Vec<String>,
}

impl NestedTensor {
    /// The items as model input: strings become BYTES (a lone string is one item).
    pub fn into_input(self) -> (Vec<usize>, TensorData) {
        if self.texts.is_empty() {
            (self.shape, TensorData::F32(self.data))
        } else {
            let shape = if self.shape.is_empty() {
                vec![1]
            } else {
                self.shape
            };
            (
                shape,
                TensorData::Bytes(self.texts.into_iter().map(String::into_bytes).collect()),
            )
        }
    }
}

impl<'de> Deserialize<'de> for NestedTensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = InferredData.deserialize(deserializer)?;
        match json.data {
            TensorData::Bytes(items) => Ok(NestedTensor {
                shape: json.nesting,
                data: Vec::new(),
                texts: items
                    .into_iter()
                    .map(|item| String::from_utf8_lossy(&item).into_owned())
                    .collect(),
            }),
            TensorData::F32(_) if json.nesting.is_empty() => Err(de::Error::custom(
                "expected an array of numbers, found a single number",
            )),
            TensorData::F32(values) => Ok(NestedTensor {
                shape: json.nesting,
                data: values,
                texts: Vec::new(),
            }),
            other => Err(de::Error::custom(format!(
                "expected numbers or strings, found {}",
                other.datatype()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NestedTensor, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn reads_flat_and_nested_arrays() {
        assert_eq!(
            parse("[1, 2.5, -3]").unwrap(),
            NestedTensor {
                shape: vec![3],
                data: vec![1.0, 2.5, -3.0],
                texts: vec![],
            }
        );
        let nested = parse("[[1, 2], [3, 4], [5, 6]]").unwrap();
        assert_eq!(nested.shape, vec![3, 2]);
        assert_eq!(nested.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(parse("[[[1], [2]]]").unwrap().shape, vec![1, 2, 1]);
        assert_eq!(parse("[]").unwrap().shape, vec![0]);
    }

    #[test]
    fn rejects_ragged_mixed_and_non_numeric_data() {
        assert!(parse("[[1, 2], [3]]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[[1, 2], 3]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[1, [2]]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[1, \"a\"]")
            .unwrap_err()
            .to_string()
            .contains("mixes"));
        assert!(parse("[\"a\", 1]")
            .unwrap_err()
            .to_string()
            .contains("mixes"));
        assert!(parse("[[\"a\"], \"b\"]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[true]").is_err());
        assert!(parse("5")
            .unwrap_err()
            .to_string()
            .contains("single number"));
        assert!(parse("[NaN]").is_err());
    }

    #[test]
    fn reads_strings_as_text_items() {
        let (shape, data) = parse("[\"Hello world\", \"\"]").unwrap().into_input();
        assert_eq!(shape, vec![2]);
        assert_eq!(
            data,
            TensorData::Bytes(vec![b"Hello world".to_vec(), Vec::new()])
        );
        let (shape, data) = parse("\"one\"").unwrap().into_input();
        assert_eq!(
            (shape, data),
            (vec![1], TensorData::Bytes(vec![b"one".to_vec()]))
        );
        let (shape, data) = parse("[1, 2]").unwrap().into_input();
        assert_eq!((shape, data), (vec![2], TensorData::F32(vec![1.0, 2.0])));
    }

    #[test]
    fn out_of_range_values_become_infinite_for_validation_to_reject() {
        let v = parse("[1e39]").unwrap();
        assert!(v.data[0].is_infinite());
    }
}
