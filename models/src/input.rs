//! What crosses the model seam: `InputData` (dense FP32 values or BYTES text items) going in,
//! `ModelOutput` (row-major FP32 values, plus tokens per row for text models) coming out.

use crate::error::ModelError;

/// The datatype name of dense values (KServe v2 spelling).
pub const FP32: &str = "FP32";
/// The datatype name of text items (KServe v2 spelling).
pub const BYTES: &str = "BYTES";

/// One request's or one batch's items.
#[derive(Debug, Clone, PartialEq)]
pub enum InputData {
    /// Row-major `[rows, item length]` values.
    Fp32(Vec<f32>),
    /// One UTF-8 string per row.
    Bytes(Vec<String>),
}

impl Default for InputData {
    fn default() -> Self {
        InputData::Fp32(Vec::new())
    }
}

impl InputData {
    /// Values (FP32) or strings (BYTES) held.
    pub fn len(&self) -> usize {
        match self {
            InputData::Fp32(values) => values.len(),
            InputData::Bytes(texts) => texts.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> &'static str {
        match self {
            InputData::Fp32(_) => FP32,
            InputData::Bytes(_) => BYTES,
        }
    }

    /// The dense values, or a schema error naming what the model expected.
    pub fn into_fp32(self) -> Result<Vec<f32>, ModelError> {
        match self {
            InputData::Fp32(values) => Ok(values),
            other => Err(ModelError::SchemaMismatch(format!(
                "this model takes {FP32} values, not {}",
                other.datatype()
            ))),
        }
    }

    /// The text items, or a schema error naming what the model expected.
    pub fn into_texts(self) -> Result<Vec<String>, ModelError> {
        match self {
            InputData::Bytes(texts) => Ok(texts),
            other => Err(ModelError::SchemaMismatch(format!(
                "this model takes {BYTES} (text) items, not {}",
                other.datatype()
            ))),
        }
    }

    /// Appends a copy of `other`'s values (or strings), leaving `other` as it was.
    pub fn extend_from(&mut self, other: &InputData) -> Result<(), ModelError> {
        match (self, other) {
            (InputData::Fp32(a), InputData::Fp32(b)) => a.extend_from_slice(b),
            (InputData::Bytes(a), InputData::Bytes(b)) => a.extend_from_slice(b),
            (a, b) => {
                return Err(ModelError::Inference(format!(
                    "cannot batch {} items with {} items",
                    a.datatype(),
                    b.datatype()
                )))
            }
        }
        Ok(())
    }

    /// An empty buffer of the same kind with room for `capacity` values or strings.
    pub fn empty_like(&self, capacity: usize) -> InputData {
        match self {
            InputData::Fp32(_) => InputData::Fp32(Vec::with_capacity(capacity)),
            InputData::Bytes(_) => InputData::Bytes(Vec::with_capacity(capacity)),
        }
    }
}

/// What one forward pass returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelOutput {
    /// Row-major `[rows, output item length]`.
    pub values: Vec<f32>,
    /// Tokens each row was encoded to (text models; empty for dense models).
    pub tokens: Vec<usize>,
}

impl From<Vec<f32>> for ModelOutput {
    fn from(values: Vec<f32>) -> Self {
        Self {
            values,
            tokens: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_the_same_kind() {
        let mut a = InputData::Fp32(vec![1.0]);
        a.extend_from(&InputData::Fp32(vec![2.0, 3.0])).unwrap();
        assert_eq!(a, InputData::Fp32(vec![1.0, 2.0, 3.0]));
        let mut t = InputData::Bytes(vec!["a".into()]);
        t.extend_from(&InputData::Bytes(vec!["b".into()])).unwrap();
        assert_eq!(t.len(), 2);
        let err = t.extend_from(&InputData::Fp32(vec![1.0])).unwrap_err();
        assert_eq!(err.error_type().as_str(), "inference_error");
        assert!(InputData::Fp32(vec![1.0]).into_texts().is_err());
        assert_eq!(
            InputData::Bytes(vec!["x".into()])
                .into_fp32()
                .unwrap_err()
                .error_type()
                .as_str(),
            "invalid_input"
        );
    }
}
