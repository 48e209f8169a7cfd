//! The request stage before `forward`, the same for every protocol: a request's tensors checked
//! against the version's signature (names, duplicates, missing inputs, datatypes, shapes with
//! their variable dimensions, element counts, the rows every input agrees on, values where an
//! input asks for it, text for text models), preprocessed (UINT8 pixels scaled to `[0, 1]`
//! where an FP32 input accepts them), and put in the signature's order with the batch
//! dimension. Nothing that fails here reaches a model.

use crate::error::ModelError;
use crate::input::{RequestInput, RequestTensor};
use crate::spec::{ModelSpec, TensorSpec, VARIABLE};
use crate::tensor::{NamedTensor, TensorData};

/// The datatype of 8-bit pixels, scaled to `[0, 1]` where the model accepts them.
pub const UINT8: &str = "UINT8";

/// A request checked against its version's signature: what the executor runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prepared {
    /// The inputs given, in the signature's order, each `[rows, ..]` (or its whole shape when
    /// the model has no batch dimension).
    pub tensors: Vec<NamedTensor>,
    /// Items (rows) the request holds; 1 for a model without a batch dimension.
    pub rows: usize,
}

fn mismatch(message: String) -> ModelError {
    ModelError::SchemaMismatch(message)
}

fn names(tensors: &[TensorSpec]) -> String {
    tensors
        .iter()
        .map(|t| format!("'{}'", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks and prepares a request for `spec`'s signature.
pub fn prepare_input(spec: &ModelSpec, input: RequestInput) -> Result<Prepared, ModelError> {
    let given = input.tensors.len();
    if given == 0 {
        return Err(mismatch(format!(
            "the request has no inputs; this model takes {}",
            names(&spec.inputs)
        )));
    }
    // Each declared input's tensor, by the signature's index.
    let mut slots: Vec<Option<RequestTensor>> = vec![None; spec.inputs.len()];
    for tensor in input.tensors {
        let index = match tensor.name.as_deref() {
            None if given == 1 && spec.inputs.len() == 1 => 0,
            None => {
                return Err(mismatch(format!(
                    "unnamed input; this model takes the named inputs {} (send them by name)",
                    names(&spec.inputs)
                )))
            }
            Some(name) => spec
                .inputs
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| {
                    mismatch(format!(
                        "unknown input '{}'; this model takes {}",
                        clip(name),
                        names(&spec.inputs)
                    ))
                })?,
        };
        if slots[index].is_some() {
            return Err(ModelError::InvalidInput(format!(
                "input '{}' appears twice",
                spec.inputs[index].name
            )));
        }
        slots[index] = Some(tensor);
    }
    let mut rows: Option<(usize, usize)> = None;
    let mut tensors = Vec::with_capacity(slots.len());
    for (index, (declared, slot)) in spec.inputs.iter().zip(slots).enumerate() {
        let Some(tensor) = slot else {
            if declared.optional {
                continue;
            }
            return Err(mismatch(format!(
                "input '{}' is missing; this model needs {}",
                declared.name,
                names(
                    &spec
                        .inputs
                        .iter()
                        .filter(|t| !t.optional)
                        .cloned()
                        .collect::<Vec<_>>()
                )
            )));
        };
        let (shape, data, n) = check_tensor(spec, declared, tensor)?;
        match rows {
            Some((first, at)) if first != n => {
                return Err(mismatch(format!(
                    "input '{}' holds {n} items but input '{}' holds {first}; every input of \
                     a request holds the same number",
                    declared.name, spec.inputs[at].name
                )))
            }
            None => rows = Some((n, index)),
            Some(_) => {}
        }
        tensors.push(NamedTensor::new(declared.name.clone(), shape, data));
    }
    let rows = rows.map_or(0, |(n, _)| n);
    if spec.batching.is_batched() && rows > spec.batching.max_batch_size {
        return Err(mismatch(format!(
            "the request holds {rows} items; this model takes at most {} per request \
             (max_batch_size)",
            spec.batching.max_batch_size
        )));
    }
    if crate::arch::spec_takes_text(spec) {
        check_text(&tensors)?;
    }
    Ok(Prepared { tensors, rows })
}

/// A client's name, cut short for messages.
fn clip(name: &str) -> String {
    name.chars().take(64).collect()
}

/// One input: datatype (and UINT8 pixels), element count, shape, values. Answers the shape
/// with the batch dimension, the data, and the items it holds.
fn check_tensor(
    spec: &ModelSpec,
    declared: &TensorSpec,
    tensor: RequestTensor,
) -> Result<(Vec<usize>, TensorData, usize), ModelError> {
    let name = &declared.name;
    let RequestTensor { shape, data, .. } = tensor;
    let count = shape
        .iter()
        .try_fold(1usize, |total, &dim| total.checked_mul(dim))
        .ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "input '{name}': shape {shape:?} holds more values than can be addressed"
            ))
        })?;
    if count != data.len() {
        return Err(ModelError::InvalidInput(format!(
            "input '{name}': {} {} elements but shape {shape:?} needs {count}",
            data.len(),
            data.datatype()
        )));
    }
    let data = match data {
        TensorData::U8(pixels) if declared.accept_uint8 => {
            TensorData::F32(pixels.into_iter().map(|v| f32::from(v) / 255.0).collect())
        }
        data if data.datatype() != declared.datatype => {
            return Err(mismatch(format!(
                "input '{name}' has datatype {}; this model takes {}{}",
                data.datatype(),
                declared.datatype,
                if declared.accept_uint8 {
                    " (or UINT8 pixels)"
                } else {
                    ""
                }
            )))
        }
        data => data,
    };
    if shape.contains(&0) {
        return Err(mismatch(format!(
            "input '{name}' has shape {shape:?}: it holds no items"
        )));
    }
    let (shape, rows) = batch_shape(spec, declared, shape)?;
    check_values(declared, &data)?;
    Ok((shape, data, rows))
}

/// Whether `shape` fits `dims` (`-1` matches any size).
fn fits(shape: &[usize], dims: &[i64]) -> bool {
    shape.len() == dims.len()
        && shape
            .iter()
            .zip(dims)
            .all(|(&s, &d)| d == VARIABLE || s as i64 == d)
}

/// The request's shape with the batch dimension, and its rows. A model without a batch
/// dimension takes exactly its declared shape. A batching model takes `[n, ..dims]`, and, for
/// inputs whose dimensions are all fixed, the forms older clients send: the item alone, a flat
/// item `[len]` or `[n, len]`, and `[n]` for items of one value (text).
fn batch_shape(
    spec: &ModelSpec,
    declared: &TensorSpec,
    shape: Vec<usize>,
) -> Result<(Vec<usize>, usize), ModelError> {
    let dims = &declared.shape;
    let wrong = |shape: &[usize]| {
        let expected: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        mismatch(if spec.batching.is_batched() {
            format!(
                "input '{}' has shape {shape:?}; this model takes [n, {}] (n items, -1 any size)",
                declared.name,
                expected.join(", ")
            )
        } else {
            format!(
                "input '{}' has shape {shape:?}; this model takes [{}] (no batch dimension, \
                 -1 any size)",
                declared.name,
                expected.join(", ")
            )
        })
    };
    if !spec.batching.is_batched() {
        return if fits(&shape, dims) {
            Ok((shape, 1))
        } else {
            Err(wrong(&shape))
        };
    }
    if shape.len() == dims.len() + 1 && fits(&shape[1..], dims) {
        let rows = shape[0];
        return Ok((shape, rows));
    }
    let Some(item) = declared.fixed_shape() else {
        return Err(wrong(&shape));
    };
    let len: usize = item.iter().product();
    let rows = if shape == item || (item.len() > 1 && shape == [len]) {
        1
    } else if (item.len() > 1 && shape.len() == 2 && shape[1] == len)
        || (item == [1] && shape.len() == 1)
    {
        shape[0]
    } else {
        return Err(wrong(&shape));
    };
    let mut batched = Vec::with_capacity(item.len() + 1);
    batched.push(rows);
    batched.extend_from_slice(&item);
    Ok((batched, rows))
}

/// `finite`, `min` and `max`, where the input declares them (a range implies `finite`): a
/// non-finite value is invalid input, a value outside the range does not fit the model.
fn check_values(declared: &TensorSpec, data: &TensorData) -> Result<(), ModelError> {
    if !declared.checks_values() {
        return Ok(());
    }
    let name = &declared.name;
    let lo = declared.min.unwrap_or(f64::NEG_INFINITY);
    let hi = declared.max.unwrap_or(f64::INFINITY);
    // One pass when every value is fine (NaN and infinities fall outside the finite bounds);
    // the culprit is looked for only on failure.
    if data
        .first_outside(lo.max(-f64::MAX), hi.min(f64::MAX))
        .is_none()
    {
        return Ok(());
    }
    if let Some((index, value)) = data.first_non_finite() {
        return Err(ModelError::InvalidInput(format!(
            "input '{name}': value at flat index {index} is not finite ({value}); this input \
             takes finite values only"
        )));
    }
    match data.first_outside(lo, hi) {
        Some((index, value)) => Err(mismatch(format!(
            "input '{name}': value {value} at flat index {index} is outside the input range \
             [{lo}, {hi}]"
        ))),
        None => Ok(()),
    }
}

/// Text models read BYTES elements as UTF-8.
fn check_text(tensors: &[NamedTensor]) -> Result<(), ModelError> {
    for tensor in tensors {
        if let TensorData::Bytes(items) = &tensor.data {
            if let Some(index) = items.iter().position(|i| std::str::from_utf8(i).is_err()) {
                return Err(ModelError::InvalidInput(format!(
                    "input '{}': element {index} is not UTF-8 text",
                    tensor.name
                )));
            }
        }
    }
    Ok(())
}

mod outputs;
pub use outputs::{check_outputs, check_requested_outputs, warm_up_inputs};

#[cfg(test)]
mod tests;
