//! The OpenAPI 3.1 document of the REST API (`GET /openapi.json`): utoipa builds it from the
//! handlers' `#[utoipa::path]` annotations and their request and response types; this module
//! adds what every route shares (the error body, the errors any request may meet, the bearer
//! token) and the schemas serde cannot derive (nested tensors). Schemathesis checks the running
//! server against it in CI (`scripts/check-openapi.sh`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use actix_web::HttpResponse;
use burnserve_models::ErrorType;
use serde_json::{json, Value};
#[cfg(test)]
use utoipa::openapi::path::Parameter;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use super::{admin, embeddings, health, infer, jobs, predict, v2};

/// `{"error", "error_type"}`: every failed request's body.
pub struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        let words: Vec<&str> = {
            let mut words: Vec<&str> = ErrorType::ALL.iter().map(|t| t.as_str()).collect();
            words.dedup();
            words
        };
        schema_of(json!({
            "type": "object",
            "required": ["error", "error_type"],
            "properties": {
                "error": { "type": "string", "description": "What went wrong, for a person." },
                "error_type": {
                    "type": "string",
                    "enum": words,
                    "description": "The kind of error, for a program (ARCHITECTURE.md, \"Errors\")."
                }
            }
        }))
    }
}

impl ToSchema for ErrorBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorBody")
    }
}

/// A tensor's data as JSON: a list of numbers nested to the tensor's shape (or flat), or text
/// items (a string, or a list of strings).
pub struct NestedTensorSchema;

impl PartialSchema for NestedTensorSchema {
    fn schema() -> RefOr<Schema> {
        schema_of(json!({
            "description": "Numbers nested to the tensor's shape (or flat, row-major), or text: a string or a list of strings. Ragged nesting and mixed numbers and strings are refused (400).",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "array",
                    "items": { "anyOf": [{ "type": "number" }, { "type": "string" }, { "type": "array" }] }
                }
            ]
        }))
    }
}

impl ToSchema for NestedTensorSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("NestedTensor")
    }
}

/// A job's result: the JSON its synchronous route answers.
pub struct AnyJson;

impl PartialSchema for AnyJson {
    fn schema() -> RefOr<Schema> {
        schema_of(json!({ "type": "object", "description": "The synchronous route's answer." }))
    }
}

impl ToSchema for AnyJson {}

fn schema_of(value: Value) -> RefOr<Schema> {
    // The values above are fixed and valid: a failure is a programming error caught by the
    // document's own test, never a request's.
    serde_json::from_value(value).unwrap_or_default()
}

/// An error answer, described.
fn error_response(description: &str) -> RefOr<Response> {
    let body = utoipa::openapi::content::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
        .build();
    RefOr::T(
        utoipa::openapi::response::ResponseBuilder::new()
            .description(description)
            .content("application/json", body)
            .build(),
    )
}

fn errors(list: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| (status.to_string(), error_response(description)))
        .collect()
}

/// The errors of a request that names a model or version: 400 for a malformed name, 404 for
/// an unknown one.
pub struct LookupErrors;

impl IntoResponses for LookupErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (400, "`invalid_input`: a malformed model or version name"),
            (404, "`model_not_found`: no such model or version is loaded"),
        ])
    }
}

/// The errors of an inference request beside [`LookupErrors`].
pub struct InferErrors;

impl IntoResponses for InferErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (400, "`invalid_input`: the body does not parse, or its values are out of range"),
            (404, "`model_not_found`: no such model or version is loaded"),
            (
                422,
                "`invalid_input`: the input does not fit the model (shape, type, size)",
            ),
            (
                504,
                "`timeout`: the deadline passed before the answer (the request cost no compute if it had not started)",
            ),
            (
                500,
                "`inference_error`: the forward pass failed (the version's supervisor restarts it)",
            ),
        ])
    }
}

/// The errors of the admin API beside the token's.
pub struct AdminErrors;

impl IntoResponses for AdminErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (400, "`invalid_input`: a malformed name, query or body"),
            (404, "`model_not_found`: not in the repository, or not loaded"),
            (409, "`conflict`: the change contradicts the model's state"),
            (
                422,
                "`load_failed`: the version's files cannot be served (the old instance, if any, keeps serving)",
            ),
        ])
    }
}

/// The errors of the async jobs API.
pub struct JobErrors;

impl IntoResponses for JobErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (400, "`invalid_input`: a malformed body, id, query or Idempotency-Key"),
            (404, "`not_found` / `model_not_found`: no such job (for this tenant) or model"),
            (
                409,
                "`conflict`: an Idempotency-Key reused with another body, or a job no longer pending",
            ),
        ])
    }
}

/// `{model}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// A loaded model's name (its default version, or its canary split).
    pub model: String,
}

/// `{model}` and `{version}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The model's name.
    pub model: String,
    /// One of its versions.
    pub version: String,
}

/// The errors every request may meet, whatever its route: tenants' keys and quotas, the admin
/// token, body limits and deadlines, draining.
const COMMON_ERRORS: [(u16, &str); 7] = [
    (
        401,
        "`unauthorized`: a missing or wrong bearer token (tenants, or the admin API)",
    ),
    (
        403,
        "`forbidden`: the route is switched off by configuration, or the key's tenant may not use it",
    ),
    (
        408,
        "`request_timeout`: the body did not arrive within `server.body_timeout_ms`",
    ),
    (413, "`payload_too_large`: the body passed its limit"),
    (
        429,
        "`overloaded` / `rate_limited`: shed before any compute (a full queue, the server's request bodies in flight, a tenant's quota, a source guessing the admin token); retry after `Retry-After` seconds",
    ),
    (
        500,
        "`internal_error`: the server failed on its own side (the job store's disk)",
    ),
    (
        503,
        "`not_ready` / `shutting_down` / `store_full` / `store_unavailable`: not serving this now; retry (elsewhere)",
    ),
];

/// Adds [`COMMON_ERRORS`] to every operation that does not list them, and the bearer scheme.
struct SharedErrors;

impl Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Ok(mut document) = serde_json::to_value(&*openapi) else {
            return;
        };
        if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
            for item in paths.values_mut().filter_map(Value::as_object_mut) {
                for operation in item.values_mut() {
                    let Some(responses) = operation
                        .get_mut("responses")
                        .and_then(Value::as_object_mut)
                    else {
                        continue;
                    };
                    for (status, description) in COMMON_ERRORS {
                        responses.entry(status.to_string()).or_insert_with(|| {
                            serde_json::to_value(error_response(description)).unwrap_or_default()
                        });
                    }
                }
            }
        }
        document["components"]["securitySchemes"] = json!({
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A tenant's API key (`[[tenants]]`), or `admin.token` for /admin and /v2/repository."
            }
        });
        document["security"] = json!([{}, { "bearer": [] }]);
        if let Ok(updated) = serde_json::from_value(document) {
            *openapi = updated;
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "burnserve",
        description = "Multi-model inference server: simple JSON predict, the Open Inference Protocol (KServe v2, with Triton's binary tensor data, statistics, model configuration and repository extensions), OpenAI-style embeddings, durable async jobs, health and the admin API. gRPC (the v2 proto) is on `grpc.port`; Prometheus metrics at `/metrics`."
    ),
    paths(
        predict::predict,
        predict::predict_version,
        embeddings::embeddings,
        infer::infer,
        infer::infer_version,
        v2::server_metadata,
        v2::server_metadata_slash,
        v2::model_metadata,
        v2::model_metadata_version,
        v2::stats_all,
        v2::stats_model,
        v2::stats_version,
        v2::config_model,
        v2::config_version,
        health::live,
        health::live_v2,
        health::ready,
        health::ready_v2,
        health::model_ready,
        health::model_version_ready,
        jobs::submit_predict,
        jobs::submit_predict_version,
        jobs::submit_embeddings,
        jobs::get,
        jobs::cancel,
        jobs::list,
        admin::list,
        admin::load,
        admin::reload,
        admin::unload,
        admin::routing,
        admin::reload_config,
        admin::pause_jobs,
        admin::resume_jobs,
        admin::repository_index,
        admin::repository_load,
        admin::repository_unload,
        metrics,
        openapi_json,
    ),
    components(schemas(ErrorBody, NestedTensorSchema, AnyJson)),
    modifiers(&SharedErrors),
    tags(
        (name = "inference", description = "Predict, infer and embed"),
        (name = "v2", description = "Open Inference Protocol metadata and extensions"),
        (name = "health", description = "Liveness and readiness"),
        (name = "jobs", description = "Durable async jobs"),
        (name = "admin", description = "Load, unload, reload and route versions (admin token)"),
        (name = "operations", description = "Metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// `GET /metrics` is served by the metrics middleware; this entry only documents it.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition (format 0.0.4); gzip when asked", content_type = "text/plain", body = String)))]
#[allow(dead_code)]
async fn metrics() {}

/// The parameters of `T` (for tests).
#[cfg(test)]
fn params_of<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_parses_and_covers_every_route() {
        let document: Value = serde_json::from_str(document()).expect("JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), 37, "{:?}", paths.keys().collect::<Vec<_>>());
        // The shared errors reach every operation, and every error names the one body.
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("item") {
                let responses = operation["responses"].as_object().expect("responses");
                for status in ["401", "403", "429", "503"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                assert_eq!(
                    responses["503"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody"
                );
            }
        }
        let words =
            &document["components"]["schemas"]["ErrorBody"]["properties"]["error_type"]["enum"];
        assert!(words
            .as_array()
            .expect("enum")
            .contains(&json!("model_not_found")));
        assert_eq!(params_of::<VersionPath>().len(), 2);
    }
}
