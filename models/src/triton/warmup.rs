//! Triton's `model_warmup`: each sample's inputs built at load (zeros, deterministic random
//! values, or a file of raw little-endian data in the model's `warmup/` directory, read through
//! the jail and bounded), in the signature's order, for the executor to run after its own
//! warm-up pass.

use std::path::Path;

use super::config::{plain_relative, TritonConfig, CONFIG_FILE};
use super::pb;
use crate::error::ModelError;
use crate::jail::Jail;
use crate::spec::{ModelSpec, WarmupSample};
use crate::tensor::{DataType, NamedTensor, TensorData};

/// The most bytes of one warm-up sample's input.
const MAX_WARMUP_BYTES: usize = 256 << 20;

/// The `model_warmup` samples as request tensors.
pub fn samples(
    triton: &TritonConfig,
    jail: &Jail,
    model_dir: &Path,
    spec: &ModelSpec,
) -> Result<Vec<WarmupSample>, ModelError> {
    let p = &triton.parsed;
    let mut samples = Vec::new();
    for (i, w) in p.config.model_warmup.iter().enumerate() {
        let fail = |field: &str, message: String| {
            ModelError::Load(
                p.at(&format!("model_warmup[{i}]{field}"), message)
                    .describe(CONFIG_FILE),
            )
        };
        let rows = w.batch_size.max(1) as usize;
        if rows > spec.batching.max_rows() {
            return Err(fail(
                ".batch_size",
                format!("{rows} is above max_batch_size"),
            ));
        }
        let count = w.count.max(1) as usize;
        if count > super::config::MAX_WARMUP {
            return Err(fail(
                ".count",
                format!("at most {}", super::config::MAX_WARMUP),
            ));
        }
        let mut inputs = Vec::new();
        for (name, input) in &w.inputs {
            let tensor = spec
                .input_named(name)
                .ok_or_else(|| fail(".inputs", format!("the model has no input '{name}'")))?;
            let mut shape: Vec<usize> = if spec.batching.is_batched() {
                vec![rows]
            } else {
                Vec::new()
            };
            for &d in &input.dims {
                shape
                    .push(usize::try_from(d).map_err(|_| {
                        fail(".inputs", format!("'{name}': dims {:?}", input.dims))
                    })?);
            }
            let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            let size = tensor.datatype.element_size().unwrap_or(1);
            let len = len
                .filter(|&n| n.saturating_mul(size) <= MAX_WARMUP_BYTES)
                .ok_or_else(|| {
                    fail(
                        ".inputs",
                        format!("'{name}' is larger than {MAX_WARMUP_BYTES} bytes"),
                    )
                })?;
            use pb::model_warmup::input::InputDataType;
            let data = match &input.input_data_type {
                Some(InputDataType::RandomData(true)) if tensor.datatype != DataType::Bytes => {
                    random_data(tensor.datatype, len)
                }
                Some(InputDataType::InputDataFile(file)) => {
                    let field = format!("model_warmup[{i}].inputs");
                    if !plain_relative(file) {
                        return Err(fail(
                            ".inputs",
                            format!("'{file}' must be inside the model's warmup directory"),
                        ));
                    }
                    let dir = model_dir.join("warmup");
                    let path = jail
                        .file(&dir, &field, file)
                        .map_err(|e| fail(".inputs", e.to_string()))?;
                    let mut bytes = Vec::new();
                    std::fs::File::open(&path)
                        .and_then(|f| {
                            use std::io::Read;
                            f.take(MAX_WARMUP_BYTES as u64 + 1).read_to_end(&mut bytes)
                        })
                        .map_err(|e| fail(".inputs", e.to_string()))?;
                    if bytes.len() > MAX_WARMUP_BYTES {
                        return Err(fail(
                            ".inputs",
                            format!("'{file}' is larger than {MAX_WARMUP_BYTES} bytes"),
                        ));
                    }
                    let raw = if tensor.datatype == DataType::Bytes {
                        bytes
                    } else {
                        bytes.into_iter().take(len * size).collect()
                    };
                    crate::tensor::decode_le(tensor.datatype, len, &raw)
                        .map_err(|e| fail(".inputs", format!("'{file}': {e}")))?
                }
                _ => match tensor.datatype {
                    DataType::Bytes => TensorData::Bytes(vec![Vec::new(); len]),
                    other => TensorData::zeros(other, len),
                },
            };
            inputs.push(NamedTensor::new(name.clone(), shape, data));
        }
        if let Some(missing) = spec
            .inputs
            .iter()
            .find(|t| !t.optional && !inputs.iter().any(|i: &NamedTensor| i.name == t.name))
        {
            return Err(fail(
                ".inputs",
                format!("input '{}' is missing", missing.name),
            ));
        }
        inputs.sort_by_key(|i| spec.inputs.iter().position(|t| t.name == i.name));
        samples.push(WarmupSample {
            name: w.name.clone(),
            inputs,
            rows,
            count,
        });
    }
    Ok(samples)
}

/// Deterministic values in [0, 1) for FP32 and FP64 (zeros for other datatypes).
fn random_data(datatype: DataType, len: usize) -> TensorData {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f64 / (1u64 << 24) as f64
    };
    match datatype {
        DataType::F32 => TensorData::F32((0..len).map(|_| next() as f32).collect()),
        DataType::F64 => TensorData::F64((0..len).map(|_| next()).collect()),
        other => TensorData::zeros(other, len),
    }
}
