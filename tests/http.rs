//! Serving core over real HTTP on 127.0.0.1:0: predict (simple and v2) against the same model
//! run in-process, every error class, deadlines, overload, panics, restarts, batching, and
//! metrics that equal the traffic sent.

mod common;

use std::time::{Duration, Instant};

use burnserve_models::{forward_f32, load_model, Device, ModelSpec};
use common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};

/// The same version's network run in this process, on the same backend.
fn in_process(fixture: &Fixture, version: &str, items: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let dir = fixture.version_dir("mlp", version);
    let spec = ModelSpec::from_dir(&dir).unwrap();
    let mut model = load_model(&spec, &dir, Device::Cpu).unwrap();
    items
        .iter()
        .map(|item| forward_f32(model.as_mut(), &spec, item.clone(), 1).unwrap())
        .collect()
}

fn assert_close(served: &[f32], reference: &[f32]) {
    assert_eq!(served.len(), reference.len());
    for (s, r) in served.iter().zip(reference) {
        assert!(
            (s - r).abs() <= 1e-6,
            "served {served:?} vs in-process {reference:?}"
        );
    }
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a)))
        .unwrap()
}

#[actix_web::test]
async fn simple_and_v2_predictions_equal_the_in_process_model() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let items = mlp_items(3);
    let v2_ref = in_process(&fixture, "2", &items);
    let v1_ref = in_process(&fixture, "1", &items);
    assert_ne!(
        v1_ref, v2_ref,
        "the two versions must differ for this test to mean anything"
    );

    // Simple API, default version (2), nested batch of 3.
    let (status, body, headers) = server
        .post(
            "/v1/models/mlp/predict",
            &json!({ "inputs": items, "top_k": 2 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "mlp");
    assert_eq!(body["version"], "2");
    let outputs = body["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 3);
    for (i, reference) in v2_ref.iter().enumerate() {
        let served = floats(&outputs[i]);
        assert_close(&served, reference);
        let best = &body["predictions"][i][0];
        assert_eq!(best["index"], argmax(reference));
        assert_eq!(best["label"], LABELS[argmax(reference)]);
        assert_eq!(body["predictions"][i].as_array().unwrap().len(), 2);
    }
    for header in ["x-queue-time", "x-inference-time"] {
        let ms: f64 = headers
            .get(header)
            .expect(header)
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..10_000.0).contains(&ms), "{header} = {ms}");
    }
    // The same times as Server-Timing entries, and the server's total, which holds them both.
    let timing: Vec<&str> = headers
        .get_all("server-timing")
        .map(|v| v.to_str().unwrap())
        .collect();
    let entry = |name: &str| -> f64 {
        timing
            .iter()
            .flat_map(|v| v.split(','))
            .find_map(|e| {
                e.trim()
                    .strip_prefix(&format!("{name};dur="))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no {name} in Server-Timing {timing:?}"))
            .parse()
            .unwrap()
    };
    let header_ms = |h: &str| -> f64 { headers.get(h).unwrap().to_str().unwrap().parse().unwrap() };
    assert_eq!(entry("queue"), header_ms("x-queue-time"));
    assert_eq!(entry("infer"), header_ms("x-inference-time"));
    assert!(
        entry("total") >= entry("queue") + entry("infer") - 0.002,
        "Server-Timing {timing:?}"
    );

    // Simple API, pinned version 1, a single item (not nested).
    let (status, body, _) = server
        .post(
            "/v1/models/mlp/versions/1/predict",
            &json!({ "inputs": items[0] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "1");
    assert_close(&floats(&body["outputs"][0]), &v1_ref[0]);

    // v2, flat data with a shape, id echoed.
    let flat: Vec<f32> = items.iter().flatten().copied().collect();
    let request = json!({
        "id": "req-42",
        "inputs": [{ "name": "features", "shape": [3, MLP_INPUT], "datatype": "FP32", "data": flat }]
    });
    let (status, body, headers) = server
        .post("/v2/models/mlp/versions/1/infer", &request)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "req-42");
    assert_eq!(body["model_name"], "mlp");
    assert_eq!(body["model_version"], "1");
    let output = &body["outputs"][0];
    assert_eq!(output["name"], "probabilities");
    assert_eq!(output["datatype"], "FP32");
    assert_eq!(output["shape"], json!([3, MLP_CLASSES]));
    let data = floats(&output["data"]);
    for (i, reference) in v1_ref.iter().enumerate() {
        assert_close(&data[i * MLP_CLASSES..(i + 1) * MLP_CLASSES], reference);
    }
    assert!(headers.contains_key("x-inference-time"));

    // v2, nested data, default version.
    let request = json!({ "inputs": [{ "name": "features", "shape": [3, MLP_INPUT], "datatype": "FP32", "data": items }] });
    let (status, body, _) = server.post("/v2/models/mlp/infer", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"], "2");
    assert_eq!(body["id"], Value::Null);
    assert_close(
        &floats(&body["outputs"][0]["data"])[..MLP_CLASSES],
        &v2_ref[0],
    );
    server.stop().await;
}

#[actix_web::test]
async fn unknown_models_and_versions_are_404_and_counted_as_unknown() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let (status, body, _) = server
        .post("/v1/models/nope/predict", &json!({ "inputs": [1.0] }))
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let (status, body, _) = server
        .post(
            "/v1/models/mlp/versions/9/predict",
            &json!({ "inputs": [1.0] }),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, body, _) = server
        .post(
            "/v2/models/nope/infer",
            &json!({ "inputs": [{ "name": "x", "shape": [1], "datatype": "FP32", "data": [1] }] }),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, body) = server.get("/v2/models/nope").await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, body) = server.get("/no/such/route").await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("not_found"))
    );

    let text = server.metrics().await;
    let unknown = [
        ("model", "unknown"),
        ("version", "unknown"),
        ("tenant", "anonymous"),
    ];
    assert_eq!(metric(&text, "inference_requests_total", &unknown), 3.0);
    assert_eq!(
        metric(
            &text,
            "inference_errors_total",
            &[("model", "unknown"), ("error_type", "model_not_found")]
        ),
        3.0
    );
    assert!(
        !text.contains("model=\"nope\""),
        "raw user input must not become a label"
    );
    server.stop().await;
}

#[actix_web::test]
async fn malformed_and_mismatched_inputs_are_400_or_422() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let good = mlp_items(1).remove(0);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "bad JSON",
            "{\"inputs\": [1, 2".to_string(),
            400,
            "invalid JSON",
        ),
        (
            "NaN literal",
            format!("{{\"inputs\": [NaN{}]}}", ", 0.1".repeat(MLP_INPUT - 1)),
            400,
            "invalid JSON",
        ),
        (
            "overflow to infinity",
            format!("{{\"inputs\": [1e39{}]}}", ", 0.1".repeat(MLP_INPUT - 1)),
            400,
            "not finite",
        ),
        (
            "strings to a numeric model",
            json!({ "inputs": vec!["a"; MLP_INPUT] }).to_string(),
            422,
            "has datatype BYTES; this model takes FP32",
        ),
        (
            "numbers mixed with strings",
            json!({ "inputs": [1.0, "a"] }).to_string(),
            400,
            "mixes numbers and strings",
        ),
        (
            "ragged",
            json!({ "inputs": [[0.1, 0.2], [0.3]] }).to_string(),
            400,
            "ragged",
        ),
        (
            "wrong item size",
            json!({ "inputs": vec![0.1; 5] }).to_string(),
            422,
            "shape",
        ),
        (
            "too many items",
            json!({ "inputs": vec![good.clone(); 17] }).to_string(),
            422,
            "max_batch_size",
        ),
        (
            "unknown field",
            json!({ "inputs": good, "extra": 1 }).to_string(),
            400,
            "unknown field",
        ),
    ];
    for (what, body, status, needle) in cases {
        let (got, reply, _) = server.post_raw("/v1/models/mlp/predict", body).await;
        assert_eq!(got, status, "{what}: {reply}");
        assert_eq!(reply["error_type"], "invalid_input", "{what}");
        assert!(
            reply["error"].as_str().unwrap().contains(needle),
            "{what}: {reply}"
        );
    }
    let v2 = |name: &str, shape: Value, datatype: &str, data: Value| json!({ "inputs": [{ "name": name, "shape": shape, "datatype": datatype, "data": data }] });
    let v2_cases = vec![
        (
            "wrong dtype",
            v2(
                "features",
                json!([1, MLP_INPUT]),
                "INT64",
                json!(vec![1; MLP_INPUT]),
            ),
            422,
            "datatype",
        ),
        (
            "wrong name",
            v2("pixels", json!([1, MLP_INPUT]), "FP32", json!(good)),
            422,
            "unknown input",
        ),
        (
            "wrong shape",
            v2("features", json!([2, 6]), "FP32", json!(good)),
            422,
            "shape",
        ),
        (
            "data shorter than shape",
            v2("features", json!([2, MLP_INPUT]), "FP32", json!(good)),
            400,
            "do not fill shape",
        ),
        (
            "negative dim",
            v2("features", json!([-1, MLP_INPUT]), "FP32", json!(good)),
            400,
            "negative dimension",
        ),
    ];
    for (what, body, status, needle) in v2_cases {
        let (got, reply, _) = server.post("/v2/models/mlp/infer", &body).await;
        assert_eq!(got, status, "{what}: {reply}");
        assert_eq!(reply["error_type"], "invalid_input", "{what}");
        assert!(
            reply["error"].as_str().unwrap().contains(needle),
            "{what}: {reply}"
        );
    }
    // Requests that reached a version are counted there: all but the six unparseable ones
    // and the two v2 inputs the protocol core refuses before routing (data that does not fill
    // its shape, a negative dimension).
    let text = server.metrics().await;
    let errors = metric(
        &text,
        "inference_errors_total",
        &[
            ("model", "mlp"),
            ("version", "2"),
            ("error_type", "invalid_input"),
        ],
    );
    assert_eq!(errors, 7.0);
    assert_eq!(
        metric(
            &text,
            "inference_requests_total",
            &[("model", "mlp"), ("version", "2")]
        ),
        7.0
    );
    assert_eq!(
        metric(
            &text,
            "inference_successful",
            &[("model", "mlp"), ("version", "2")]
        ),
        0.0
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_request_that_cannot_meet_its_deadline_is_refused_at_once_and_never_computed() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    // A occupies the executor for 300 ms; B (100 ms deadline) would wait behind it: by the
    // version's estimate of a pass it cannot make it, so it is refused now, not answered 504
    // after 100 ms, and never computed.
    let first = server.post("/v1/models/slow/predict", &json!({ "inputs": [1.0, 2.0] }));
    let second = async {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        let reply = server
            .post(
                "/v1/models/slow/predict",
                &json!({ "inputs": [3.0, 4.0], "timeout_ms": 100 }),
            )
            .await;
        (reply, sent.elapsed())
    };
    let ((status_a, body_a, _), ((status_b, body_b, headers_b), waited)) =
        futures_util::future::join(first, second).await;
    assert_eq!(status_a, 200, "{body_a}");
    assert_eq!(floats(&body_a["outputs"][0]), vec![1.0, 2.0]);
    assert_eq!(
        (status_b, body_b["error_type"].as_str()),
        (429, Some("overloaded")),
        "{body_b}"
    );
    assert!(
        body_b["error"]
            .as_str()
            .unwrap()
            .contains("cannot answer within 100ms"),
        "{body_b}"
    );
    let retry: u64 = headers_b
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(
        waited < Duration::from_millis(50),
        "refused after {waited:?}, not at once"
    );

    let text = server.metrics().await;
    let slow = [("model", "slow"), ("version", "1")];
    assert_eq!(
        metric(&text, "inference_batch_size_count", &slow),
        1.0,
        "only A ran"
    );
    assert_eq!(metric(&text, "inference_batch_size_sum", &slow), 1.0);
    assert_eq!(
        metric(
            &text,
            "inference_errors_total",
            &[("model", "slow"), ("error_type", "overloaded")]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "executor_timeouts_total", &[("device", "cpu")]),
        0.0,
        "the executor answered no 504"
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    // `tiny`: one request executing (400 ms), a queue of 2, so of 5 more, 3 are shed at once.
    let busy = server.post("/v1/models/tiny/predict", &json!({ "inputs": [0.0, 0.0] }));
    let burst = async {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let sent = Instant::now();
        let replies = join_all((0..5).map(|i| {
            server.post(
                "/v1/models/tiny/predict",
                &json!({ "inputs": [i as f32, 1.0] }),
            )
        }))
        .await;
        (replies, sent.elapsed())
    };
    let ((busy_status, _, _), (replies, _)) = futures_util::future::join(busy, burst).await;
    assert_eq!(busy_status, 200);
    let shed: Vec<_> = replies.iter().filter(|(s, _, _)| *s == 429).collect();
    let served = replies.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!((shed.len(), served), (3, 2), "{replies:?}");
    for (_, body, headers) in &shed {
        assert_eq!(body["error_type"], "overloaded");
        assert_eq!(headers.get("retry-after").unwrap().to_str().unwrap(), "1");
    }
    let text = server.metrics().await;
    assert_eq!(
        metric(
            &text,
            "inference_errors_total",
            &[("model", "tiny"), ("error_type", "overloaded")]
        ),
        3.0
    );
    assert_eq!(
        metric(&text, "inference_requests_total", &[("model", "tiny")]),
        6.0
    );
    assert_eq!(
        metric(&text, "inference_queue_depth", &[("model", "tiny")]),
        0.0
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_panicking_batch_fails_alone_and_the_version_keeps_serving() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let (status, body, _) = server
        .post(
            "/v1/models/panic/predict",
            &json!({ "inputs": [-1.0, 0.0] }),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (500, Some("inference_error"))
    );
    assert!(
        body["error"].as_str().unwrap().contains("panicked"),
        "{body}"
    );
    let (status, body, _) = server
        .post("/v1/models/panic/predict", &json!({ "inputs": [5.0, 6.0] }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(floats(&body["outputs"][0]), vec![5.0, 6.0]);
    let text = server.metrics().await;
    let panic = [("model", "panic"), ("version", "1")];
    assert_eq!(
        metric(&text, "actor_restarts_total", &panic),
        0.0,
        "a caught panic is no restart"
    );
    assert_eq!(metric(&text, "inference_successful", &panic), 1.0);
    assert_eq!(
        metric(
            &text,
            "inference_errors_total",
            &[("model", "panic"), ("error_type", "inference_error")]
        ),
        1.0
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_poisoned_input_fails_alone_in_its_batch_and_repeated_failures_restart() {
    let fixture = Fixture::new();
    fixture.add_fake(
        "poison",
        "fake-panic",
        2,
        "restart_after_failed_batches = 3\n[batching]\nmax_batch_size = 64\nmax_batch_delay_ms = 30",
    );
    let toml = fixture.settings_toml("[[models]]\nname = \"poison\"\nversions = [\"1\"]\n");
    let server = TestServer::start(burnserve::Settings::from_toml(&toml).unwrap()).await;
    // 200 concurrent requests, 1% poisoned (their first value is the marker, -1).
    let poisoned = [37usize, 151];
    let replies = join_all((0..200).map(|i| {
        let first = if poisoned.contains(&i) {
            -1.0
        } else {
            i as f64
        };
        let server = &server;
        async move {
            let (status, body, _) = server
                .post(
                    "/v1/models/poison/predict",
                    &json!({ "inputs": [first, 0.5] }),
                )
                .await;
            (i, first, status, body)
        }
    }))
    .await;
    for (i, first, status, body) in &replies {
        if poisoned.contains(i) {
            assert_eq!(
                (*status, body["error_type"].as_str()),
                (500, Some("inference_error")),
                "{i}: {body}"
            );
        } else {
            assert_eq!(*status, 200, "{i}: {body}");
            assert_eq!(floats(&body["outputs"][0]), vec![*first as f32, 0.5]);
        }
    }
    let text = server.metrics().await;
    let poison = [("model", "poison"), ("version", "1")];
    let batches = metric(&text, "inference_batch_size_count", &poison);
    assert!(
        batches < 150.0,
        "the requests were batched ({batches} batches)"
    );
    assert_eq!(
        metric(
            &text,
            "inference_errors_total",
            &[("model", "poison"), ("error_type", "inference_error")]
        ),
        2.0
    );
    assert_eq!(metric(&text, "actor_restarts_total", &poison), 0.0);
    // Three batches in a row that fail even alone restart the version (as configured).
    for _ in 0..3 {
        let (status, _, _) = server
            .post(
                "/v1/models/poison/predict",
                &json!({ "inputs": [-1.0, 0.5] }),
            )
            .await;
        assert_eq!(status, 500);
    }
    let mut restarts = 0.0;
    for _ in 0..100 {
        restarts = metric(&server.metrics().await, "actor_restarts_total", &poison);
        if restarts == 1.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(restarts, 1.0);
    server.stop().await;
}

#[actix_web::test]
async fn a_dead_executor_is_restarted_by_its_supervisor_and_counted() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let (status, body, _) = server
        .post("/v1/models/fail/predict", &json!({ "inputs": [-1.0, 0.0] }))
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (500, Some("inference_error"))
    );
    assert!(body["error"].as_str().unwrap().contains("fatal"), "{body}");
    // While the version rebuilds it answers 503 not_ready; then it serves again.
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        let (status, body, _) = server
            .post("/v1/models/fail/predict", &json!({ "inputs": [7.0, 8.0] }))
            .await;
        last = (status, body);
        if status == 200 {
            break;
        }
        assert_eq!(
            (status, last.1["error_type"].as_str()),
            (503, Some("not_ready"))
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(floats(&last.1["outputs"][0]), vec![7.0, 8.0]);
    let text = server.metrics().await;
    let fail = [("model", "fail"), ("version", "1")];
    assert_eq!(metric(&text, "actor_restarts_total", &fail), 1.0);
    assert_eq!(metric(&text, "model_loaded", &fail), 1.0);
    server.stop().await;
}

#[actix_web::test]
async fn concurrent_requests_are_batched_and_answered_with_their_own_rows() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let replies = join_all((0..64).map(|i| {
        let item = vec![i as f32, i as f32 + 0.25, i as f32 + 0.5, i as f32 + 0.75];
        let server = &server;
        async move {
            (
                item.clone(),
                server
                    .post("/v1/models/echo/predict", &json!({ "inputs": item }))
                    .await,
            )
        }
    }))
    .await;
    for (item, (status, body, _)) in &replies {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            &floats(&body["outputs"][0]),
            item,
            "a reply carried another request's rows"
        );
    }
    let text = server.metrics().await;
    let echo = [("model", "echo"), ("version", "1")];
    let batches = metric(&text, "inference_batch_size_count", &echo);
    assert_eq!(metric(&text, "inference_batch_size_sum", &echo), 64.0);
    assert!(
        batches < 64.0,
        "64 concurrent requests ran in {batches} batches"
    );
    assert_eq!(
        metric(&text, "inference_queue_duration_seconds_count", &echo),
        64.0
    );
    server.stop().await;
}

#[actix_web::test]
async fn metrics_equal_the_traffic_sent() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    for i in 0..5 {
        let (status, _, _) = server
            .post(
                "/v1/models/echo/predict",
                &json!({ "inputs": [i, 0, 0, 0] }),
            )
            .await;
        assert_eq!(status, 200);
    }
    for _ in 0..2 {
        let (status, _, _) = server
            .post("/v1/models/echo/predict", &json!({ "inputs": [1, 2, 3] }))
            .await;
        assert_eq!(status, 422);
    }
    let (status, _, _) = server
        .post(
            "/v1/models/echo/versions/1/predict",
            &json!({ "inputs": [1, 2, 3, 4] }),
        )
        .await;
    assert_eq!(status, 200);

    let text = server.metrics().await;
    let echo = [("model", "echo"), ("version", "1"), ("tenant", "anonymous")];
    assert_eq!(metric(&text, "inference_requests_total", &echo), 8.0);
    assert_eq!(metric(&text, "inference_latency_seconds_count", &echo), 6.0);
    assert_eq!(
        metric(
            &text,
            "inference_errors_total",
            &[
                ("model", "echo"),
                ("error_type", "invalid_input"),
                ("tenant", "anonymous")
            ]
        ),
        2.0
    );
    assert_eq!(
        metric(&text, "inference_successful", &[("model", "echo")]),
        1.0
    );
    assert_eq!(
        metric(&text, "inference_batch_size_sum", &[("model", "echo")]),
        6.0
    );
    assert_eq!(
        metric(&text, "model_loaded", &[("model", "mlp"), ("version", "1")]),
        1.0
    );
    assert!(
        metric(
            &text,
            "model_load_time_seconds",
            &[("model", "mlp"), ("version", "2")]
        ) > 0.0
    );
    assert_eq!(
        metric(&text, "executor_inflight", &[("device", "cpu")]),
        0.0
    );
    assert_eq!(
        metric(&text, "actor_restarts_total", &[("model", "echo")]),
        0.0
    );
    let predict = [
        ("endpoint", "/v1/models/{model}/predict"),
        ("method", "POST"),
    ];
    assert_eq!(
        metric(
            &text,
            "http_requests_total",
            &[predict[0], predict[1], ("status", "200")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            &text,
            "http_requests_total",
            &[predict[0], predict[1], ("status", "422")]
        ),
        2.0
    );
    assert!(text.contains("process_resident_memory_bytes"));
    // The contract's buckets, exactly.
    for bucket in [
        "0.005", "0.01", "0.02", "0.05", "0.1", "0.25", "0.5", "1", "2", "5", "10", "+Inf",
    ] {
        let series = format!("inference_latency_seconds_bucket{{model=\"echo\",tenant=\"anonymous\",version=\"1\",le=\"{bucket}\"}}");
        assert!(text.contains(&series), "missing {series}");
    }
    for bucket in ["1", "2", "4", "8", "16", "32", "64", "128"] {
        assert!(text.contains(&format!(
            "inference_batch_size_bucket{{model=\"echo\",version=\"1\",le=\"{bucket}\"}}"
        )));
    }
    server.stop().await;
}

#[actix_web::test]
async fn health_readiness_and_metadata() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    assert_eq!(server.get("/health").await, (200, json!({ "live": true })));
    assert_eq!(server.get("/v2/health/live").await.0, 200);
    let (status, ready) = server.get("/v2/health/ready").await;
    assert_eq!((status, ready["versions"].as_u64()), (200, Some(7)));
    assert_eq!(server.get("/ready").await.0, 200);
    let (status, meta) = server.get("/v2").await;
    assert_eq!((status, meta["name"].as_str()), (200, Some("burnserve")));

    let (status, meta) = server.get("/v2/models/mlp").await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "mlp");
    assert_eq!(meta["versions"], json!(["1", "2"]));
    assert_eq!(meta["platform"], "burn_mlp");
    assert_eq!(
        meta["inputs"],
        json!([{ "name": "features", "datatype": "FP32", "shape": [-1, MLP_INPUT] }])
    );
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, MLP_CLASSES]));
    assert_eq!(meta["parameters"]["default_version"], "2");
    assert_eq!(meta["parameters"]["labels"], json!(LABELS));
    let (status, meta) = server.get("/v2/models/mlp/versions/1").await;
    assert_eq!((status, meta["versions"].clone()), (200, json!(["1"])));

    assert_eq!(
        server.get("/v2/models/mlp/ready").await,
        (200, json!({ "name": "mlp", "version": "2", "ready": true }))
    );
    assert_eq!(server.get("/v2/models/mlp/versions/1/ready").await.0, 200);
    assert_eq!(server.get("/v2/models/mlp/versions/3/ready").await.0, 404);
    server.stop().await;
}

/// Invented HTTP methods fold into one `method="OTHER"` label: they cannot grow `/metrics`.
#[actix_web::test]
async fn invented_methods_do_not_grow_the_metric_series() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let paths = ["/nope", "/v1/models/mlp/predict", "/metrics", "/health"];
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    // Routes (`/metrics` included) answer 405, unknown paths 404.
    let expected = [404, 405, 405, 405];
    for (path, status) in paths.iter().zip(expected) {
        let (got, body) = server.admin_as("WARMUP", path, "", None).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    // The first scrape creates the series of `GET /metrics` itself.
    server.metrics().await;
    let before = series(&server.metrics().await);
    for i in 0..200 {
        let (status, _) = server
            .admin_as(&format!("BREW{i}"), paths[i % paths.len()], "", None)
            .await;
        assert_eq!(status, expected[i % paths.len()]);
    }
    let text = server.metrics().await;
    assert_eq!(
        series(&text),
        before,
        "200 invented methods, not one new series"
    );
    let other: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains("method=\"OTHER\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(other, 204.0, "every invented method counted as OTHER");
    assert!(!text.contains("BREW"), "no invented method reaches a label");
    server.stop().await;
}

/// HTTP semantics at the edges: 405 with `Allow`, 413, JSON errors for query strings, checked
/// shape arithmetic.
#[actix_web::test]
async fn edges_answer_json_with_the_right_status() {
    let fixture = Fixture::new();
    let mut settings = fixture.admin_settings();
    settings.server.max_body_bytes = 4096;
    settings.server.max_text_body_bytes = 2048;
    let server = TestServer::start(settings).await;
    let (status, body) = server.get("/v1/models/mlp/predict").await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(body["error"].as_str().unwrap().contains("POST"), "{body}");
    let response = server
        .client
        .delete(server.url("/v2/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers().get("allow").unwrap(), "GET");

    // A body over server.max_body_bytes (4096 here).
    let huge = format!("{{\"inputs\": [{}]}}", vec!["0.5"; 2000].join(","));
    let (status, body, _) = server
        .post_raw("/v1/models/mlp/predict", huge.clone())
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("server.max_body_bytes (4096 bytes)"),
        "{body}"
    );
    let (status, body) = server
        .admin("POST", "/admin/models/mlp/versions/1", &huge)
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (413, Some("payload_too_large"))
    );
    // The embeddings route has its own, smaller limit (server.max_text_body_bytes, 2048 here);
    // the same 3,000 bytes elsewhere are within server.max_body_bytes.
    let text = format!(
        "{{\"model\": \"echo\", \"input\": \"{}\"}}",
        "x".repeat(3000)
    );
    let (status, body, _) = server.post_raw("/v1/embeddings", text.clone()).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("server.max_text_body_bytes (2048 bytes)"),
        "{body}"
    );
    let (status, body, _) = server.post_raw("/v1/models/echo/predict", text).await;
    assert_eq!(
        status, 400,
        "parsed (and refused for its content), not 413: {body}"
    );

    // Protected routes check the token before they read a body or a query string.
    for (method, path, body) in [
        ("POST", "/admin/models/mlp/versions/1", huge.as_str()),
        ("PUT", "/admin/models/mlp/routing", "{not json"),
        (
            "POST",
            "/admin/models/mlp/versions/1?device=tpu&bogus=1",
            "",
        ),
    ] {
        let (status, reply) = server.admin_as(method, path, body, None).await;
        assert_eq!(
            (status, reply["error_type"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
    }
    let (status, reply) = server
        .admin("POST", "/admin/models/mlp/versions/1?bogus=1", "")
        .await;
    assert_eq!(
        (status, reply["error_type"].as_str()),
        (400, Some("invalid_input")),
        "{reply}"
    );
    // The scheme is case-insensitive.
    let response = server
        .client
        .get(server.url("/admin/models"))
        .insert_header(("authorization", format!("bearer {TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // A shape whose element count overflows is refused, not wrapped.
    let body = json!({ "inputs": [{ "name": "features", "shape": [1u64 << 60 | 1, 784u64],
        "datatype": "FP32", "data": [0.5] }] });
    let (status, reply, _) = server.post("/v2/models/mlp/infer", &body).await;
    assert_eq!(
        (status, reply["error_type"].as_str()),
        (400, Some("invalid_input")),
        "{reply}"
    );
    assert!(
        reply["error"].as_str().unwrap().contains("more elements"),
        "{reply}"
    );
    server.stop().await;
}
