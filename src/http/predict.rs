//! The simple JSON predict API: `POST /v1/models/{m}[/versions/{v}]/predict` with
//! `{"inputs": [...], "datatype"?, "timeout_ms"?, "top_k"?}`; answers one output row per item and, for
//! classifiers with labels, the top-k classes of each.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use burnserve_actors::{InferRequest, InferResponse, InferenceService};
use burnserve_models::{ModelSpec, RequestInput, TensorData};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::openapi::{InferErrors, ModelPath, NestedTensorSchema, VersionPath};
use super::tensor::NestedTensor;
use super::{millis, ApiError, AppState};

/// Top classes reported per item when the request does not say.
pub const DEFAULT_TOP_K: usize = 3;
/// The longest `timeout_ms` a request may give: an hour (a deadline only shortens the model's).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// One item (the model's input shape) or a list of items, nested or not; for text models
    /// a string or a list of strings.
    #[schema(value_type = NestedTensorSchema)]
    pub inputs: NestedTensor,
    /// Shortens the model's deadline for this request (milliseconds, at most an hour).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3_600_000)]
    pub timeout_ms: Option<u64>,
    /// Top classes reported per item (classifiers with labels); default 3.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub top_k: Option<usize>,
    /// `FP32` (default) or `UINT8` pixels for models that accept them.
    #[serde(default)]
    pub datatype: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    pub model: String,
    pub version: String,
    /// One flattened output per item.
    pub outputs: Vec<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<Vec<Prediction>>>,
}

impl PredictRequest {
    /// What serde cannot check: `top_k` at least 1, `timeout_ms` at most an hour.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.top_k == Some(0) {
            return Err(ApiError::BadRequest("top_k must be at least 1".into()));
        }
        if self.timeout_ms.is_some_and(|t| t > MAX_TIMEOUT_MS) {
            return Err(ApiError::BadRequest(format!(
                "timeout_ms must be at most {MAX_TIMEOUT_MS} (an hour)"
            )));
        }
        Ok(())
    }
}

/// One ranked class of a classifier's output.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Prediction {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub score: f32,
}

/// The `k` highest scores of one output row, best first (ties keep the lower index first).
pub fn top_k(spec: &ModelSpec, row: &[f32], k: usize) -> Vec<Prediction> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|index| Prediction {
            index,
            label: spec.output().labels.get(index).cloned(),
            score: row[index],
        })
        .collect()
}

/// Adds the `x-queue-time` and `x-inference-time` headers (ms), and the same two as
/// `Server-Timing` entries (`queue`, `infer`) beside the `total` every response carries.
pub fn timed(response: &InferResponse) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    let queue = millis(response.output.queue_time);
    let inference = millis(response.output.inference_time);
    let timing = format!("queue;dur={queue}, infer;dur={inference}");
    builder
        .insert_header(("x-queue-time", queue))
        .insert_header(("x-inference-time", inference))
        .append_header(("server-timing", timing));
    builder
}

/// Serves one simple predict body: the response JSON, and what the runtime answered (for the
/// timing headers). Shared by the route and the async jobs.
pub async fn compute(
    service: &InferenceService,
    caller: &Caller,
    model: String,
    version: Option<String>,
    body: PredictRequest,
) -> Result<(InferResponse, PredictResponse), ApiError> {
    body.check()?;
    let top = body.top_k.unwrap_or(DEFAULT_TOP_K);
    let (shape, data) = body.inputs.into_input();
    let data = as_declared(data, body.datatype.as_deref())?;
    let mut request = InferRequest::new(model, version, RequestInput::unnamed(shape, data));
    caller.apply(&mut request);
    request.timeout = body.timeout_ms.map(Duration::from_millis);
    let response = service.infer(request).await?;
    let outputs = rows_of(&response)?;
    let predictions = (!response.spec.output().labels.is_empty()).then(|| {
        outputs
            .iter()
            .map(|row| top_k(&response.spec, row, top))
            .collect()
    });
    let answer = PredictResponse {
        model: response.key.model.clone(),
        version: response.key.version.clone(),
        outputs,
        predictions,
    };
    Ok((response, answer))
}

/// The simple API's numbers as the datatype the request declares: `FP32` (default), or `UINT8`
/// pixels (integers 0–255) for models that accept them.
fn as_declared(data: TensorData, datatype: Option<&str>) -> Result<TensorData, ApiError> {
    match (datatype, data) {
        (None | Some("FP32"), data) => Ok(data),
        (Some("UINT8"), TensorData::F32(values)) => values
            .iter()
            .enumerate()
            .map(|(index, &v)| {
                if (0.0..=255.0).contains(&v) && v.fract() == 0.0 {
                    Ok(v as u8)
                } else {
                    Err(ApiError::BadRequest(format!(
                        "UINT8 value {v} at flat index {index} is not an integer in 0..=255"
                    )))
                }
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(TensorData::U8),
        (Some(other), _) => Err(ApiError::BadRequest(format!(
            "datatype '{}' is not one of this API's (FP32, UINT8); the v2 API takes every \
             KServe datatype",
            other.chars().take(16).collect::<String>()
        ))),
    }
}

/// The first output, one row per item (this API answers FP32 outputs).
pub(crate) fn rows_of(response: &InferResponse) -> Result<Vec<Vec<f32>>, ApiError> {
    let values = response.output.values().ok_or_else(|| {
        ApiError::BadRequest(format!(
            "'{}' gives {} output; use the v2 API (/v2/models/{{model}}/infer) for it",
            response.key,
            response
                .output
                .outputs
                .first()
                .map_or("no", |t| t.datatype().as_str())
        ))
    })?;
    let item_len = (values.len() / response.output.rows.max(1)).max(1);
    Ok(values.chunks(item_len).map(<[f32]>::to_vec).collect())
}

async fn run(
    state: &AppState,
    caller: Caller,
    model: String,
    version: Option<String>,
    body: PredictRequest,
) -> Result<HttpResponse, ApiError> {
    let (response, answer) = compute(&state.service, &caller, model, version, body).await?;
    Ok(timed(&response).json(answer))
}

/// Runs the model's default version (or its canary split) on one item or a batch of items.
#[utoipa::path(post, path = "/v1/models/{model}/predict", tag = "inference", params(ModelPath),
    request_body = PredictRequest,
    responses((status = 200, description = "One output row per item, and the top classes of classifiers", body = PredictResponse), InferErrors))]
pub async fn predict(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PredictRequest>,
) -> Result<HttpResponse, ApiError> {
    run(&state, caller, path.into_inner(), None, body.into_inner()).await
}

/// Runs one version.
#[utoipa::path(post, path = "/v1/models/{model}/versions/{version}/predict", tag = "inference",
    params(VersionPath), request_body = PredictRequest,
    responses((status = 200, description = "One output row per item, and the top classes of classifiers", body = PredictResponse), InferErrors))]
pub async fn predict_version(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<PredictRequest>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.into_inner();
    run(&state, caller, model, Some(version), body.into_inner()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_ranks_scores_and_names_labels() {
        let spec = ModelSpec::from_toml(
            "architecture = \"mlp\"\n[input]\nname = \"x\"\nshape = [2]\n\
             [output]\nname = \"y\"\nshape = [3]\nlabels = [\"a\", \"b\", \"c\"]",
        )
        .expect("valid spec");
        let ranked = top_k(&spec, &[0.2, 0.7, 0.1], 2);
        assert_eq!(ranked.len(), 2);
        assert_eq!(
            (ranked[0].index, ranked[0].label.as_deref()),
            (1, Some("b"))
        );
        assert_eq!((ranked[1].index, ranked[1].score), (0, 0.2));
        assert_eq!(top_k(&spec, &[0.5, 0.5, 0.0], 1)[0].index, 0);
    }
}
