//! KServe v2 gRPC messages to and from the runtime's types: the deadline metadata, shapes and
//! typed contents of the one input, `parameters.timeout`, tensor metadata, statistics and
//! datatypes.

use std::time::Duration;

use burnserve_actors::VersionKey;

use burnserve_models::{InputData, BYTES};
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::proto::{self, *};
use super::{invalid, status};
use crate::api::binary;
use crate::api::predict::MAX_TIMEOUT_MS;

/// `grpc-timeout` (`<digits><H|M|S|m|u|n>`), the client's deadline.
pub(super) fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(super) fn version_of(version: String) -> Option<String> {
    (!version.is_empty()).then_some(version)
}

/// Elements a shape holds; negative or overflowing dimensions are refused.
pub(super) fn dims(name: &str, shape: &[i64]) -> Result<Vec<usize>, Status> {
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| invalid(format!("input '{name}': dimension {d} in shape {shape:?}")))
        })
        .collect()
}

pub(super) fn element_count(name: &str, shape: &[usize]) -> Result<usize, Status> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| invalid(format!("input '{name}': shape {shape:?} is too large")))
}

/// The one input's data: raw bytes, or typed contents of its datatype.
pub(super) fn input_data(
    input: &proto::model_infer_request::InferInputTensor,
    shape: &[usize],
    raw: Option<&[u8]>,
) -> Result<InputData, Status> {
    let name = input.name.as_str();
    let contents = input.contents.as_ref();
    if let Some(bytes) = raw {
        if contents.is_some() {
            return Err(invalid(format!(
                "input '{name}' has both contents and raw_input_contents"
            )));
        }
        return match binary::decode(name, &input.datatype, shape, bytes).map_err(status)? {
            binary::Values::Numbers(values) => Ok(InputData::Fp32(values)),
            binary::Values::Strings(texts) => Ok(InputData::Bytes(texts)),
        };
    }
    let Some(contents) = contents else {
        return Err(invalid(format!(
            "input '{name}' has no contents (nor raw_input_contents)"
        )));
    };
    let count = element_count(name, shape)?;
    let check = |found: usize| {
        if found == count {
            Ok(())
        } else {
            Err(invalid(format!(
                "input '{name}': {found} {} elements do not fill shape {shape:?} ({count})",
                input.datatype
            )))
        }
    };
    match input.datatype.as_str() {
        "FP32" => {
            check(contents.fp32_contents.len())?;
            Ok(InputData::Fp32(contents.fp32_contents.clone()))
        }
        "UINT8" => {
            check(contents.uint_contents.len())?;
            if let Some(bad) = contents.uint_contents.iter().find(|&&v| v > 255) {
                return Err(invalid(format!(
                    "input '{name}': UINT8 value {bad} is above 255"
                )));
            }
            Ok(InputData::Fp32(
                contents.uint_contents.iter().map(|&v| v as f32).collect(),
            ))
        }
        BYTES => {
            check(contents.bytes_contents.len())?;
            let texts = contents
                .bytes_contents
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    String::from_utf8(bytes.clone()).map_err(|_| {
                        invalid(format!("input '{name}': element {i} is not UTF-8 text"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(InputData::Bytes(texts))
        }
        other => Err(invalid(format!(
            "input '{name}': datatype {} is not supported (FP32, UINT8, BYTES)",
            other.chars().take(16).collect::<String>()
        ))),
    }
}

/// `parameters.timeout` (microseconds, Triton's), when given as an integer: at most an hour,
/// as over HTTP (`MAX_TIMEOUT_MS`).
pub(super) fn timeout_parameter(
    parameters: &std::collections::HashMap<String, InferParameter>,
) -> Result<Option<Duration>, Status> {
    let Some(parameter) = parameters.get("timeout") else {
        return Ok(None);
    };
    let max_us = MAX_TIMEOUT_MS * 1000;
    let us = match parameter.parameter_choice {
        Some(infer_parameter::ParameterChoice::Int64Param(us)) => u64::try_from(us).ok(),
        Some(infer_parameter::ParameterChoice::Uint64Param(us)) => Some(us),
        _ => None,
    };
    match us {
        Some(us) if us <= max_us => Ok(Some(Duration::from_micros(us))),
        _ => Err(invalid(format!(
            "parameter 'timeout' must be an integer number of microseconds from 0 to {max_us} (an hour)"
        ))),
    }
}

pub(super) fn tensor_metadata(
    spec: &burnserve_models::TensorSpec,
) -> model_metadata_response::TensorMetadata {
    let mut shape = vec![-1];
    if spec.datatype != BYTES {
        shape.extend(spec.shape.iter().map(|&d| d as i64));
    }
    model_metadata_response::TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.datatype.clone(),
        shape,
    }
}

pub(super) fn duration(totals: burnserve_actors::stats::Totals) -> Option<StatisticDuration> {
    Some(StatisticDuration {
        count: totals.count,
        ns: totals.ns,
    })
}

pub(super) fn model_statistics(
    key: &VersionKey,
    s: &burnserve_actors::stats::StatsSnapshot,
) -> ModelStatistics {
    let counted = |count| burnserve_actors::stats::Totals { count, ns: 0 };
    ModelStatistics {
        name: key.model.clone(),
        version: key.version.clone(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: duration(counted(s.compute_infer.count)),
            compute_infer: duration(s.compute_infer),
            compute_output: duration(counted(s.compute_infer.count)),
            cache_hit: duration(counted(0)),
            cache_miss: duration(counted(0)),
        }),
        batch_stats: s
            .batches
            .iter()
            .map(|(size, totals)| InferBatchStatistics {
                batch_size: *size as u64,
                compute_input: duration(counted(totals.count)),
                compute_infer: duration(*totals),
                compute_output: duration(counted(totals.count)),
            })
            .collect(),
    }
}

pub(super) fn data_type(datatype: &str) -> i32 {
    let value = match datatype {
        "FP32" => DataType::TypeFp32,
        "UINT8" => DataType::TypeUint8,
        BYTES => DataType::TypeString,
        _ => DataType::TypeInvalid,
    };
    value as i32
}
