//! The request stages around `forward`: preprocess (UINT8 scaling, flat items for
//! multi-dimensional inputs), validate against the version's schema (name, datatype, shape,
//! finiteness, range; text items for BYTES models).

use crate::error::ModelError;
use crate::input::{InputData, BYTES, FP32};
use crate::spec::ModelSpec;

/// One request's input tensor as plain data: row-major `data` of shape `shape`, where `shape`
/// is either the model's item shape (one item) or `[n, ..item shape]` (n items). Text models
/// take `Bytes` data of shape `[n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInput {
    pub shape: Vec<usize>,
    pub data: InputData,
    /// The tensor name the client gave (v2), checked against the schema when present.
    pub name: Option<String>,
    /// The datatype the client declared (v2), checked against the schema when present.
    pub datatype: Option<String>,
}

impl RequestInput {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            shape,
            data: InputData::Fp32(data),
            name: None,
            datatype: None,
        }
    }

    /// Data of either kind with the shape the client gave.
    pub fn with_data(shape: Vec<usize>, data: InputData) -> Self {
        Self {
            shape,
            data,
            name: None,
            datatype: None,
        }
    }

    /// `n` text items, shape `[n]`.
    pub fn texts(texts: Vec<String>) -> Self {
        Self {
            shape: vec![texts.len()],
            data: InputData::Bytes(texts),
            name: None,
            datatype: None,
        }
    }

    /// A named, typed tensor as the v2 protocol sends it.
    pub fn tensor(name: String, datatype: String, shape: Vec<usize>, data: InputData) -> Self {
        Self {
            shape,
            data,
            name: Some(name),
            datatype: Some(datatype),
        }
    }
}

/// The datatype of 8-bit pixels, scaled to `[0, 1]` where the model accepts them.
pub const UINT8: &str = "UINT8";

/// Preprocesses then validates a request; returns how many items (rows) it holds.
pub fn prepare_input(spec: &ModelSpec, input: &mut RequestInput) -> Result<usize, ModelError> {
    if let (Some(UINT8), true, InputData::Fp32(values)) = (
        input.datatype.as_deref(),
        spec.input.accept_uint8,
        &mut input.data,
    ) {
        if let Some(index) = values
            .iter()
            .position(|v| !(0.0..=255.0).contains(v) || v.fract() != 0.0)
        {
            return Err(ModelError::InvalidInput(format!(
                "UINT8 value {} at flat index {index} is not an integer in 0..=255",
                values[index]
            )));
        }
        values.iter_mut().for_each(|v| *v /= 255.0);
        input.datatype = Some(spec.input.datatype.clone());
    }
    validate_input(spec, input)
}

/// How many items `shape` holds for a model whose items have shape `item`: `item` itself,
/// `[n, ..item]`, or, for multi-dimensional items, flat items `[len]` / `[n, len]`.
fn rows_of(shape: &[usize], item: &[usize]) -> Option<usize> {
    let len: usize = item.iter().product();
    if shape == item || (item.len() > 1 && shape == [len]) {
        Some(1)
    } else if (shape.len() == item.len() + 1 && shape[1..] == item[..])
        || (item.len() > 1 && shape.len() == 2 && shape[1] == len)
    {
        Some(shape[0])
    } else {
        None
    }
}

/// Checks a request against the schema and returns how many items (rows) it holds.
pub fn validate_input(spec: &ModelSpec, input: &RequestInput) -> Result<usize, ModelError> {
    if let Some(name) = input.name.as_deref().filter(|n| *n != spec.input.name) {
        return Err(ModelError::SchemaMismatch(format!(
            "unknown input '{name}'; this model takes '{}'",
            spec.input.name
        )));
    }
    if let Some(datatype) = input
        .datatype
        .as_deref()
        .filter(|d| *d != spec.input.datatype)
    {
        return Err(ModelError::SchemaMismatch(format!(
            "input '{}' has datatype {datatype}; this model takes {}",
            spec.input.name, spec.input.datatype
        )));
    }
    let declared = input
        .shape
        .iter()
        .try_fold(1usize, |total, &dim| total.checked_mul(dim))
        .ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "shape {:?} holds more values than can be addressed",
                input.shape
            ))
        })?;
    if declared != input.data.len() {
        return Err(ModelError::InvalidInput(format!(
            "data has {} {} but shape {:?} needs {declared}",
            input.data.len(),
            if input.data.datatype() == BYTES {
                "strings"
            } else {
                "values"
            },
            input.shape
        )));
    }
    if input.data.is_empty() {
        return Err(ModelError::SchemaMismatch("input holds no items".into()));
    }
    match (&input.data, spec.input.datatype.as_str()) {
        (InputData::Fp32(values), FP32) => validate_values(spec, &input.shape, values),
        (InputData::Bytes(_), BYTES) => validate_texts(spec, &input.shape),
        (data, expected) => Err(ModelError::SchemaMismatch(format!(
            "input '{}' holds {} data; this model takes {expected}{}",
            spec.input.name,
            data.datatype(),
            if expected == BYTES {
                " (strings)"
            } else {
                " (numbers)"
            }
        ))),
    }
}

/// A BYTES input is `[n]` (or `[n, 1]`) strings, one item each.
fn validate_texts(spec: &ModelSpec, shape: &[usize]) -> Result<usize, ModelError> {
    let rows = match shape {
        [n] | [n, 1] => *n,
        _ => {
            return Err(ModelError::SchemaMismatch(format!(
                "input '{}' has shape {shape:?}; text inputs are [n] strings",
                spec.input.name
            )))
        }
    };
    check_rows(spec, rows)
}

fn check_rows(spec: &ModelSpec, rows: usize) -> Result<usize, ModelError> {
    if rows == 0 {
        return Err(ModelError::SchemaMismatch("input holds no items".into()));
    }
    if rows > spec.batching.max_batch_size {
        return Err(ModelError::SchemaMismatch(format!(
            "input holds {rows} items; this model takes at most {} per request (max_batch_size)",
            spec.batching.max_batch_size
        )));
    }
    Ok(rows)
}

fn validate_values(spec: &ModelSpec, shape: &[usize], values: &[f32]) -> Result<usize, ModelError> {
    let item = &spec.input.shape;
    let Some(rows) = rows_of(shape, item) else {
        return Err(ModelError::SchemaMismatch(format!(
            "input '{}' has shape {:?}; the model takes {:?} or [n, {}]",
            spec.input.name,
            shape,
            item,
            item.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let rows = check_rows(spec, rows)?;
    let lo = spec.input.min.unwrap_or(f32::NEG_INFINITY);
    let hi = spec.input.max.unwrap_or(f32::INFINITY);
    // One branch-free pass (it vectorises); the offending index is looked for only on failure.
    let all_valid = values.chunks(64).all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &v| ok & v.is_finite() & (v >= lo) & (v <= hi))
    });
    if all_valid {
        return Ok(rows);
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::InvalidInput(format!(
            "value at flat index {index} is not finite ({})",
            values[index]
        )));
    }
    let index = values
        .iter()
        .position(|v| *v < lo || *v > hi)
        .unwrap_or_default();
    Err(ModelError::SchemaMismatch(format!(
        "value {} at flat index {index} is outside the input range [{lo}, {hi}]",
        values.get(index).copied().unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec::from_toml(
            r#"
            architecture = "mlp"
            [input]
            name = "x"
            shape = [2, 2]
            min = 0.0
            max = 1.0
            [output]
            name = "y"
            shape = [3]
            labels = ["a", "b", "c"]
            [batching]
            max_batch_size = 4
            "#,
        )
        .expect("valid spec")
    }

    #[test]
    fn counts_rows_for_item_and_batched_shapes() {
        let s = spec();
        assert_eq!(
            validate_input(&s, &RequestInput::new(vec![2, 2], vec![0.5; 4])),
            Ok(1)
        );
        assert_eq!(
            validate_input(&s, &RequestInput::new(vec![3, 2, 2], vec![0.5; 12])),
            Ok(3)
        );
    }

    #[test]
    fn rejects_bad_inputs_with_the_right_kind() {
        let s = spec();
        let kind = |shape: Vec<usize>, data: Vec<f32>| {
            validate_input(&s, &RequestInput::new(shape, data)).unwrap_err()
        };
        assert!(matches!(
            kind(vec![2, 2], vec![0.5; 3]),
            ModelError::InvalidInput(_)
        ));
        assert!(matches!(
            kind(vec![3], vec![0.5; 3]),
            ModelError::SchemaMismatch(_)
        ));
        assert!(matches!(
            kind(vec![5, 2, 2], vec![0.5; 20]),
            ModelError::SchemaMismatch(_)
        ));
        assert!(matches!(
            kind(vec![0, 2, 2], vec![]),
            ModelError::SchemaMismatch(_)
        ));
        let nan = kind(vec![2, 2], vec![0.5, f32::NAN, 0.5, 0.5]);
        assert_eq!(nan.error_type().as_str(), "invalid_input");
        assert!(nan.to_string().contains("flat index 1"), "{nan}");
        assert!(matches!(
            kind(vec![2, 2], vec![0.5, 0.5, 1.5, 0.5]),
            ModelError::SchemaMismatch(_)
        ));
        let named = |name: &str, dtype: &str| {
            validate_input(
                &s,
                &RequestInput::tensor(
                    name.into(),
                    dtype.into(),
                    vec![2, 2],
                    InputData::Fp32(vec![0.5; 4]),
                ),
            )
        };
        assert_eq!(named("x", "FP32"), Ok(1));
        assert!(matches!(
            named("other", "FP32"),
            Err(ModelError::SchemaMismatch(_))
        ));
        assert!(matches!(
            named("x", "INT64"),
            Err(ModelError::SchemaMismatch(_))
        ));
    }

    #[test]
    fn the_first_bad_value_is_named_past_the_first_chunk_of_64() {
        let spec = ModelSpec::from_toml(
            r#"
            architecture = "mlp"
            [input]
            name = "x"
            shape = [100]
            [output]
            name = "y"
            shape = [3]
            labels = ["a", "b", "c"]
            "#,
        )
        .expect("valid spec");
        let check = |values: Vec<f32>| validate_values(&spec, &[100], &values);
        let mut values: Vec<f32> = (0..100).map(|i| i as f32 - 50.0).collect();
        // No range declared: any finite value passes, even huge ones.
        values[3] = f32::MAX;
        assert_eq!(check(values.clone()), Ok(1));
        values[70] = f32::NEG_INFINITY;
        values[90] = f32::NAN;
        let err = check(values).unwrap_err();
        assert!(matches!(err, ModelError::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains("flat index 70"), "{err}");
        // With a range, the first value outside it is the one named.
        let mut ranged = self::spec();
        ranged.input.shape = vec![100];
        let mut values = vec![0.5; 100];
        values[65] = 1.5;
        values[99] = -1.0;
        let err = validate_values(&ranged, &[100], &values).unwrap_err();
        assert!(matches!(err, ModelError::SchemaMismatch(_)), "{err}");
        assert!(
            err.to_string().contains("value 1.5 at flat index 65"),
            "{err}"
        );
    }

    #[test]
    fn text_inputs_are_n_strings_for_bytes_models_only() {
        let text = ModelSpec::from_toml(
            r#"
            architecture = "bert-embedding"
            [input]
            name = "text"
            datatype = "BYTES"
            shape = [1]
            [output]
            name = "embedding"
            shape = [4]
            [batching]
            max_batch_size = 2
            "#,
        )
        .expect("valid spec");
        let texts = |n: usize| RequestInput::texts(vec!["hi".to_string(); n]);
        assert_eq!(validate_input(&text, &texts(2)), Ok(2));
        let mut column = texts(2);
        column.shape = vec![2, 1];
        assert_eq!(validate_input(&text, &column), Ok(2));
        let mut square = RequestInput::texts(vec!["a".into(); 4]);
        square.shape = vec![2, 2];
        assert!(matches!(
            validate_input(&text, &square),
            Err(ModelError::SchemaMismatch(_))
        ));
        let too_many = validate_input(&text, &texts(3)).unwrap_err();
        assert!(
            too_many.to_string().contains("max_batch_size"),
            "{too_many}"
        );
        assert!(matches!(
            validate_input(&text, &texts(0)),
            Err(ModelError::SchemaMismatch(_))
        ));
        let numbers = validate_input(&text, &RequestInput::new(vec![1], vec![0.5])).unwrap_err();
        assert!(numbers.to_string().contains("takes BYTES"), "{numbers}");
        let strings = validate_input(&spec(), &texts(1)).unwrap_err();
        assert!(strings.to_string().contains("takes FP32"), "{strings}");
    }
}
