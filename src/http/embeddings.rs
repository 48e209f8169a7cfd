//! The OpenAI-style embeddings API: `POST /v1/embeddings` with `{"model", "input"}` (a string or
//! a list of strings), answered in OpenAI's shape so existing clients work unchanged. `model`
//! is a model name (default version) or `name/version`.

use actix_web::{web, HttpResponse};
use burnserve_actors::{InferRequest, InferResponse, InferenceService};
use burnserve_models::{RequestInput, TensorData};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::openapi::{InferErrors, NestedTensorSchema};
use super::predict::timed;
use super::tensor::NestedTensor;
use super::{ApiError, AppState};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// A model name (its default version) or `name/version`.
    pub model: String,
    /// A string or a list of strings.
    #[schema(value_type = NestedTensorSchema)]
    pub input: NestedTensor,
    /// Only `float` is supported.
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Must equal the model's output size when given (no truncated embeddings).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Accepted for compatibility; not used.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Embedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
}

/// Embeds texts, answered in OpenAI's shape.
#[utoipa::path(post, path = "/v1/embeddings", tag = "inference", request_body = EmbeddingsRequest,
    responses((status = 200, description = "One embedding per text", body = EmbeddingsResponse), InferErrors))]
pub async fn embeddings(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<EmbeddingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (model, version) = model_and_version(&body.model);
    let (response, answer) = compute(&state.service, &caller, model, version, body).await?;
    Ok(timed(&response).json(answer))
}

/// `model` as the body names it: `name` (its default version) or `name/version`.
pub fn model_and_version(model: &str) -> (String, Option<String>) {
    match model.split_once('/') {
        Some((model, version)) => (model.to_string(), Some(version.to_string())),
        None => (model.to_string(), None),
    }
}

/// Embeds one body's texts on `model` (`version`): the response JSON, and what the runtime
/// answered (for the timing headers). Shared by the route and the async jobs.
pub async fn compute(
    service: &InferenceService,
    caller: &Caller,
    model: String,
    version: Option<String>,
    body: EmbeddingsRequest,
) -> Result<(InferResponse, EmbeddingsResponse), ApiError> {
    if let Some(format) = body.encoding_format.as_deref().filter(|f| *f != "float") {
        return Err(ApiError::BadRequest(format!(
            "encoding_format '{format}' is not supported (float only)"
        )));
    }
    let (shape, data) = body.input.into_input();
    if !matches!(data, TensorData::Bytes(_)) {
        return Err(ApiError::BadRequest(
            "input must be a string or a list of strings".into(),
        ));
    }
    let input = RequestInput::unnamed(shape, data);
    let mut request = InferRequest::new(model, version, input);
    caller.apply(&mut request);
    // Checked by the router before the job is queued: a wrong size costs no compute.
    request.output_len = body.dimensions;
    let response = service.infer(request).await?;
    let data = super::predict::rows_of(&response)?
        .into_iter()
        .enumerate()
        .map(|(index, row)| Embedding {
            object: "embedding",
            index,
            embedding: row,
        })
        .collect();
    let tokens = response.output.tokens;
    let answer = EmbeddingsResponse {
        object: "list",
        data,
        model: format!("{}/{}", response.key.model, response.key.version),
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Ok((response, answer))
}
