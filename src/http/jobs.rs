//! The async jobs API: `POST /v1/models/{m}[/versions/{v}]/jobs` (a simple predict body) and
//! `POST /v1/embeddings/jobs` (an embeddings body) answer `202` with the job's id at once;
//! `GET /v1/jobs/{id}` reads it (with the result, the same JSON the synchronous route answers),
//! `DELETE /v1/jobs/{id}` cancels a pending one, `GET /v1/jobs` lists the caller's jobs with a
//! cursor. `Idempotency-Key` on submit answers the job the key already names. Also the
//! `JobRunner` the workers use: the same code as the synchronous routes.
//!
//! A submit's body is parsed straight into the synchronous route's typed request (never a
//! generic JSON tree) and stored in the compact form of [`body`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use burnserve_actors::jobs::{
    record::{cursor_of, parse_cursor},
    JobError, JobKind, JobRecord, JobRunner, JobService, JobStatus, JobToRun, ListFilter,
    NewSubmission, RunFuture,
};
use burnserve_actors::{InferenceService, VersionKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::embeddings::{self, EmbeddingsRequest};
use super::openapi::{AnyJson, ErrorBody, JobErrors, ModelPath, VersionPath};
use super::predict::{self, PredictRequest};
use super::{ApiError, AppState};

pub mod body;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Jobs per listed page: the default and the most.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

impl From<JobError> for ApiError {
    fn from(err: JobError) -> Self {
        ApiError::Jobs(err)
    }
}

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
fn timestamp(ms: u64) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// A job as the API shows it; `result` once it succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub job_id: String,
    /// `PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELLED` or `EXPIRED`.
    pub status: &'static str,
    pub model: String,
    /// The version resolved at submit: the job runs on it.
    pub version: String,
    /// `predict` or `embeddings`.
    #[schema(value_type = String)]
    pub kind: JobKind,
    /// RFC 3339, UTC.
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Why it failed (`FAILED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorBody>)]
    pub error: Option<burnserve_actors::jobs::record::JobFailure>,
    /// What the synchronous route would have answered (`SUCCEEDED`, read by id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AnyJson>)]
    pub result: Option<Value>,
}

fn view(record: &JobRecord, result: Option<Value>) -> JobView {
    JobView {
        job_id: record.id.to_string(),
        status: record.status.as_str(),
        model: record.model.clone(),
        version: record.version.clone(),
        kind: record.kind,
        created_at: timestamp(record.created_ms),
        started_at: record.started_ms.and_then(timestamp),
        finished_at: record.finished_ms.and_then(timestamp),
        attempts: record.attempts,
        idempotency_key: record.idempotency_key.clone(),
        error: record.error.clone(),
        result,
    }
}

fn location(record: &JobRecord) -> String {
    format!("/v1/jobs/{}", record.id)
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_IDEMPOTENCY_KEY)
        .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(text.to_string()))
}

fn jobs(state: &AppState) -> Result<&JobService, ApiError> {
    state.jobs.as_ref().ok_or_else(|| {
        ApiError::Forbidden("async jobs are switched off (jobs.enabled = false)".into())
    })
}

/// Resolves the version now (a job runs on the version it was submitted to) and stores the job,
/// its body already in the compact form (`body`).
async fn submit(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    (model, version): (String, Option<String>),
    kind: JobKind,
    (body, asked): (Vec<u8>, body::Asked),
) -> Result<HttpResponse, ApiError> {
    let service = jobs(state)?;
    let key = idempotency_key(request)?;
    let described = state.service.describe(&model, version.as_deref()).await?;
    let result_reserve = body::result_reserve(&described.spec, asked);
    let tenant = caller.tenant();
    let submitted = service
        .submit(NewSubmission {
            tenant: tenant.clone(),
            key: VersionKey::new(described.name, described.version),
            kind,
            body_format: body::COMPACT_FORMAT,
            idempotency_key: key,
            body,
            result_reserve,
        })
        .await;
    let (record, created) = match submitted {
        Ok(submitted) => (submitted.record, submitted.created),
        Err(JobError::KeyConflict { existing, digest }) => {
            match legacy_replay(service, &tenant, &existing, &digest).await? {
                true => (*existing, false),
                false => return Err(JobError::KeyConflict { existing, digest }.into()),
            }
        }
        Err(err) => return Err(err.into()),
    };
    let mut response = if created {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Ok()
    };
    Ok(response
        .insert_header((header::LOCATION, location(&record)))
        .json(view(&record, None)))
}

/// Whether a job stored before the compact form (its digest is of canonical JSON) holds the
/// body whose compact digest is `digest`: its stored body is read again (while the job is live;
/// once final the body is gone and a replay is a conflict).
async fn legacy_replay(
    service: &JobService,
    tenant: &str,
    existing: &JobRecord,
    digest: &str,
) -> Result<bool, ApiError> {
    if existing.body_format != body::LEGACY_FORMAT {
        return Ok(false);
    }
    let Some(stored) = service
        .stored_body(tenant, &existing.id.to_string())
        .await?
    else {
        return Ok(false);
    };
    let compact = match existing.kind {
        JobKind::Predict => body::decode_predict(&stored).map(body::encode_predict),
        JobKind::Embeddings => body::decode_embeddings(&stored).map(body::encode_embeddings),
    };
    Ok(compact.is_ok_and(|compact| burnserve_actors::jobs::store::body_digest(&compact) == digest))
}

/// Queues a simple predict body on the model's default version; `202` with the job (`200` with
/// the same job for a repeated `Idempotency-Key`).
#[utoipa::path(post, path = "/v1/models/{model}/jobs", tag = "jobs", params(ModelPath,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: the same key and body answer the same job")),
    request_body = super::predict::PredictRequest,
    responses((status = 202, description = "Queued", body = JobView), (status = 200, description = "The job this Idempotency-Key names", body = JobView), JobErrors))]
pub async fn submit_predict(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PredictRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.check()?;
    let target = (path.into_inner(), None);
    let asked = body::Asked::predict(&body);
    let stored = (body::encode_predict(body), asked);
    submit(&state, &request, &caller, target, JobKind::Predict, stored).await
}

/// Queues a simple predict body on one version.
#[utoipa::path(post, path = "/v1/models/{model}/versions/{version}/jobs", tag = "jobs",
    params(VersionPath, ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = super::predict::PredictRequest,
    responses((status = 202, description = "Queued", body = JobView), (status = 200, description = "The job this Idempotency-Key names", body = JobView), JobErrors))]
pub async fn submit_predict_version(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<PredictRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.check()?;
    let (model, version) = path.into_inner();
    let target = (model, Some(version));
    let asked = body::Asked::predict(&body);
    let stored = (body::encode_predict(body), asked);
    submit(&state, &request, &caller, target, JobKind::Predict, stored).await
}

/// Queues an embeddings body.
#[utoipa::path(post, path = "/v1/embeddings/jobs", tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = super::embeddings::EmbeddingsRequest,
    responses((status = 202, description = "Queued", body = JobView), (status = 200, description = "The job this Idempotency-Key names", body = JobView), JobErrors))]
pub async fn submit_embeddings(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Json<EmbeddingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let target = embeddings::model_and_version(&body.model);
    let asked = body::Asked::embeddings(&body);
    let stored = (body::encode_embeddings(body), asked);
    submit(
        &state,
        &request,
        &caller,
        target,
        JobKind::Embeddings,
        stored,
    )
    .await
}

/// A job id of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// As a submit answered it.
    pub job_id: String,
}

/// Reads a job (with its result once it succeeded).
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "jobs", params(JobPath),
    responses((status = 200, body = JobView), JobErrors))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (record, result) = jobs(&state)?
        .get(&caller.tenant(), &path.into_inner())
        .await?;
    let result = match result {
        Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            JobError::Store(burnserve_actors::jobs::StoreError::Io(format!(
                "job {}'s stored result does not parse: {e}",
                record.id
            )))
        })?),
        None => None,
    };
    Ok(HttpResponse::Ok().json(view(&record, result)))
}

/// Cancels a pending job (409 once it runs).
#[utoipa::path(delete, path = "/v1/jobs/{job_id}", tag = "jobs", params(JobPath),
    responses((status = 200, body = JobView), JobErrors))]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = jobs(&state)?
        .cancel(&caller.tenant(), &path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(view(&record, None)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    status: Option<String>,
    /// Only jobs of this model.
    model: Option<String>,
    /// Jobs per page: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of the caller's jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// The next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's jobs, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobPage), JobErrors))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let status = query
        .status
        .as_deref()
        .map(|text| {
            JobStatus::parse(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "status '{}' is none of {}",
                    text.chars().take(32).collect::<String>(),
                    JobStatus::ALL.map(JobStatus::as_str).join(", ")
                ))
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(|text| {
            parse_cursor(text)
                .ok_or_else(|| ApiError::BadRequest("cursor is not one a listing returned".into()))
        })
        .transpose()?;
    let filter = ListFilter {
        tenant: caller.tenant(),
        status,
        model: query.model,
    };
    let page = jobs(&state)?.list(filter, cursor, limit).await?;
    Ok(HttpResponse::Ok().json(JobPage {
        jobs: page.jobs.iter().map(|record| view(record, None)).collect(),
        next_cursor: page.next.map(cursor_of),
    }))
}

/// Runs a stored body through the same code as its synchronous route, on the version it was
/// submitted to, for the tenant that submitted it.
pub struct HttpJobRunner {
    pub service: InferenceService,
}

impl JobRunner for HttpJobRunner {
    fn run(&self, job: JobToRun) -> RunFuture {
        let service = self.service.clone();
        Box::pin(async move {
            let caller = Caller::background(&job.tenant);
            let (model, version) = (job.key.model.clone(), Some(job.key.version.clone()));
            let invalid =
                |e: String| ApiError::BadRequest(format!("the stored body does not parse: {e}"));
            let answer: Result<Vec<u8>, ApiError> = match job.kind {
                JobKind::Predict => match body::decode_predict(&job.body) {
                    Ok(body) => predict::compute(&service, &caller, model, version, body)
                        .await
                        .map(|(_, answer)| serde_json::to_vec(&answer).unwrap_or_default()),
                    Err(e) => Err(invalid(e)),
                },
                JobKind::Embeddings => match body::decode_embeddings(&job.body) {
                    Ok(body) => embeddings::compute(&service, &caller, model, version, body)
                        .await
                        .map(|(_, answer)| serde_json::to_vec(&answer).unwrap_or_default()),
                    Err(e) => Err(invalid(e)),
                },
            };
            answer.map_err(|err| (err.error_type(), err.to_string()))
        })
    }
}
