//! Async jobs over real HTTP: submit, poll, results equal to the synchronous route and to the
//! network run in-process, idempotency keys, cancel, expiry and retention, a full store, tenants,
//! unloaded versions, hostile input, a store that cannot open, jobs stored before the compact
//! body form, and a `kill -9` in the middle of 500 jobs with `job_queue_depth` checked against
//! the store at every sample. (A full disk, big bodies and per-tenant shares:
//! `tests/hostile_jobs.rs`.)

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use burnserve_models::{arch::mlp, forward_f32, load_model, Device, ModelSpec};
use common::process::{burnserve, free_port, wait_until_ready, Killed};
use common::*;
use serde_json::{json, Value};

/// The same version's network run in this process.
fn in_process(dir: &std::path::Path, items: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let spec = ModelSpec::from_dir(dir).unwrap();
    let mut model = load_model(&spec, dir, Device::Cpu).unwrap();
    items
        .iter()
        .map(|item| forward_f32(model.as_mut(), &spec, item.clone(), 1).unwrap())
        .collect()
}

fn assert_close(served: &[f32], reference: &[f32]) {
    assert_eq!(served.len(), reference.len());
    for (s, r) in served.iter().zip(reference) {
        assert!((s - r).abs() <= 1e-5, "served {served:?} vs {reference:?}");
    }
}

fn tenant(name: &str, key: &str) -> String {
    format!("[[tenants]]\nname = \"{name}\"\napi_key = \"{key}\"\n")
}

const ALPHA: &str = "alpha-key-0123456789abcdef";
const BETA: &str = "beta-key-0123456789abcdef";

/// Sends a request with optional bearer token and `Idempotency-Key`.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    idempotency_key: Option<&str>,
) -> (u16, Value, awc::http::header::HeaderMap) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .client
        .request(method, server.url(path))
        .insert_header(("content-type", "application/json"));
    if let Some(token) = token {
        request = request.insert_header(("authorization", format!("Bearer {token}")));
    }
    if let Some(key) = idempotency_key {
        request = request.insert_header(("idempotency-key", key));
    }
    let mut response = request.send_body(body.to_string()).await.unwrap();
    let bytes = response.body().limit(16 << 20).await.unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        response.headers().clone(),
    )
}

/// Polls a job until it is final (at most 30 s).
async fn wait_final(server: &TestServer, id: &str, token: Option<&str>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, job, _) =
            call(server, "GET", &format!("/v1/jobs/{id}"), "", token, None).await;
        assert_eq!(status, 200, "{job}");
        let state = job["status"].as_str().unwrap().to_string();
        if !["PENDING", "RUNNING"].contains(&state.as_str()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn submit(server: &TestServer, path: &str, body: &Value) -> String {
    let (status, job, headers) = call(server, "POST", path, &body.to_string(), None, None).await;
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        headers.get("location").unwrap().to_str().unwrap(),
        format!("/v1/jobs/{id}")
    );
    id
}

async fn pending_listed(server: &TestServer, token: Option<&str>) -> usize {
    let (status, page, _) = call(
        server,
        "GET",
        "/v1/jobs?status=PENDING&limit=1000",
        "",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["jobs"].as_array().unwrap().len()
}

#[actix_web::test]
async fn a_job_answers_what_predict_answers_and_is_counted() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let items = mlp_items(3);
    let body = json!({ "inputs": items, "top_k": 2 });
    let (status, job, headers) = server.post("/v1/models/mlp/jobs", &body).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        (job["status"].as_str(), job["model"].as_str()),
        (Some("PENDING"), Some("mlp"))
    );
    // Resolved at submit: the default version then.
    assert_eq!(job["version"], "2");
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'), "{job}");
    let id = job["job_id"].as_str().unwrap();
    assert_eq!(id.len(), 28);
    assert_eq!(
        headers.get("location").unwrap().to_str().unwrap(),
        format!("/v1/jobs/{id}")
    );

    let done = wait_final(&server, id, None).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["attempts"], 1);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    let (status, sync, _) = server.post("/v1/models/mlp/predict", &body).await;
    assert_eq!(status, 200);
    let result = &done["result"];
    assert_eq!(result["model"], sync["model"]);
    assert_eq!(result["version"], sync["version"]);
    assert_eq!(result["predictions"], sync["predictions"]);
    let reference = in_process(&fixture.version_dir("mlp", "2"), &items);
    for (row, expected) in result["outputs"].as_array().unwrap().iter().zip(&reference) {
        assert_close(&floats(row), expected);
    }

    let metrics = server.metrics().await;
    let mv = [("model", "mlp"), ("version", "2")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = mv.to_vec();
        labels.push(extra);
        labels
    };
    assert_eq!(
        metric(&metrics, "jobs_total", &with(("outcome", "succeeded"))),
        1.0
    );
    for outcome in ["failed", "cancelled", "expired"] {
        assert_eq!(
            sample(&metrics, "jobs_total", &with(("outcome", outcome))),
            Some(0.0)
        );
    }
    assert_eq!(sample(&metrics, "job_queue_depth", &mv), Some(0.0));
    assert_eq!(metric(&metrics, "job_duration_seconds_count", &mv), 1.0);
    // The job went through the router like any request: two requests to mlp/2.
    assert_eq!(
        metric(&metrics, "inference_requests_total", &mv),
        2.0,
        "the job and the synchronous predict"
    );
    // Every loaded version has its job series from load on.
    assert_eq!(
        sample(
            &metrics,
            "job_queue_depth",
            &[("model", "mlp"), ("version", "1")]
        ),
        Some(0.0)
    );
    server.stop().await;
}

#[actix_web::test]
async fn an_idempotency_key_replays_its_job_and_refuses_another_body() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let body = r#"{"inputs": [[0.1, 0.2, 0.3, 0.4]], "top_k": 1}"#;
    let path = "/v1/models/echo/jobs";
    let (status, first, _) = call(&server, "POST", path, body, None, Some("order-17")).await;
    assert_eq!(status, 202, "{first}");
    // The same body, spaced and ordered differently: the same job, 200.
    let same = r#"{ "top_k":1,"inputs":[[0.1,0.2,0.3,0.4]] }"#;
    let (status, replay, headers) = call(&server, "POST", path, same, None, Some("order-17")).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["job_id"], first["job_id"]);
    assert!(headers.get("location").is_some());
    let other = r#"{"inputs": [[0.9, 0.2, 0.3, 0.4]]}"#;
    let (status, conflict, _) = call(&server, "POST", path, other, None, Some("order-17")).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error_type"], "conflict");
    // Without a key, each submit is a job of its own.
    let (_, a, _) = call(&server, "POST", path, body, None, None).await;
    let (_, b, _) = call(&server, "POST", path, body, None, None).await;
    assert_ne!(a["job_id"], b["job_id"]);
    for bad in ["a b".to_string(), "k".repeat(256), "é".into()] {
        let (status, err, _) = call(&server, "POST", path, body, None, Some(&bad)).await;
        assert_eq!(
            (status, err["error_type"].as_str()),
            (400, Some("invalid_input")),
            "{bad}"
        );
    }
    let first_id = first["job_id"].as_str().unwrap();
    let done = wait_final(&server, first_id, None).await;
    assert_eq!(done["status"], "SUCCEEDED");
    // The echo model answers its input.
    assert_eq!(floats(&done["result"]["outputs"][0]), [0.1, 0.2, 0.3, 0.4]);
    let metrics = server.metrics().await;
    let labels = [
        ("model", "echo"),
        ("version", "1"),
        ("outcome", "succeeded"),
    ];
    for id in [&a["job_id"], &b["job_id"]] {
        wait_final(&server, id.as_str().unwrap(), None).await;
    }
    let after = server.metrics().await;
    assert_eq!(metric(&after, "jobs_total", &labels), 3.0, "{metrics}");
    server.stop().await;
}

#[actix_web::test]
async fn pending_jobs_cancel_running_ones_do_not_and_pause_holds_the_queue() {
    let fixture = Fixture::new();
    let settings = fixture.settings_toml(&format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[jobs]\nmax_running_per_version = 1\n"
    ));
    let server = TestServer::start(burnserve::Settings::from_toml(&settings).unwrap()).await;
    let (status, paused) = server.admin("POST", "/admin/jobs/pause", "").await;
    assert_eq!((status, &paused["paused"]), (200, &json!(true)), "{paused}");
    let body = json!({ "inputs": [[0.5, 0.25]] });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit(&server, "/v1/models/slow/jobs", &body).await);
    }
    let depth = [("model", "slow"), ("version", "1")];
    assert_eq!(
        metric(&server.metrics().await, "job_queue_depth", &depth),
        3.0
    );
    assert_eq!(pending_listed(&server, None).await, 3);

    let (status, cancelled, _) = call(
        &server,
        "DELETE",
        &format!("/v1/jobs/{}", ids[2]),
        "",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    let (status, again, _) = call(
        &server,
        "DELETE",
        &format!("/v1/jobs/{}", ids[2]),
        "",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, again["error_type"].as_str()),
        (409, Some("conflict")),
        "{again}"
    );
    assert_eq!(
        metric(&server.metrics().await, "job_queue_depth", &depth),
        2.0
    );

    let (status, resumed) = server.admin("POST", "/admin/jobs/resume", "").await;
    assert_eq!((status, &resumed["paused"]), (200, &json!(false)));
    // The first job runs (300 ms); it cannot be cancelled then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, job, _) = call(
            &server,
            "GET",
            &format!("/v1/jobs/{}", ids[0]),
            "",
            None,
            None,
        )
        .await;
        if job["status"] == "RUNNING" {
            break;
        }
        assert_eq!(job["status"], "PENDING", "{job}");
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One at a time (max_running_per_version = 1), in submit order: the second waits.
    let second = format!("/v1/jobs/{}", ids[1]);
    let (_, second, _) = call(&server, "GET", &second, "", None, None).await;
    assert_eq!(second["status"], "PENDING", "{second}");
    let (status, running, _) = call(
        &server,
        "DELETE",
        &format!("/v1/jobs/{}", ids[0]),
        "",
        None,
        None,
    )
    .await;
    assert_eq!(status, 409, "{running}");
    assert!(
        running["error"].as_str().unwrap().contains("RUNNING"),
        "{running}"
    );
    for id in &ids[..2] {
        assert_eq!(wait_final(&server, id, None).await["status"], "SUCCEEDED");
    }
    let metrics = server.metrics().await;
    let count = |outcome| {
        metric(
            &metrics,
            "jobs_total",
            &[("model", "slow"), ("version", "1"), ("outcome", outcome)],
        )
    };
    assert_eq!((count("succeeded"), count("cancelled")), (2.0, 1.0));
    assert_eq!(metric(&metrics, "job_queue_depth", &depth), 0.0);
    // Cancelled jobs never ran: only the two that did are timed.
    assert_eq!(metric(&metrics, "job_duration_seconds_count", &depth), 2.0);
    let unknown = "/v1/jobs/0000000000ff0000000000000000";
    let (status, err, _) = call(&server, "DELETE", unknown, "", None, None).await;
    assert_eq!(
        (status, err["error_type"].as_str()),
        (404, Some("not_found"))
    );
    server.stop().await;
}

#[actix_web::test]
async fn jobs_expire_when_never_started_and_finished_ones_go_after_retention() {
    let fixture = Fixture::new();
    let settings = fixture.settings_toml(&format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[jobs]\nretention_s = 1\nmax_pending_age_s = 1\n"
    ));
    let server = TestServer::start(burnserve::Settings::from_toml(&settings).unwrap()).await;
    server.admin("POST", "/admin/jobs/pause", "").await;
    let body = json!({ "inputs": [[1.0, 2.0, 3.0, 4.0]] });
    let stale = [
        submit(&server, "/v1/models/echo/jobs", &body).await,
        submit(&server, "/v1/models/echo/jobs", &body).await,
    ];
    for id in &stale {
        let job = wait_final(&server, id, None).await;
        assert_eq!(job["status"], "EXPIRED", "{job}");
        assert_eq!(job["error"]["error_type"], "timeout");
        assert_eq!(job["attempts"], 0);
    }
    let metrics = server.metrics().await;
    let labels = |outcome| [("model", "echo"), ("version", "1"), ("outcome", outcome)];
    assert_eq!(metric(&metrics, "jobs_total", &labels("expired")), 2.0);
    let mv = [("model", "echo"), ("version", "1")];
    assert_eq!(metric(&metrics, "job_queue_depth", &mv), 0.0);
    server.admin("POST", "/admin/jobs/resume", "").await;
    let ran = submit(&server, "/v1/models/echo/jobs", &body).await;
    assert_eq!(wait_final(&server, &ran, None).await["status"], "SUCCEEDED");
    // A second after it finished the sweep deletes it (and the expired ones), result and all.
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in stale.iter().chain([&ran]) {
        loop {
            let (status, job, _) =
                call(&server, "GET", &format!("/v1/jobs/{id}"), "", None, None).await;
            if status == 404 {
                assert_eq!(job["error_type"], "not_found");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} kept past retention: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (_, page, _) = call(&server, "GET", "/v1/jobs", "", None, None).await;
    assert_eq!(page["jobs"], json!([]));
    server.stop().await;
}

#[actix_web::test]
async fn a_full_store_answers_503_and_keeps_what_it_holds() {
    let fixture = Fixture::new();
    let settings = fixture.settings_toml(&format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[jobs]\nmax_pending = 2\n"
    ));
    let server = TestServer::start(burnserve::Settings::from_toml(&settings).unwrap()).await;
    server.admin("POST", "/admin/jobs/pause", "").await;
    let path = "/v1/models/echo/jobs";
    let body = |x: f32| json!({ "inputs": [[x, 0.0, 0.0, 0.0]] }).to_string();
    let (status, first, _) = call(&server, "POST", path, &body(1.0), None, Some("first")).await;
    assert_eq!(status, 202);
    let second = submit(&server, path, &json!({ "inputs": [[2.0, 0.0, 0.0, 0.0]] })).await;
    for n in 0..5 {
        let (status, err, headers) =
            call(&server, "POST", path, &body(3.0 + n as f32), None, None).await;
        assert_eq!(
            (status, err["error_type"].as_str()),
            (503, Some("store_full")),
            "{err}"
        );
        assert_eq!(headers.get("retry-after").unwrap(), "5");
        assert!(
            err["error"].as_str().unwrap().contains("jobs.max_pending"),
            "{err}"
        );
    }
    // A replay of a stored job is still answered.
    let (status, replay, _) = call(&server, "POST", path, &body(1.0), None, Some("first")).await;
    assert_eq!((status, &replay["job_id"]), (200, &first["job_id"]));
    assert_eq!(pending_listed(&server, None).await, 2);
    server.admin("POST", "/admin/jobs/resume", "").await;
    let first = wait_final(&server, first["job_id"].as_str().unwrap(), None).await;
    assert_eq!(floats(&first["result"]["outputs"][0]), [1.0, 0.0, 0.0, 0.0]);
    let second = wait_final(&server, &second, None).await;
    assert_eq!(
        floats(&second["result"]["outputs"][0]),
        [2.0, 0.0, 0.0, 0.0]
    );
    // Room again.
    submit(&server, path, &json!({ "inputs": [[4.0, 0.0, 0.0, 0.0]] })).await;
    server.stop().await;
}

#[actix_web::test]
async fn a_tenant_never_sees_another_tenants_jobs() {
    let fixture = Fixture::new();
    let extra = format!("{}{}", tenant("alpha", ALPHA), tenant("beta", BETA));
    let server =
        TestServer::start(burnserve::Settings::from_toml(&fixture.settings_toml(&extra)).unwrap())
            .await;
    let body = json!({ "inputs": [[1.0, 2.0, 3.0, 4.0]] }).to_string();
    let (status, job, _) = call(
        &server,
        "POST",
        "/v1/models/echo/jobs",
        &body,
        Some(ALPHA),
        Some("k"),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().unwrap();
    let path = format!("/v1/jobs/{id}");
    assert_eq!(
        wait_final(&server, id, Some(ALPHA)).await["status"],
        "SUCCEEDED"
    );
    for method in ["GET", "DELETE"] {
        let (status, err, _) = call(&server, method, &path, "", Some(BETA), None).await;
        assert_eq!(
            (status, err["error_type"].as_str()),
            (404, Some("not_found")),
            "{method}"
        );
    }
    let (_, beta_page, _) = call(&server, "GET", "/v1/jobs", "", Some(BETA), None).await;
    assert_eq!(beta_page["jobs"], json!([]));
    let (_, alpha_page, _) = call(&server, "GET", "/v1/jobs", "", Some(ALPHA), None).await;
    assert_eq!(alpha_page["jobs"][0]["job_id"], job["job_id"]);
    // The same key from another tenant is another job.
    let (status, beta_job, _) = call(
        &server,
        "POST",
        "/v1/models/echo/jobs",
        &body,
        Some(BETA),
        Some("k"),
    )
    .await;
    assert_eq!(status, 202);
    assert_ne!(beta_job["job_id"], job["job_id"]);
    let (status, err, _) = call(&server, "GET", &path, "", None, None).await;
    assert_eq!(
        (status, err["error_type"].as_str()),
        (401, Some("unauthorized"))
    );
    server.stop().await;
}

#[actix_web::test]
async fn jobs_of_an_unloaded_version_fail_model_not_found_and_leave_no_series() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    server.admin("POST", "/admin/jobs/pause", "").await;
    let body = json!({ "inputs": mlp_items(1) });
    let ids = [
        submit(&server, "/v1/models/mlp/versions/1/jobs", &body).await,
        submit(&server, "/v1/models/mlp/versions/1/jobs", &body).await,
    ];
    let (status, unloaded) = server
        .admin("DELETE", "/admin/models/mlp/versions/1", "")
        .await;
    assert_eq!(status, 200, "{unloaded}");
    server.admin("POST", "/admin/jobs/resume", "").await;
    for id in &ids {
        let job = wait_final(&server, id, None).await;
        assert_eq!(job["status"], "FAILED", "{job}");
        assert_eq!(job["error"]["error_type"], "model_not_found");
    }
    let metrics = server.metrics().await;
    for name in [
        "job_queue_depth",
        "jobs_total",
        "job_duration_seconds_count",
    ] {
        let left: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("version=\"1\"") && l.contains("mlp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // A submit to it now is refused at once.
    let (status, err) = {
        let (s, e, _) = call(
            &server,
            "POST",
            "/v1/models/mlp/versions/1/jobs",
            &body.to_string(),
            None,
            None,
        )
        .await;
        (s, e)
    };
    assert_eq!(
        (status, err["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    server.stop().await;
}

#[actix_web::test]
async fn hostile_job_requests_get_clear_errors() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "GET",
            "/v1/jobs/..%2F..%2Fetc%2Fpasswd",
            "",
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/jobs/0000000000010000000000000000",
            "",
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/jobs/00000000000100000000000000000",
            "",
            404,
            "not_found",
        ),
        ("DELETE", "/v1/jobs/%00", "", 404, "not_found"),
        ("GET", "/v1/jobs?limit=0", "", 400, "invalid_input"),
        ("GET", "/v1/jobs?limit=1001", "", 400, "invalid_input"),
        ("GET", "/v1/jobs?limit=-1", "", 400, "invalid_input"),
        (
            "GET",
            "/v1/jobs?limit=99999999999999999999999",
            "",
            400,
            "invalid_input",
        ),
        ("GET", "/v1/jobs?cursor=zz", "", 400, "invalid_input"),
        ("GET", "/v1/jobs?status=DONE", "", 400, "invalid_input"),
        ("GET", "/v1/jobs?owner=alice", "", 400, "invalid_input"),
        ("POST", "/v1/models/mlp/jobs", "{", 400, "invalid_input"),
        (
            "POST",
            "/v1/models/mlp/jobs",
            r#"{"inputs": [1], "top_k": 0}"#,
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/models/mlp/jobs",
            r#"{"inputs": [1], "extra": 1}"#,
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/models/nope/jobs",
            r#"{"inputs": [1]}"#,
            404,
            "model_not_found",
        ),
        (
            "POST",
            "/v1/models/mlp/versions/9/jobs",
            r#"{"inputs": [1]}"#,
            404,
            "model_not_found",
        ),
        (
            "POST",
            "/v1/embeddings/jobs",
            r#"{"model": "nope", "input": "x"}"#,
            404,
            "model_not_found",
        ),
        ("PATCH", "/v1/jobs/x", "", 405, "method_not_allowed"),
        ("PUT", "/v1/models/mlp/jobs", "", 405, "method_not_allowed"),
    ];
    for (method, path, body, status, error_type) in cases {
        let (got, err, _) = call(&server, method, path, body, None, None).await;
        assert_eq!(
            (got, err["error_type"].as_str()),
            (*status, Some(*error_type)),
            "{method} {path}: {err}"
        );
        assert!(err["error"].is_string(), "{err}");
    }
    // A body that parses but does not fit the model: the job fails `invalid_input`.
    let id = submit(
        &server,
        "/v1/models/mlp/jobs",
        &json!({ "inputs": [[1.0, 2.0]] }),
    )
    .await;
    let job = wait_final(&server, &id, None).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert_eq!(job["error"]["error_type"], "invalid_input");
    assert_eq!(job["attempts"], 1);
    server.stop().await;

    // Switched off: the routes answer 403 and no store is opened.
    let off =
        fixture.settings_toml("[jobs]\nenabled = false\npath = \"/nonexistent/never-created\"\n");
    let server = TestServer::start(burnserve::Settings::from_toml(&off).unwrap()).await;
    let (status, err, _) = call(
        &server,
        "POST",
        "/v1/models/mlp/jobs",
        r#"{"inputs": [1]}"#,
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, err["error_type"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _, _) = call(&server, "GET", "/v1/jobs", "", None, None).await;
    assert_eq!(status, 403);
    assert!(!std::path::Path::new("/nonexistent/never-created").exists());
    server.stop().await;
}

#[test]
fn jobs_settings_out_of_bounds_are_refused() {
    let fixture = Fixture::new();
    for (setting, key) in [
        (
            "max_running_per_version = 0",
            "jobs.max_running_per_version",
        ),
        ("interactive_reserve = 1.5", "jobs.interactive_reserve"),
        ("interactive_reserve = -0.1", "jobs.interactive_reserve"),
        ("retention_s = 0", "jobs.retention_s"),
        ("max_pending_age_s = 999999999999", "jobs.max_pending_age_s"),
        ("max_pending = 0", "jobs.max_pending"),
        ("max_store_bytes = 1000", "jobs.max_store_bytes"),
        ("max_attempts = 0", "jobs.max_attempts"),
        ("path = \"\"", "jobs.path"),
        ("max_pending_per_tenant = 0", "jobs.max_pending_per_tenant"),
        (
            "max_pending = 10\nmax_pending_per_tenant = 11",
            "jobs.max_pending_per_tenant",
        ),
    ] {
        let toml = fixture.settings_toml(&format!("[jobs]\n{setting}\n"));
        let err = burnserve::Settings::from_toml(&toml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{setting}: {err}");
    }
}

#[test]
fn the_per_tenant_share_defaults_to_a_fair_split() {
    let fixture = Fixture::new();
    let three = format!(
        "{}{}{}[jobs]\nmax_pending = 100\n",
        tenant("alpha", ALPHA),
        tenant("beta", BETA),
        tenant("gamma", "gamma-key-0123456789abcdef")
    );
    let settings = burnserve::Settings::from_toml(&fixture.settings_toml(&three)).unwrap();
    assert_eq!(settings.jobs.max_pending_per_tenant, None);
    let runtime = settings.jobs.runtime(settings.tenants.len());
    assert_eq!(
        (runtime.max_pending, runtime.max_pending_per_tenant),
        (100, 33)
    );
    // No tenants: the one anonymous tenant has all of it; a setting wins.
    let none = burnserve::Settings::from_toml(&fixture.settings_toml("")).unwrap();
    assert_eq!(none.jobs.runtime(0).max_pending_per_tenant, 100_000);
    let set = format!("{three}max_pending_per_tenant = 70\n");
    let set = burnserve::Settings::from_toml(&fixture.settings_toml(&set)).unwrap();
    assert_eq!(set.jobs.runtime(3).max_pending_per_tenant, 70);
}

/// A store written before bodies were stored compactly holds each body as canonical JSON
/// (`body_format` 0): its jobs still run, with the same results, and an `Idempotency-Key`
/// replay of a job still pending is recognised by content.
#[actix_web::test]
async fn jobs_stored_before_the_compact_form_still_run_and_replay() {
    use burnserve_actors::jobs::{record::JobKind, store};
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs");
    let mut ids = Vec::new();
    {
        let old = store::JobStore::open(&path).unwrap();
        let room = store::Room {
            pending: 0,
            max_pending: 100,
            tenant_pending: 0,
            max_pending_per_tenant: 100,
            used_bytes: 0,
            reserved_bytes: 0,
            max_store_bytes: 1 << 30,
            may_measure: false,
        };
        for n in 0..8 {
            // What the old submit stored: serde_json's canonical form of the body.
            let body: Value = json!({ "inputs": [[n as f64, 0.5]], "top_k": 1 });
            let job = store::NewJob {
                tenant: "anonymous".into(),
                model: "slow".into(),
                version: "1".into(),
                kind: JobKind::Predict,
                body_format: 0,
                idempotency_key: Some(format!("old-{n}")),
                body: serde_json::to_vec(&body).unwrap(),
                result_reserve: 0,
                now_ms: 1,
            };
            ids.push(old.submit(job, room).unwrap().record.id.to_string());
        }
    }
    let mut settings = burnserve::Settings::from_toml(
        &fixture.settings_toml("[jobs]\nmax_running_per_version = 1\n"),
    )
    .unwrap();
    settings.jobs.path = path;
    let server = TestServer::start(settings).await;
    // The last one waits behind seven runs of 300 ms: a replay finds it pending, whatever the
    // spacing and key order; another body under its key is a conflict.
    let replay = r#"{ "top_k": 1, "inputs": [[7, 0.50]] }"#;
    let path = "/v1/models/slow/jobs";
    let (status, job, _) = call(&server, "POST", path, replay, None, Some("old-7")).await;
    assert_eq!(
        (status, job["job_id"].as_str()),
        (200, Some(ids[7].as_str())),
        "{job}"
    );
    let other = r#"{"inputs": [[7, 0.6]], "top_k": 1}"#;
    let (status, err, _) = call(&server, "POST", path, other, None, Some("old-7")).await;
    assert_eq!(
        (status, err["error_type"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    let (status, ready) = server.get("/ready").await;
    assert_eq!(
        (status, &ready["jobs"]["store_available"]),
        (200, &json!(true)),
        "{ready}"
    );
    for (n, id) in ids.iter().enumerate() {
        let done = wait_final(&server, id, None).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_eq!(floats(&done["result"]["outputs"][0]), [n as f32, 0.5]);
    }
    server.stop().await;
}

/// A config file serving the fixture (and `extra` models) for the binary.
fn config_file(fixture: &Fixture, port: u16, extra_models: &str) -> std::path::PathBuf {
    let toml = fixture
        .settings_toml(&format!("[admin]\ntoken = \"{TOKEN}\"\n"))
        .replace("port = 0", &format!("port = {port}"))
        + extra_models;
    let path = fixture.path().join("serve.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn a_store_that_cannot_open_is_a_clear_error_at_start() {
    let fixture = Fixture::new();
    let port = free_port();
    let config = config_file(&fixture, port, "");
    let store = tempfile::tempdir().unwrap();
    std::fs::write(store.path().join("jobs.redb"), vec![0x42; 16384]).unwrap();
    let file = store.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for (path, expected) in [
        (store.path().to_path_buf(), "move it away"),
        (file.join("jobs"), "cannot create the directory"),
    ] {
        let output = burnserve()
            .arg("--config")
            .arg(&config)
            .env("BURNSERVE__JOBS__PATH", &path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started on {}", path.display());
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("jobs.path"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // The damaged file is left as it was.
    assert_eq!(
        std::fs::read(store.path().join("jobs.redb")).unwrap(),
        vec![0x42; 16384]
    );
}

/// One request to the binary on a fresh connection: status and JSON body.
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply);
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn gauge(port: u16, model: &str) -> f64 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    metric(
        &text,
        "job_queue_depth",
        &[("model", model), ("version", "1")],
    )
}

/// Every job the store lists for the anonymous tenant, by id.
fn all_jobs(port: u16) -> HashMap<String, Value> {
    let mut jobs = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=1000&cursor={c}"),
            None => "/v1/jobs?limit=1000".to_string(),
        };
        let (status, page) = request(port, "GET", &path, "");
        assert_eq!(status, 200, "{page}");
        for job in page["jobs"].as_array().unwrap() {
            jobs.insert(job["job_id"].as_str().unwrap().to_string(), job.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return jobs,
        }
    }
}

fn pending_in_store(port: u16) -> usize {
    let (status, page) = request(port, "GET", "/v1/jobs?status=PENDING&limit=1000", "");
    assert_eq!(status, 200);
    assert!(page["next_cursor"].is_null());
    page["jobs"].as_array().unwrap().len()
}

/// `job_queue_depth` read between two counts of PENDING jobs in the store: with no submits,
/// PENDING only falls, so the gauge must lie between them (equal to both when nothing moved).
fn sample_depth(port: u16, model: &str) -> (usize, f64, usize) {
    let before = pending_in_store(port);
    let depth = gauge(port, model);
    let after = pending_in_store(port);
    assert!(
        after as f64 <= depth && depth <= before as f64,
        "job_queue_depth {depth} outside the store's PENDING count {before}..{after}"
    );
    (before, depth, after)
}

#[test]
fn kill_9_in_the_middle_of_500_jobs_loses_none_and_runs_each_to_one_result() {
    const JOBS: usize = 500;
    let fixture = Fixture::new();
    // A wider MLP than the fixture's, so jobs take long enough to be caught running.
    let dir = fixture.path().join("wide").join("1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("model.toml"),
        format!(
            "architecture = \"mlp\"\nweights = \"model.safetensors\"\nparams = {{ hidden = [512, 512] }}\n\
             [input]\nname = \"x\"\nshape = [{MLP_INPUT}]\n[output]\nname = \"y\"\nshape = [{MLP_CLASSES}]\n\
             [batching]\nmax_batch_size = 8\nmax_batch_delay_ms = 0\n"
        ),
    )
    .unwrap();
    let spec = ModelSpec::from_dir(&dir).unwrap();
    mlp::write_initialised(&spec, &dir.join("model.safetensors"), 5).unwrap();
    let port = free_port();
    let config = config_file(
        &fixture,
        port,
        "[[models]]\nname = \"wide\"\nversions = [\"1\"]\n",
    );
    let store = tempfile::tempdir().unwrap();
    let start = || {
        let child = burnserve()
            .arg("--config")
            .arg(&config)
            .env("BURNSERVE__JOBS__PATH", store.path())
            .env("BURNSERVE__JOBS__MAX_RUNNING_PER_VERSION", "1")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Killed(child);
        wait_until_ready(port, "/ready");
        server
    };
    let items: Vec<Vec<f32>> = (0..JOBS)
        .map(|i| {
            (0..MLP_INPUT)
                .map(|j| ((i * 13 + j * 7) % 97) as f32 / 48.0 - 1.0)
                .collect()
        })
        .collect();
    let reference = in_process(&dir, &items);

    let mut first = start();
    assert_eq!(request(port, "POST", "/admin/jobs/pause", "").0, 200);
    let mut input_of = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let body = json!({ "inputs": [item] }).to_string();
        let (status, job) = request(port, "POST", "/v1/models/wide/jobs", &body);
        assert_eq!(status, 202, "{job}");
        input_of.insert(job["job_id"].as_str().unwrap().to_string(), i);
    }
    let mut samples = Vec::new();
    // Paused: nothing moves, so the gauge equals the store's count exactly.
    samples.push(sample_depth(port, "wide"));
    assert_eq!(samples[0], (JOBS, JOBS as f64, JOBS));
    assert_eq!(request(port, "POST", "/admin/jobs/resume", "").0, 200);
    let mut seen: HashMap<String, Value> = HashMap::new();
    let done_at_kill = loop {
        samples.push(sample_depth(port, "wide"));
        let jobs = all_jobs(port);
        let done: Vec<_> = jobs
            .values()
            .filter(|j| j["status"] == "SUCCEEDED")
            .collect();
        if done.len() >= JOBS / 5 {
            for job in done.iter().take(20) {
                let id = job["job_id"].as_str().unwrap();
                let (_, full) = request(port, "GET", &format!("/v1/jobs/{id}"), "");
                seen.insert(id.to_string(), full["result"].clone());
            }
            assert!(
                done.len() < JOBS,
                "every job finished before the kill; make them slower"
            );
            break done.len();
        }
    };
    // SIGKILL: no drain, no chance to write anything more.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    drop(first);

    let _second = start();
    let deadline = Instant::now() + Duration::from_secs(120);
    let jobs = loop {
        samples.push(sample_depth(port, "wide"));
        let jobs = all_jobs(port);
        if jobs.values().all(|j| j["status"] == "SUCCEEDED") && jobs.len() == JOBS {
            break jobs;
        }
        assert!(
            jobs.values()
                .all(|j| ["PENDING", "RUNNING", "SUCCEEDED"]
                    .contains(&j["status"].as_str().unwrap())),
            "a job ended otherwise"
        );
        assert!(
            Instant::now() < deadline,
            "jobs did not finish after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(jobs.len(), JOBS, "a job was lost");
    let mut retried = 0;
    for (id, job) in &jobs {
        let (status, full) = request(port, "GET", &format!("/v1/jobs/{id}"), "");
        assert_eq!(status, 200);
        let i = input_of[id];
        let outputs = &full["result"]["outputs"];
        assert_close(&floats(&outputs[0]), &reference[i]);
        if let Some(before) = seen.get(id) {
            assert_eq!(&full["result"], before, "job {id} answered two results");
        }
        let attempts = job["attempts"].as_u64().unwrap();
        assert!((1..=2).contains(&attempts), "{job}");
        retried += usize::from(attempts == 2);
    }
    let last = sample_depth(port, "wide");
    assert_eq!(last, (0, 0.0, 0));
    println!(
        "{JOBS} jobs, killed after {} had succeeded; {retried} ran twice (running at the kill); \
         {} depth samples, all within the store's PENDING count",
        done_at_kill,
        samples.len()
    );
}
