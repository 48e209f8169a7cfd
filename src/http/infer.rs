//! `POST /v2/models/{m}[/versions/{v}]/infer` over HTTP, a thin adapter over [`crate::kserve`]:
//! the body read (JSON, or with `Inference-Header-Content-Length` a JSON header followed by
//! binary tensor data), each input handed to the core as JSON data or its bytes of the binary
//! section, and the outputs written back as JSON or binary data as the request asked.

mod body;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

pub use body::{InferBody, InputTensor};

use super::auth::Caller;
use super::binary;
use super::openapi::{InferErrors, ModelPath, VersionPath};
use super::predict::timed;
use super::{ApiError, AppState};
use crate::kserve::json::JsonOut;
use crate::kserve::request::{self, Call, Payload, RequestedOutput, WireInput};
use crate::kserve::response;

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

/// One input as the core takes it: its JSON data, or its bytes of the binary section.
fn wire_input<'a>(
    input: InputTensor,
    section: &mut binary::Section<'a>,
) -> Result<WireInput<'a>, ApiError> {
    let size = input.parameters.and_then(|p| p.binary_data_size);
    let payload = match (input.data, size) {
        (Some(body::InputData::Typed(json)), None) => Payload::Json(json),
        (Some(body::InputData::Deferred(data)), None) => {
            let datatype = request::datatype(&input.name, &input.datatype)?;
            let json = data
                .typed(datatype)
                .map_err(|e| ApiError::BadRequest(format!("input '{}': data: {e}", input.name)))?;
            Payload::Json(json)
        }
        (None, Some(size)) => Payload::Raw(section.take(&input.name, size)?),
        (Some(_), Some(_)) => Payload::Both("data and parameters.binary_data_size"),
        (None, None) => Payload::Missing("data (nor parameters.binary_data_size)"),
    };
    Ok(WireInput {
        name: input.name,
        datatype: input.datatype,
        shape: input.shape,
        payload,
    })
}

async fn run(
    state: &AppState,
    caller: Caller,
    http: &HttpRequest,
    (model, version): (String, Option<String>),
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let (header, binary_section) = binary::split(http.headers(), body)?;
    let body: InferBody = serde_json::from_slice(header)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let mut section = binary::Section::new(binary_section);
    let wires = body
        .inputs
        .into_iter()
        .map(|input| wire_input(input, &mut section))
        .collect::<Result<Vec<_>, _>>()?;
    // Each input's own mistakes first, then bytes no input took.
    let input = request::decode_all(wires.into_iter())?;
    section.finish()?;
    let outputs: Vec<RequestedOutput> = body
        .outputs
        .unwrap_or_default()
        .into_iter()
        .map(RequestedOutput::from)
        .collect();
    request::check_outputs(&outputs)?;
    let parameters = body.parameters.unwrap_or_default();
    let timeout = request::timeout(parameters.timeout.map(|t| t.as_u64()))?;
    let call = Call {
        model,
        version,
        input,
        outputs,
        timeout,
    };
    let (mut request, outputs) = call.into_request();
    caller.apply(&mut request);
    let mut response = state.service.infer(request).await?;
    let tensors = std::mem::take(&mut response.output.outputs);
    let binary_all = parameters.binary_data_output == Some(true);
    let answers = response::select(tensors, &outputs, (binary_all, true), &response.spec)?;
    let mut binary = Vec::new();
    let written = answers
        .iter()
        .map(|answer| {
            let tensor = &answer.tensor;
            let mut output = OutputTensor {
                name: tensor.name.clone(),
                datatype: tensor.datatype().as_str(),
                shape: tensor.shape.clone(),
                data: None,
                parameters: None,
            };
            if answer.binary {
                let start = binary.len();
                burnserve_models::tensor::encode_le_into(&tensor.data, &mut binary);
                output.parameters = Some(OutputTensorParameters {
                    binary_data_size: binary.len() - start,
                });
            } else {
                output.data = Some(JsonOut(&tensor.data));
            }
            output
        })
        .collect();
    let answer = InferResponse {
        model_name: &response.key.model,
        model_version: &response.key.version,
        id: body.id.as_deref(),
        outputs: written,
    };
    let mut builder = timed(&response);
    if !answers.iter().any(|a| a.binary) {
        return Ok(builder.json(answer));
    }
    let mut framed = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::BadRequest(format!("cannot encode the response: {e}")))?;
    let header_length = framed.len();
    framed.extend_from_slice(&binary);
    Ok(builder
        .insert_header((binary::HEADER_LENGTH, header_length.to_string()))
        .content_type("application/octet-stream")
        .body(framed))
}

/// An inference response (JSON; with binary outputs, this JSON followed by their bytes).
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    /// The request's `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub outputs: Vec<OutputTensor<'a>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensor<'a> {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    /// Row-major elements (absent when the output is binary); NaN and infinities are `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<JsonOut<'a>>,
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
