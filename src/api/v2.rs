//! KServe v2 / Open Inference Protocol: server and model metadata, and
//! `POST /v2/models/{m}[/versions/{v}]/infer` with FP32, UINT8 or BYTES tensors as JSON (`data`
//! flat or nested) or binary (`binary.rs`), `id` echoed when given, `outputs` checked against
//! the model's, `parameters.timeout` in microseconds as Triton reads it.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use burnserve_actors::InferRequest;
use burnserve_models::{InputData, RequestInput, TensorSpec, BYTES};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Caller;
use super::binary;
use super::predict::timed;
use super::tensor::NestedTensor;
use super::{ApiError, AppState};

/// The protocol extensions burnserve implements (server metadata, HTTP and gRPC).
pub const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "model_configuration",
];

pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "burnserve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
}

#[derive(Debug, Serialize)]
struct TensorMetadata {
    name: String,
    datatype: String,
    /// `-1` is the batch dimension.
    shape: Vec<i64>,
}

fn tensor_metadata(spec: &TensorSpec) -> TensorMetadata {
    let mut shape = vec![-1];
    // A text item is one string: BYTES inputs are `[-1]` strings.
    if spec.datatype != BYTES {
        shape.extend(spec.shape.iter().map(|&d| d as i64));
    }
    TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.datatype.clone(),
        shape,
    }
}

async fn metadata(
    state: &AppState,
    model: String,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let explicit = version.is_some();
    let d = state.service.describe(&model, version.as_deref()).await?;
    let versions = if explicit {
        vec![d.version.clone()]
    } else {
        d.versions.clone()
    };
    Ok(HttpResponse::Ok().json(json!({
        "name": d.name,
        "versions": versions,
        "platform": format!("burn_{}", d.spec.architecture),
        "inputs": [tensor_metadata(&d.spec.input)],
        "outputs": [tensor_metadata(&d.spec.output)],
        "parameters": {
            "default_version": d.routing.default_version,
            "weights": d.routing.weights,
            "device": d.device.to_string(),
            "max_batch_size": d.spec.batching.max_batch_size,
            "labels": d.spec.output.labels,
        },
    })))
}

pub async fn model_metadata(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    metadata(&state, path.into_inner(), None).await
}

pub async fn model_metadata_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    metadata(&state, model, Some(version)).await
}

#[derive(Debug, Deserialize)]
pub struct InferBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<InferParameters>,
    pub inputs: Vec<InputTensor>,
    /// The outputs wanted, and how (`parameters.binary_data`); absent: every output, as JSON.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct InferParameters {
    /// Deadline in microseconds (Triton's `timeout`); shortens the model's default only.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Every output as binary data (the binary tensor data extension).
    #[serde(default)]
    pub binary_data_output: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    /// JSON data; absent when the tensor is binary (`parameters.binary_data_size`).
    #[serde(default)]
    pub data: Option<NestedTensor>,
    #[serde(default)]
    pub parameters: Option<InputParameters>,
}

#[derive(Debug, Default, Deserialize)]
pub struct InputParameters {
    /// Bytes of this input in the binary section after the JSON header.
    #[serde(default)]
    pub binary_data_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<OutputParameters>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OutputParameters {
    #[serde(default)]
    pub binary_data: Option<bool>,
    /// Triton's classification extension: not implemented, refused when asked for.
    #[serde(default)]
    pub classification: Option<u64>,
}

/// The longest output name a request may ask for.
const MAX_OUTPUT_NAME: usize = 256;

/// Reads the whole body, at most `limit` bytes (413 past it; 408 when it stalls).
async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || ApiError::PayloadTooLarge {
        limit,
        setting: "server.max_body_bytes",
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    // `Content-Encoding: gzip | deflate` bodies are decoded; the limit holds for what they
    // decode to.
    let mut payload =
        actix_web::dev::Decompress::from_headers(payload.into_inner(), request.headers());
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| super::body::payload_error(&err))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The one input as model input: JSON `data`, or its bytes from the binary section.
fn input_tensor(
    input: InputTensor,
    section: &mut binary::Section<'_>,
) -> Result<RequestInput, ApiError> {
    let size = input.parameters.and_then(|p| p.binary_data_size);
    let data = match (input.data, size) {
        (Some(data), None) => {
            // Flat data takes the declared shape; nested data must agree with it.
            if data.shape.len() > 1 && data.shape != input.shape {
                return Err(ApiError::BadRequest(format!(
                    "input '{}' declares shape {:?} but its data is nested as {:?}",
                    input.name, input.shape, data.shape
                )));
            }
            data.into_input().1
        }
        (None, Some(size)) => {
            let bytes = section.take(&input.name, size)?;
            match binary::decode(&input.name, &input.datatype, &input.shape, bytes)? {
                binary::Values::Numbers(values) => InputData::Fp32(values),
                binary::Values::Strings(texts) => InputData::Bytes(texts),
            }
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "input '{}' has both data and parameters.binary_data_size",
                input.name
            )))
        }
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "input '{}' has no data (nor parameters.binary_data_size)",
                input.name
            )))
        }
    };
    Ok(RequestInput::tensor(
        input.name,
        input.datatype,
        input.shape,
        data,
    ))
}

async fn run(
    state: &AppState,
    caller: Caller,
    request: &HttpRequest,
    (model, version): (String, Option<String>),
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let (header, binary_section) = binary::split(request.headers(), body)?;
    let body: InferBody = serde_json::from_slice(header)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let [input]: [InputTensor; 1] =
        body.inputs.try_into().map_err(|inputs: Vec<InputTensor>| {
            ApiError::BadRequest(format!(
                "expected exactly one input tensor, got {}",
                inputs.len()
            ))
        })?;
    let mut section = binary::Section::new(binary_section);
    let tensor = input_tensor(input, &mut section)?;
    section.finish()?;
    let requested = body.outputs.unwrap_or_default();
    if let Some(output) = requested.iter().find(|o| o.name.len() > MAX_OUTPUT_NAME) {
        return Err(ApiError::BadRequest(format!(
            "output name of {} bytes (at most {MAX_OUTPUT_NAME})",
            output.name.len()
        )));
    }
    if requested.iter().any(|o| {
        o.parameters
            .as_ref()
            .and_then(|p| p.classification)
            .is_some_and(|c| c > 0)
    }) {
        return Err(ApiError::BadRequest(
            "the classification extension is not supported; use /v1/models/{model}/predict for top-k labels".into(),
        ));
    }
    let parameters = body.parameters.unwrap_or_default();
    let binary_all = parameters.binary_data_output == Some(true);
    let mut request = InferRequest::new(model, version, tensor);
    caller.apply(&mut request);
    request.timeout = parameters.timeout.map(Duration::from_micros);
    request.output_names = requested.iter().map(|o| o.name.clone()).collect();
    let response = state.service.infer(request).await?;
    let mut shape = vec![response.output.rows];
    shape.extend(&response.spec.output.shape);
    let name = response.spec.output.name.clone();
    let as_binary = binary_all
        || requested.iter().any(|o| {
            o.name == name && o.parameters.as_ref().and_then(|p| p.binary_data) == Some(true)
        });
    let mut output = json!({ "name": name, "datatype": "FP32", "shape": shape });
    let mut answer = json!({
        "model_name": response.key.model,
        "model_version": response.key.version,
    });
    if let Some(id) = body.id {
        answer["id"] = Value::String(id);
    }
    let mut builder = timed(&response);
    if !as_binary {
        output["data"] = json!(response.output.output);
        answer["outputs"] = json!([output]);
        return Ok(builder.json(answer));
    }
    let data = binary::encode_f32(&response.output.output);
    output["parameters"] = json!({ "binary_data_size": data.len() });
    answer["outputs"] = json!([output]);
    let mut framed = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::BadRequest(format!("cannot encode the response: {e}")))?;
    let header_length = framed.len();
    framed.extend_from_slice(&data);
    Ok(builder
        .insert_header((binary::HEADER_LENGTH, header_length.to_string()))
        .content_type("application/octet-stream")
        .body(framed))
}

pub async fn infer(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&request, payload, state.max_body_bytes).await?;
    run(&state, caller, &request, (path.into_inner(), None), &body).await
}

pub async fn infer_version(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&request, payload, state.max_body_bytes).await?;
    let (model, version) = path.into_inner();
    run(&state, caller, &request, (model, Some(version)), &body).await
}

/// `{count, ns}` as Triton writes a statistic.
fn duration_stat(totals: burnserve_actors::stats::Totals) -> Value {
    json!({ "count": totals.count, "ns": totals.ns })
}

/// Triton's `model_stats` entry of one version (the statistics extension). Burnserve does not
/// split input and output handling from the forward pass: `compute_input` and `compute_output`
/// count the requests with 0 ns, and the whole pass is `compute_infer`; there is no cache.
fn model_stats(
    key: &burnserve_actors::VersionKey,
    s: &burnserve_actors::stats::StatsSnapshot,
) -> Value {
    let none = burnserve_actors::stats::Totals::default();
    let counted = burnserve_actors::stats::Totals {
        count: s.compute_infer.count,
        ns: 0,
    };
    let batches: Vec<Value> = s
        .batches
        .iter()
        .map(|(size, totals)| {
            let counted = burnserve_actors::stats::Totals {
                count: totals.count,
                ns: 0,
            };
            json!({
                "batch_size": size,
                "compute_input": duration_stat(counted),
                "compute_infer": duration_stat(*totals),
                "compute_output": duration_stat(counted),
            })
        })
        .collect();
    json!({
        "name": key.model,
        "version": key.version,
        "last_inference": s.last_inference_ms,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": duration_stat(s.success),
            "fail": duration_stat(s.fail),
            "queue": duration_stat(s.queue),
            "compute_input": duration_stat(counted),
            "compute_infer": duration_stat(s.compute_infer),
            "compute_output": duration_stat(counted),
            "cache_hit": duration_stat(none),
            "cache_miss": duration_stat(none),
        },
        "batch_stats": batches,
        "memory_usage": [],
    })
}

async fn stats(
    state: &AppState,
    model: Option<String>,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let all = state
        .service
        .stats(model.as_deref(), version.as_deref())
        .await?;
    let entries: Vec<Value> = all.iter().map(|(key, s)| model_stats(key, s)).collect();
    Ok(HttpResponse::Ok().json(json!({ "model_stats": entries })))
}

/// `GET /v2/models/stats`: every loaded version's statistics.
pub async fn stats_all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    stats(&state, None, None).await
}

pub async fn stats_model(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    stats(&state, Some(path.into_inner()), None).await
}

pub async fn stats_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    stats(&state, Some(model), Some(version)).await
}

/// A tensor as Triton's model configuration writes it.
fn config_tensor(spec: &TensorSpec) -> Value {
    let dims: Vec<usize> = if spec.datatype == BYTES {
        vec![1]
    } else {
        spec.shape.clone()
    };
    let mut tensor = json!({
        "name": spec.name,
        "data_type": format!("TYPE_{}", if spec.datatype == BYTES { "STRING" } else { spec.datatype.as_str() }),
        "dims": dims,
    });
    if !spec.labels.is_empty() {
        tensor["labels"] = json!(spec.labels);
    }
    tensor
}

async fn config(
    state: &AppState,
    model: String,
    version: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let d = state.service.describe(&model, version.as_deref()).await?;
    let spec = &d.spec;
    let (kind, gpus) = match d.device {
        burnserve_models::Device::Cpu => ("KIND_CPU", vec![]),
        burnserve_models::Device::Cuda(n) => ("KIND_GPU", vec![n]),
    };
    let delay_us = (spec.batching.max_batch_delay_ms * 1000.0).round() as u64;
    Ok(HttpResponse::Ok().json(json!({
        "name": d.name,
        "version": d.version,
        "platform": format!("burn_{}", spec.architecture),
        "backend": "burn",
        "max_batch_size": spec.batching.max_batch_size,
        "input": [config_tensor(&spec.input)],
        "output": [config_tensor(&spec.output)],
        "dynamic_batching": {
            "max_queue_delay_microseconds": delay_us,
            "adaptive_delay": spec.batching.adaptive_delay,
            "default_queue_policy": {
                "max_queue_size": spec.batching.queue_capacity,
                "default_timeout_microseconds": spec.default_timeout().as_micros() as u64,
                "timeout_action": "REJECT",
            },
        },
        "instance_group": [{ "count": 1, "kind": kind, "gpus": gpus }],
        "parameters": {
            "device": { "string_value": d.device.to_string() },
            "timeout_ms": { "string_value": spec.default_timeout().as_millis().to_string() },
        },
    })))
}

/// `GET /v2/models/{m}/config`: the model configuration extension (the default version's).
pub async fn config_model(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    config(&state, path.into_inner(), None).await
}

pub async fn config_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    config(&state, model, Some(version)).await
}
