//! `GET /openapi.json`: the document every route is in (each documented operation reaches a
//! handler, not the no-route answer), the answers it promises for real requests, and the limits
//! the document states that the handlers hold (`timeout_ms`, v2 `parameters.timeout`, 405 on
//! `/metrics`). Schemathesis runs the whole document in CI (`scripts/check-openapi.sh`).

mod common;

use common::*;
use serde_json::{json, Value};

#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let (status, document) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        // A model no one loaded: the handler answers (404 model_not_found, 400, 403...),
        // never "no route", and nothing in the fixture changes.
        let concrete = path
            .replace("{model}", "nosuch")
            .replace("{version}", "1")
            .replace("{job_id}", "nosuch");
        for method in item.as_object().expect("item").keys() {
            let (status, body, _) = server
                .send(&method.to_uppercase(), &concrete, "", Some(TOKEN))
                .await;
            operations += 1;
            assert_ne!(status, 405, "{method} {path}: {body}");
            let error = body["error"].as_str().unwrap_or("");
            assert!(
                !error.starts_with("no route"),
                "{method} {path} is documented but not routed: {body}"
            );
        }
    }
    assert_eq!(paths.len(), 37);
    assert_eq!(operations, 39);
    // Every error the document promises has the body it describes.
    let schema = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(schema["required"], json!(["error", "error_type"]));
    server.stop().await;
}

#[actix_web::test]
async fn documented_limits_hold_and_answers_match_their_schemas() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let item: Vec<f32> = vec![0.5; 4];
    // timeout_ms: at most an hour (3,600,000 ms), as documented.
    for (timeout, status) in [(3_600_000u64, 200u16), (3_600_001, 400), (u64::MAX, 400)] {
        let body = json!({ "inputs": [item], "timeout_ms": timeout }).to_string();
        let (got, answer, _) = server
            .send("POST", "/v1/models/echo/predict", &body, None)
            .await;
        assert_eq!(got, status, "{timeout}: {answer}");
        if status == 400 {
            assert_eq!(answer["error_type"], "invalid_input");
            assert!(answer["error"].as_str().unwrap().contains("timeout_ms"));
        } else {
            assert_eq!(floats(&answer["outputs"][0]), item);
        }
    }
    // The same for a job's body, refused before it is stored.
    let body = json!({ "inputs": [item], "timeout_ms": 3_600_001 }).to_string();
    let (got, answer, _) = server
        .send("POST", "/v1/models/echo/jobs", &body, None)
        .await;
    assert_eq!(got, 400, "{answer}");
    // v2 `parameters.timeout` is in microseconds: at most 3,600,000,000.
    for (timeout, status) in [(3_600_000_000u64, 200u16), (3_600_000_001, 400)] {
        let body = json!({
            "parameters": { "timeout": timeout },
            "inputs": [{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": item }],
        })
        .to_string();
        let (got, answer, _) = server
            .send("POST", "/v2/models/echo/infer", &body, None)
            .await;
        assert_eq!(got, status, "{timeout}: {answer}");
        if status == 200 {
            // The answer has the documented InferResponse shape, and no `id` (none was sent).
            assert_eq!(answer["model_name"], "echo");
            assert!(answer.get("id").is_none(), "{answer}");
            assert_eq!(answer["outputs"][0]["datatype"], "FP32");
            assert_eq!(answer["outputs"][0]["shape"], json!([1, 4]));
            assert_eq!(floats(&answer["outputs"][0]["data"]), item);
        } else {
            assert!(answer["error"]
                .as_str()
                .unwrap()
                .contains("parameter 'timeout'"));
        }
    }
    // `/metrics` is GET only: another method is 405 with `Allow`, like every route.
    let (status, answer, headers) = server.send("TRACE", "/metrics", "", None).await;
    assert_eq!(status, 405, "{answer}");
    assert_eq!(headers.get("allow").unwrap(), "GET");
    assert_eq!(answer["error_type"], "method_not_allowed");
    // The admin listing matches its schema's required fields.
    let (status, listing) = server.admin("GET", "/admin/models", "").await;
    assert_eq!(status, 200);
    let document: Value = server.get("/openapi.json").await.1;
    let required = document["components"]["schemas"]["RoutedVersion"]["required"]
        .as_array()
        .expect("required")
        .clone();
    for version in listing["versions"].as_array().expect("versions") {
        for field in &required {
            assert!(
                version.get(field.as_str().unwrap()).is_some(),
                "{field} missing in {version}"
            );
        }
    }
    server.stop().await;
}
