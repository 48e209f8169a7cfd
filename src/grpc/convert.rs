//! KServe v2 gRPC messages to and from the protocol-neutral core ([`crate::kserve`]): the
//! deadline metadata, each input's typed `contents` or raw bytes, `parameters.timeout`, and the
//! core's metadata, configuration and statistics documents as gRPC messages.

use std::time::Duration;

use burnserve_actors::InferError;
use burnserve_models::{DataType, TensorData};
use tonic::metadata::MetadataMap;

use super::proto::{self, *};
use crate::kserve::documents;
use crate::kserve::request::{self, Payload, RequestedOutput, WireInput};
use crate::kserve::stats;

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

/// The typed `contents` of an input of `datatype` (FP16 and BF16 have none: raw bytes only).
fn typed_contents(
    name: &str,
    datatype: &str,
    contents: proto::InferTensorContents,
) -> Result<TensorData, InferError> {
    let datatype = request::datatype(name, datatype)?;
    let out_of_range = |index: usize, value: String| {
        InferError::InvalidInput(format!(
            "input '{name}': element {index} ({value}) is out of range for {datatype}"
        ))
    };
    macro_rules! narrow {
        ($values:expr, $t:ty) => {
            $values
                .into_iter()
                .enumerate()
                .map(|(i, v)| <$t>::try_from(v).map_err(|_| out_of_range(i, v.to_string())))
                .collect::<Result<Vec<$t>, InferError>>()?
        };
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(contents.bool_contents),
        DataType::U8 => TensorData::U8(narrow!(contents.uint_contents, u8)),
        DataType::U16 => TensorData::U16(narrow!(contents.uint_contents, u16)),
        DataType::U32 => TensorData::U32(contents.uint_contents),
        DataType::U64 => TensorData::U64(contents.uint64_contents),
        DataType::I8 => TensorData::I8(narrow!(contents.int_contents, i8)),
        DataType::I16 => TensorData::I16(narrow!(contents.int_contents, i16)),
        DataType::I32 => TensorData::I32(contents.int_contents),
        DataType::I64 => TensorData::I64(contents.int64_contents),
        DataType::F32 => TensorData::F32(contents.fp32_contents),
        DataType::F64 => TensorData::F64(contents.fp64_contents),
        DataType::Bytes => TensorData::Bytes(contents.bytes_contents),
        DataType::F16 | DataType::BF16 => {
            return Err(InferError::InvalidInput(format!(
                "input '{name}': {datatype} has no typed contents in KServe v2 gRPC; send it \
                 as raw_input_contents"
            )))
        }
    })
}

/// One input as the core takes it: its typed contents, or its raw bytes.
pub(super) fn wire_input(
    input: proto::model_infer_request::InferInputTensor,
    raw: Option<&[u8]>,
) -> Result<WireInput<'_>, InferError> {
    let payload = match (input.contents, raw) {
        (Some(_), Some(_)) => Payload::Both("contents and raw_input_contents"),
        (None, Some(bytes)) => Payload::Raw(bytes),
        (Some(contents), None) => {
            Payload::Typed(typed_contents(&input.name, &input.datatype, contents)?)
        }
        (None, None) => Payload::Missing("contents (nor raw_input_contents)"),
    };
    Ok(WireInput {
        name: input.name,
        datatype: input.datatype,
        shape: input.shape,
        payload,
    })
}

/// The outputs a request asks for (gRPC answers raw contents always: no binary choice).
pub(super) fn requested_outputs(
    outputs: Vec<proto::model_infer_request::InferRequestedOutputTensor>,
) -> Vec<RequestedOutput> {
    outputs
        .into_iter()
        .map(|o| RequestedOutput {
            classification: match o
                .parameters
                .get("classification")
                .and_then(|p| p.parameter_choice.clone())
            {
                Some(infer_parameter::ParameterChoice::Int64Param(n)) => Some(n),
                Some(_) => Some(1),
                None => None,
            },
            name: o.name,
            binary_data: None,
        })
        .collect()
}

/// `parameters.timeout` (microseconds, Triton's), bounded by the core as over HTTP.
pub(super) fn timeout_parameter(
    parameters: &std::collections::HashMap<String, InferParameter>,
) -> Result<Option<Duration>, InferError> {
    let us = parameters
        .get("timeout")
        .map(|parameter| match parameter.parameter_choice {
            Some(infer_parameter::ParameterChoice::Int64Param(us)) => u64::try_from(us).ok(),
            Some(infer_parameter::ParameterChoice::Uint64Param(us)) => Some(us),
            _ => None,
        });
    request::timeout(us)
}

/// The core's model metadata as the gRPC message.
pub(super) fn metadata_message(m: documents::ModelMetadata) -> ModelMetadataResponse {
    let tensors = |list: Vec<documents::TensorMetadata>| {
        list.into_iter()
            .map(|t| model_metadata_response::TensorMetadata {
                name: t.name,
                datatype: t.datatype.into(),
                shape: t.shape,
            })
            .collect()
    };
    ModelMetadataResponse {
        name: m.name,
        versions: m.versions,
        platform: m.platform,
        inputs: tensors(m.inputs),
        outputs: tensors(m.outputs),
    }
}

/// The effective configuration as the gRPC message: the same schema (`model_config.proto`)
/// compiled into this crate, so the bytes carry over as they are.
pub(super) fn config_message(c: &burnserve_models::triton::pb::ModelConfig) -> proto::ModelConfig {
    use prost::Message;
    // Both types come from one schema: every message of one decodes as the other.
    proto::ModelConfig::decode(c.encode_to_vec().as_slice()).unwrap_or_default()
}

fn duration(totals: stats::StatDuration) -> Option<StatisticDuration> {
    Some(StatisticDuration {
        count: totals.count,
        ns: totals.ns,
    })
}

/// The core's statistics of one version as the gRPC message.
pub(super) fn statistics_message(s: stats::ModelStats) -> ModelStatistics {
    let i = s.inference_stats;
    ModelStatistics {
        name: s.name,
        version: s.version,
        last_inference: s.last_inference,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(i.success),
            fail: duration(i.fail),
            queue: duration(i.queue),
            compute_input: duration(i.compute_input),
            compute_infer: duration(i.compute_infer),
            compute_output: duration(i.compute_output),
            cache_hit: duration(i.cache_hit),
            cache_miss: duration(i.cache_miss),
        }),
        batch_stats: s
            .batch_stats
            .into_iter()
            .map(|b| InferBatchStatistics {
                batch_size: b.batch_size as u64,
                compute_input: duration(b.compute_input),
                compute_infer: duration(b.compute_infer),
                compute_output: duration(b.compute_output),
            })
            .collect(),
    }
}
