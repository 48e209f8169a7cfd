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
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::binary;
use super::openapi::{InferErrors, LookupErrors, ModelPath, NestedTensorSchema, VersionPath};
use super::predict::{timed, MAX_TIMEOUT_MS};
use super::tensor::NestedTensor;
use super::{ApiError, AppState};

/// The protocol extensions burnserve implements (server metadata, HTTP and gRPC).
pub const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "model_configuration",
];

/// `GET /v2`: the server's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    /// The protocol extensions implemented.
    pub extensions: Vec<&'static str>,
}

/// The server's name, version and extensions.
#[utoipa::path(get, path = "/v2", tag = "v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "burnserve",
        version: env!("CARGO_PKG_VERSION"),
        extensions: EXTENSIONS.to_vec(),
    })
}

/// `GET /v2/`: [`server_metadata`] (a trailing slash some clients add).
#[utoipa::path(get, path = "/v2/", tag = "v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata_slash() -> HttpResponse {
    server_metadata().await
}

/// A tensor of the model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
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

/// `GET /v2/models/{m}[/versions/{v}]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// Every loaded version (the one named, when the path names one).
    pub versions: Vec<String>,
    /// `burn_<architecture>`.
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    pub parameters: ModelParameters,
}

/// burnserve's additions to the model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelParameters {
    pub default_version: Option<String>,
    /// Version → share of unpinned requests (a canary split); empty without one.
    pub weights: BTreeMap<String, u32>,
    pub device: String,
    pub max_batch_size: usize,
    /// Class names of a classifier's outputs.
    pub labels: Vec<String>,
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
    Ok(HttpResponse::Ok().json(ModelMetadata {
        name: d.name,
        versions,
        platform: format!("burn_{}", d.spec.architecture),
        inputs: vec![tensor_metadata(&d.spec.input)],
        outputs: vec![tensor_metadata(&d.spec.output)],
        parameters: ModelParameters {
            default_version: d.routing.default_version,
            weights: d.routing.weights,
            device: d.device.to_string(),
            max_batch_size: d.spec.batching.max_batch_size,
            labels: d.spec.output.labels.clone(),
        },
    }))
}

/// The model's name, versions, inputs and outputs.
#[utoipa::path(get, path = "/v2/models/{model}", tag = "v2", params(ModelPath),
    responses((status = 200, body = ModelMetadata), LookupErrors))]
pub async fn model_metadata(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    metadata(&state, path.into_inner(), None).await
}

/// One version's metadata.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "v2", params(VersionPath),
    responses((status = 200, body = ModelMetadata), LookupErrors))]
pub async fn model_metadata_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    metadata(&state, model, Some(version)).await
}

/// An inference request: JSON, or with `Inference-Header-Content-Length` this JSON followed by
/// the inputs' raw bytes (the binary tensor data extension).
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<InferParameters>,
    /// Exactly one input (burnserve's models have one).
    #[schema(min_items = 1, max_items = 1)]
    pub inputs: Vec<InputTensor>,
    /// The outputs wanted, and how (`parameters.binary_data`); absent: every output, as JSON.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InferParameters {
    /// Deadline in microseconds (Triton's `timeout`, at most an hour); shortens the model's
    /// default only.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3_600_000_000_u64)]
    pub timeout: Option<u64>,
    /// Every output as binary data (the binary tensor data extension).
    #[serde(default)]
    pub binary_data_output: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// `FP32`, `UINT8` (pixels) or `BYTES` (text).
    pub datatype: String,
    /// JSON data; absent when the tensor is binary (`parameters.binary_data_size`).
    #[serde(default)]
    #[schema(value_type = Option<NestedTensorSchema>)]
    pub data: Option<NestedTensor>,
    #[serde(default)]
    pub parameters: Option<InputParameters>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InputParameters {
    /// Bytes of this input in the binary section after the JSON header.
    #[serde(default)]
    pub binary_data_size: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<OutputParameters>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
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
    if parameters
        .timeout
        .is_some_and(|t| t > MAX_TIMEOUT_MS.saturating_mul(1000))
    {
        return Err(ApiError::BadRequest(format!(
            "parameters.timeout must be at most {} µs (an hour)",
            MAX_TIMEOUT_MS * 1000
        )));
    }
    let binary_all = parameters.binary_data_output == Some(true);
    let mut request = InferRequest::new(model, version, tensor);
    caller.apply(&mut request);
    request.timeout = parameters.timeout.map(Duration::from_micros);
    request.output_names = requested.iter().map(|o| o.name.clone()).collect();
    let mut response = state.service.infer(request).await?;
    let mut shape = vec![response.output.rows];
    shape.extend(&response.spec.output.shape);
    let name = response.spec.output.name.clone();
    let as_binary = binary_all
        || requested.iter().any(|o| {
            o.name == name && o.parameters.as_ref().and_then(|p| p.binary_data) == Some(true)
        });
    let mut builder = timed(&response);
    let mut output = OutputTensor {
        name,
        datatype: "FP32",
        shape,
        data: None,
        parameters: None,
    };
    let values = std::mem::take(&mut response.output.output);
    let answer = |output: OutputTensor| InferResponse {
        model_name: response.key.model.clone(),
        model_version: response.key.version.clone(),
        id: body.id.clone(),
        outputs: vec![output],
    };
    if !as_binary {
        output.data = Some(values);
        return Ok(builder.json(answer(output)));
    }
    let data = binary::encode_f32(&values);
    output.parameters = Some(OutputTensorParameters {
        binary_data_size: data.len(),
    });
    let answer = answer(output);
    let mut framed = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::BadRequest(format!("cannot encode the response: {e}")))?;
    let header_length = framed.len();
    framed.extend_from_slice(&data);
    Ok(builder
        .insert_header((binary::HEADER_LENGTH, header_length.to_string()))
        .content_type("application/octet-stream")
        .body(framed))
}

/// An inference response (JSON; with binary outputs, this JSON followed by their bytes).
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    /// The request's `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensor {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    /// Row-major values (absent when the output is binary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<OutputTensorParameters>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensorParameters {
    /// Bytes of this output after the JSON header (`Inference-Header-Content-Length`).
    pub binary_data_size: usize,
}

/// Open Inference Protocol inference on the model's default version (or its split).
#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "inference", params(ModelPath),
    request_body(description = "JSON, or (binary tensor data extension, `Inference-Header-Content-Length`) this JSON followed by the inputs' bytes", content(
        (InferBody = "application/json"),
        (InferBody = "application/octet-stream"),
    )),
    responses((status = 200, content(
        (InferResponse = "application/json"),
        (InferResponse = "application/octet-stream"),
    )), InferErrors))]
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

/// Open Inference Protocol inference on one version.
#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer", tag = "inference",
    params(VersionPath),
    request_body(description = "JSON, or (binary tensor data extension, `Inference-Header-Content-Length`) this JSON followed by the inputs' bytes", content(
        (InferBody = "application/json"),
        (InferBody = "application/octet-stream"),
    )),
    responses((status = 200, content(
        (InferResponse = "application/json"),
        (InferResponse = "application/octet-stream"),
    )), InferErrors))]
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
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct StatDuration {
    pub count: u64,
    pub ns: u64,
}

impl From<burnserve_actors::stats::Totals> for StatDuration {
    fn from(totals: burnserve_actors::stats::Totals) -> Self {
        StatDuration {
            count: totals.count,
            ns: totals.ns,
        }
    }
}

/// `GET /v2/models[/{m}[/versions/{v}]]/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub model_stats: Vec<ModelStats>,
}

/// One version's statistics, as Triton writes them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStats {
    pub name: String,
    pub version: String,
    /// Unix milliseconds of the last inference (0: none yet).
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
    pub batch_stats: Vec<BatchStats>,
    /// Not reported (always empty).
    #[schema(value_type = Vec<Object>)]
    pub memory_usage: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferenceStats {
    pub success: StatDuration,
    pub fail: StatDuration,
    pub queue: StatDuration,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
    pub cache_hit: StatDuration,
    pub cache_miss: StatDuration,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStats {
    pub batch_size: usize,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
}

/// Triton's `model_stats` entry of one version (the statistics extension). Burnserve does not
/// split input and output handling from the forward pass: `compute_input` and `compute_output`
/// count the requests with 0 ns, and the whole pass is `compute_infer`; there is no cache.
fn model_stats(
    key: &burnserve_actors::VersionKey,
    s: &burnserve_actors::stats::StatsSnapshot,
) -> ModelStats {
    let none = StatDuration { count: 0, ns: 0 };
    let counted = StatDuration {
        count: s.compute_infer.count,
        ns: 0,
    };
    let batch_stats = s
        .batches
        .iter()
        .map(|(size, totals)| {
            let counted = StatDuration {
                count: totals.count,
                ns: 0,
            };
            BatchStats {
                batch_size: *size,
                compute_input: counted,
                compute_infer: (*totals).into(),
                compute_output: counted,
            }
        })
        .collect();
    ModelStats {
        name: key.model.clone(),
        version: key.version.clone(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: InferenceStats {
            success: s.success.into(),
            fail: s.fail.into(),
            queue: s.queue.into(),
            compute_input: counted,
            compute_infer: s.compute_infer.into(),
            compute_output: counted,
            cache_hit: none,
            cache_miss: none,
        },
        batch_stats,
        memory_usage: Vec::new(),
    }
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
    let model_stats = all.iter().map(|(key, s)| model_stats(key, s)).collect();
    Ok(HttpResponse::Ok().json(StatsResponse { model_stats }))
}

/// `GET /v2/models/stats`: every loaded version's statistics.
#[utoipa::path(get, path = "/v2/models/stats", tag = "v2",
    responses((status = 200, body = StatsResponse)))]
pub async fn stats_all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    stats(&state, None, None).await
}

/// Every loaded version of one model.
#[utoipa::path(get, path = "/v2/models/{model}/stats", tag = "v2", params(ModelPath),
    responses((status = 200, body = StatsResponse), LookupErrors))]
pub async fn stats_model(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    stats(&state, Some(path.into_inner()), None).await
}

/// One version.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/stats", tag = "v2",
    params(VersionPath), responses((status = 200, body = StatsResponse), LookupErrors))]
pub async fn stats_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    stats(&state, Some(model), Some(version)).await
}

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's model configuration (JSON).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfig {
    pub name: String,
    pub version: String,
    pub platform: String,
    pub backend: &'static str,
    pub max_batch_size: usize,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
    pub dynamic_batching: DynamicBatching,
    pub instance_group: Vec<InstanceGroup>,
    /// `device` and `timeout_ms`.
    pub parameters: BTreeMap<String, StringValue>,
}

/// A tensor as Triton's model configuration writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigTensor {
    pub name: String,
    /// `TYPE_FP32`, `TYPE_UINT8`, `TYPE_STRING`.
    pub data_type: String,
    pub dims: Vec<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DynamicBatching {
    pub max_queue_delay_microseconds: u64,
    pub adaptive_delay: bool,
    pub default_queue_policy: QueuePolicy,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePolicy {
    pub max_queue_size: usize,
    pub default_timeout_microseconds: u64,
    pub timeout_action: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceGroup {
    pub count: usize,
    /// `KIND_CPU` or `KIND_GPU`.
    pub kind: &'static str,
    pub gpus: Vec<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StringValue {
    pub string_value: String,
}

fn config_tensor(spec: &TensorSpec) -> ConfigTensor {
    let dims: Vec<usize> = if spec.datatype == BYTES {
        vec![1]
    } else {
        spec.shape.clone()
    };
    let data_type = if spec.datatype == BYTES {
        "STRING"
    } else {
        spec.datatype.as_str()
    };
    ConfigTensor {
        name: spec.name.clone(),
        data_type: format!("TYPE_{data_type}"),
        dims,
        labels: spec.labels.clone(),
    }
}

/// Each instance's forward-pass threads as the configuration reports them: its own pool's
/// size, or `shared` (one instance on the process's pool).
pub fn threads_per_instance(spec: &burnserve_models::ModelSpec) -> String {
    spec.batching
        .instance_pool_size()
        .map_or_else(|| "shared".to_string(), |n| n.to_string())
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
    let parameter = |text: String| StringValue { string_value: text };
    Ok(HttpResponse::Ok().json(ModelConfig {
        name: d.name.clone(),
        version: d.version.clone(),
        platform: format!("burn_{}", spec.architecture),
        backend: "burn",
        max_batch_size: spec.batching.max_batch_size,
        input: vec![config_tensor(&spec.input)],
        output: vec![config_tensor(&spec.output)],
        dynamic_batching: DynamicBatching {
            max_queue_delay_microseconds: delay_us,
            adaptive_delay: spec.batching.adaptive_delay,
            default_queue_policy: QueuePolicy {
                max_queue_size: spec.batching.queue_capacity,
                default_timeout_microseconds: spec.default_timeout().as_micros() as u64,
                timeout_action: "REJECT",
            },
        },
        instance_group: vec![InstanceGroup {
            count: spec.batching.instances.resolve(),
            kind,
            gpus,
        }],
        parameters: BTreeMap::from([
            ("device".to_string(), parameter(d.device.to_string())),
            (
                "threads_per_instance".to_string(),
                parameter(threads_per_instance(spec)),
            ),
            (
                "timeout_ms".to_string(),
                parameter(spec.default_timeout().as_millis().to_string()),
            ),
        ]),
    }))
}

/// `GET /v2/models/{m}/config`: the model configuration extension (the default version's).
#[utoipa::path(get, path = "/v2/models/{model}/config", tag = "v2", params(ModelPath),
    responses((status = 200, body = ModelConfig), LookupErrors))]
pub async fn config_model(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    config(&state, path.into_inner(), None).await
}

/// One version's configuration.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/config", tag = "v2",
    params(VersionPath), responses((status = 200, body = ModelConfig), LookupErrors))]
pub async fn config_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    config(&state, model, Some(version)).await
}
