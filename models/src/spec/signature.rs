//! A version's signature: its named inputs and outputs (`[[inputs]]` / `[[outputs]]` in
//! `model.toml`, or the single `[input]` / `[output]` of older files), each a [`TensorSpec`] of
//! a KServe v2 datatype and a shape where `-1` marks a variable dimension, and the checks a
//! declared signature must pass before anything is built.

use serde::{Deserialize, Serialize};

use super::MAX_ITEM_LEN;
use crate::tensor::DataType;

/// The most inputs, or outputs, one signature may declare.
pub const MAX_TENSORS: usize = 64;
/// The longest tensor name.
pub const MAX_TENSOR_NAME: usize = 256;
/// The most dimensions of one tensor.
pub const MAX_RANK: usize = 16;
/// A variable dimension in a declared shape.
pub const VARIABLE: i64 = -1;

/// One named tensor of the signature. `shape` is per item when the model batches (a request
/// carries `[n, ..shape]`), the whole tensor when it does not (`batching.max_batch_size = 0`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    #[serde(default = "default_datatype")]
    pub datatype: DataType,
    /// Each dimension a size, or `-1` for any size.
    pub shape: Vec<i64>,
    /// An input the request may leave out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Refuse NaN and infinities in this input (accepted by default, as Triton does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finite: bool,
    /// Inclusive value range the input must lie in, if any (implies `finite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Class names, one per output value, for classifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Also accept `UINT8` values (0–255), scaled to `[0, 1]` by the preprocess stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_uint8: bool,
    /// The shape the model itself takes or gives, when it differs from `shape` (what clients
    /// send and receive) by its layout only (Triton's `reshape`): same number of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reshape: Option<Vec<i64>>,
}

fn default_datatype() -> DataType {
    DataType::F32
}

impl TensorSpec {
    /// A required tensor of `datatype` and fixed `shape`, with no checks.
    pub fn new(name: impl Into<String>, datatype: DataType, shape: &[usize]) -> Self {
        Self {
            name: name.into(),
            datatype,
            shape: shape.iter().map(|&d| d as i64).collect(),
            optional: false,
            finite: false,
            min: None,
            max: None,
            labels: Vec::new(),
            accept_uint8: false,
            reshape: None,
        }
    }

    /// The shape when every dimension is fixed.
    pub fn fixed_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect()
    }

    /// Values per item (product of `shape`); 0 when a dimension is variable, `usize::MAX` when
    /// the product overflows (which validation refuses).
    pub fn item_len(&self) -> usize {
        let Some(shape) = self.fixed_shape() else {
            return 0;
        };
        shape
            .iter()
            .try_fold(1usize, |len, &dim| len.checked_mul(dim))
            .unwrap_or(usize::MAX)
    }

    /// Whether a value check applies to this input (`finite`, `min` or `max`).
    pub fn checks_values(&self) -> bool {
        self.finite || self.min.is_some() || self.max.is_some()
    }

    /// Checks the declaration (`field` is its place in `model.toml`, e.g. `inputs[1]`).
    pub(super) fn validate(&self, field: &str) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > MAX_TENSOR_NAME {
            return Err(format!("{field}.name must be 1..={MAX_TENSOR_NAME} bytes"));
        }
        // `[]` is a scalar (per row, when the model batches).
        if self.shape.len() > MAX_RANK {
            return Err(format!("{field}.shape must have 0..={MAX_RANK} dimensions"));
        }
        if let Some(bad) = self.shape.iter().find(|&&d| d < 1 && d != VARIABLE) {
            return Err(format!(
                "{field}.shape {:?}: dimension {bad} (each is at least 1, or -1 for any size)",
                self.shape
            ));
        }
        let fixed: Vec<usize> = self
            .shape
            .iter()
            .filter(|&&d| d != VARIABLE)
            .map(|&d| d as usize)
            .collect();
        let len = fixed
            .iter()
            .try_fold(1usize, |len, &dim| len.checked_mul(dim));
        if len.is_none_or(|len| len > MAX_ITEM_LEN) {
            return Err(format!(
                "{field}.shape {:?} holds more than {MAX_ITEM_LEN} values per item",
                self.shape
            ));
        }
        if let Some(reshape) = &self.reshape {
            if reshape.len() > MAX_RANK || reshape.iter().any(|&d| d < 1 && d != VARIABLE) {
                return Err(format!(
                    "{field}.reshape {reshape:?}: 0..={MAX_RANK} dimensions, each at least 1 or -1"
                ));
            }
            let count = |dims: &[i64]| {
                dims.iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            };
            if let (Some(a), Some(b)) = (count(&self.shape), count(reshape)) {
                if a != b {
                    return Err(format!(
                        "{field}.reshape {reshape:?} holds {b} values; shape {:?} holds {a}",
                        self.shape
                    ));
                }
            }
            if reshape.iter().filter(|&&d| d == VARIABLE).count() > 1 {
                return Err(format!(
                    "{field}.reshape {reshape:?}: at most one -1 (it is inferred)"
                ));
            }
        }
        if self.accept_uint8 && self.datatype != DataType::F32 {
            return Err(format!("{field}.accept_uint8 applies to FP32 inputs"));
        }
        if (self.finite || self.min.is_some() || self.max.is_some()) && !self.datatype.is_numeric()
        {
            return Err(format!(
                "{field}: finite, min and max apply to numeric data; its datatype is {}",
                self.datatype
            ));
        }
        Ok(())
    }
}

/// Checks a list of inputs or outputs (`kind` is `inputs` or `outputs`): at least one, at most
/// [`MAX_TENSORS`], each valid, no name twice.
pub(super) fn validate_list(kind: &str, tensors: &[TensorSpec]) -> Result<(), String> {
    if tensors.is_empty() || tensors.len() > MAX_TENSORS {
        return Err(format!(
            "a model declares 1..={MAX_TENSORS} {kind} ([[{kind}]] tables, or one [{}])",
            &kind[..kind.len() - 1]
        ));
    }
    for (index, tensor) in tensors.iter().enumerate() {
        tensor.validate(&format!("{kind}[{index}]"))?;
        if tensors[..index].iter().any(|t| t.name == tensor.name) {
            return Err(format!("{kind} name '{}' appears twice", tensor.name));
        }
    }
    if kind == "outputs" {
        if let Some(t) = tensors.iter().find(|t| t.optional || t.checks_values()) {
            return Err(format!(
                "output '{}': optional, finite, min and max apply to inputs",
                t.name
            ));
        }
    }
    for tensor in tensors {
        if !tensor.labels.is_empty() && tensor.labels.len() != tensor.item_len() {
            return Err(format!(
                "{kind} '{}': labels has {} names for {} values",
                tensor.name,
                tensor.labels.len(),
                tensor.item_len()
            ));
        }
    }
    Ok(())
}
