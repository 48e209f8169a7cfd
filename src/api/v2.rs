//! KServe v2 / Open Inference Protocol: server and model metadata, and
//! `POST /v2/models/{m}[/versions/{v}]/infer` with FP32 tensors (`data` flat or nested, `id`
//! echoed, `parameters.timeout` in microseconds as Triton reads it).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use burnserve_actors::InferRequest;
use burnserve_models::{RequestInput, TensorSpec, BYTES};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Caller;
use super::predict::timed;
use super::tensor::NestedTensor;
use super::{ApiError, AppState};

pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "burnserve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
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
}

#[derive(Debug, Default, Deserialize)]
pub struct InferParameters {
    /// Deadline in microseconds (Triton's `timeout`); shortens the model's default only.
    #[serde(default)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    pub data: NestedTensor,
}

#[derive(Debug, Serialize)]
struct OutputTensor {
    name: String,
    datatype: &'static str,
    shape: Vec<usize>,
    data: Vec<f32>,
}

async fn run(
    state: &AppState,
    caller: Caller,
    model: String,
    version: Option<String>,
    body: InferBody,
) -> Result<HttpResponse, ApiError> {
    let [input]: [InputTensor; 1] =
        body.inputs.try_into().map_err(|inputs: Vec<InputTensor>| {
            ApiError::BadRequest(format!(
                "expected exactly one input tensor, got {}",
                inputs.len()
            ))
        })?;
    // Flat data takes the declared shape; nested data must agree with it.
    if input.data.shape.len() > 1 && input.data.shape != input.shape {
        return Err(ApiError::BadRequest(format!(
            "input '{}' declares shape {:?} but its data is nested as {:?}",
            input.name, input.shape, input.data.shape
        )));
    }
    let (_, data) = input.data.into_input();
    let tensor = RequestInput::tensor(input.name, input.datatype, input.shape, data);
    let mut request = InferRequest::new(model, version, tensor);
    caller.apply(&mut request);
    request.timeout = body
        .parameters
        .and_then(|p| p.timeout)
        .map(Duration::from_micros);
    let response = state.service.infer(request).await?;
    let mut shape = vec![response.output.rows];
    shape.extend(&response.spec.output.shape);
    let mut builder = timed(&response);
    let body = json!({
        "model_name": response.key.model,
        "model_version": response.key.version,
        "id": body.id,
        "outputs": [OutputTensor {
            name: response.spec.output.name.clone(),
            datatype: "FP32",
            shape,
            data: response.output.output,
        }],
    });
    Ok(builder.json(body))
}

pub async fn infer(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<InferBody>,
) -> Result<HttpResponse, ApiError> {
    run(&state, caller, path.into_inner(), None, body.into_inner()).await
}

pub async fn infer_version(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<InferBody>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    run(&state, caller, model, Some(version), body.into_inner()).await
}
