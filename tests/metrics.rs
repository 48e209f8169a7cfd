//! The metric contract from load to unload, over HTTP on 127.0.0.1: a loaded version's request,
//! latency and error series exist at 0 before any traffic (per tenant), its weight bytes are
//! exported, an unload removes every series of the version, the latency buckets resolve
//! sub-millisecond models (and `metrics.latency_buckets` replaces them), `burnserve_build_info`
//! says what runs, `metrics.port` serves `/metrics` and nothing else, and every response
//! carries its `x-request-id`.

mod common;

use burnserve::Settings;
use common::*;
use serde_json::json;

const VERSION_ERRORS: [&str; 6] = [
    "invalid_input",
    "overloaded",
    "not_ready",
    "shutting_down",
    "timeout",
    "inference_error",
];

fn version_lines<'a>(text: &'a str, model: &str, version: &str) -> Vec<&'a str> {
    let (m, v) = (
        format!("model=\"{model}\""),
        format!("version=\"{version}\""),
    );
    text.lines()
        .filter(|line| !line.starts_with('#') && line.contains(&m) && line.contains(&v))
        .collect()
}

#[actix_web::test]
async fn series_exist_at_zero_from_load_and_go_with_the_unload() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let text = server.metrics().await;
    for (model, version) in [("mlp", "1"), ("mlp", "2"), ("echo", "1")] {
        let mvt = [
            ("model", model),
            ("version", version),
            ("tenant", "anonymous"),
        ];
        assert_eq!(
            sample(&text, "inference_requests_total", &mvt),
            Some(0.0),
            "{model}/{version}"
        );
        assert_eq!(
            sample(&text, "inference_latency_seconds_count", &mvt),
            Some(0.0)
        );
        for error in VERSION_ERRORS {
            let labels = [
                ("model", model),
                ("version", version),
                ("error_type", error),
                ("tenant", "anonymous"),
            ];
            assert_eq!(
                sample(&text, "inference_errors_total", &labels),
                Some(0.0),
                "{model}/{version} {error}"
            );
        }
    }
    // Requests for models that are not loaded, and their errors, from start-up too.
    let unknown = [
        ("model", "unknown"),
        ("version", "unknown"),
        ("tenant", "anonymous"),
    ];
    assert_eq!(
        sample(&text, "inference_requests_total", &unknown),
        Some(0.0)
    );
    let not_found = [
        ("model", "unknown"),
        ("version", "unknown"),
        ("error_type", "model_not_found"),
        ("tenant", "anonymous"),
    ];
    assert_eq!(
        sample(&text, "inference_errors_total", &not_found),
        Some(0.0)
    );
    // The finer buckets below the contract's 0.005 s.
    for le in ["0.0005", "0.001", "0.0025", "0.005", "10"] {
        let labels = [
            ("model", "mlp"),
            ("version", "2"),
            ("tenant", "anonymous"),
            ("le", le),
        ];
        assert_eq!(
            sample(&text, "inference_latency_seconds_bucket", &labels),
            Some(0.0),
            "le {le}"
        );
    }
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("cpu_backend", burnserve_models::arch::CPU_BACKEND),
    ];
    assert_eq!(sample(&text, "burnserve_build_info", &build), Some(1.0));
    assert!(text.contains("# HELP burnserve_build_info "));
    // A CPU-only build has no GPU series at all (absent, not 0).
    assert!(!text.contains("gpu_memory"));

    // Weight bytes as the load reported them.
    let (status, listing) = server.admin("GET", "/admin/models", "").await;
    assert_eq!(status, 200, "{listing}");
    let routed = listing["versions"].as_array().expect("versions");
    let mlp2 = routed
        .iter()
        .find(|v| v["model"] == "mlp" && v["version"] == "2")
        .expect("mlp/2 listed");
    let weights = mlp2["weight_bytes"].as_f64().expect("weight_bytes");
    assert!(weights > 1000.0, "{mlp2}");
    let mvd = [("model", "mlp"), ("version", "2"), ("device", "cpu")];
    assert_eq!(sample(&text, "model_weight_bytes", &mvd), Some(weights));

    // Traffic moves the series; an unload removes every series of the version; a new load
    // brings them back at 0.
    let (status, body, _) = server
        .post(
            "/v1/models/echo/predict",
            &json!({ "inputs": [1.0, 2.0, 3.0, 4.0] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = server.metrics().await;
    let echo = [("model", "echo"), ("version", "1"), ("tenant", "anonymous")];
    assert_eq!(sample(&text, "inference_requests_total", &echo), Some(1.0));
    assert!(version_lines(&text, "echo", "1").len() > 20);
    let (status, reply) = server
        .admin("DELETE", "/admin/models/echo/versions/1", "")
        .await;
    assert_eq!(status, 200, "{reply}");
    let text = server.metrics().await;
    assert_eq!(
        version_lines(&text, "echo", "1"),
        Vec::<&str>::new(),
        "series left after the unload"
    );
    let (status, reply) = server
        .admin("POST", "/admin/models/echo/versions/1", "")
        .await;
    assert_eq!(status, 200, "{reply}");
    let text = server.metrics().await;
    assert_eq!(sample(&text, "inference_requests_total", &echo), Some(0.0));
    server.stop().await;
}

#[actix_web::test]
async fn each_tenant_has_its_series_at_zero() {
    let fixture = Fixture::new();
    let toml = fixture.settings_toml(
        "[[tenants]]\nname = \"alpha\"\napi_key = \"alpha-key-0123456789\"\n\
         [[tenants]]\nname = \"beta\"\napi_key = \"beta-key-0123456789a\"\n",
    );
    let server = TestServer::start(Settings::from_toml(&toml).unwrap()).await;
    let text = server.metrics().await;
    for tenant in ["alpha", "beta"] {
        let labels = [("model", "mlp"), ("version", "2"), ("tenant", tenant)];
        assert_eq!(
            sample(&text, "inference_requests_total", &labels),
            Some(0.0),
            "{tenant}"
        );
    }
    let anonymous = [("model", "mlp"), ("version", "2"), ("tenant", "anonymous")];
    assert_eq!(sample(&text, "inference_requests_total", &anonymous), None);
    server.stop().await;
}

#[actix_web::test]
async fn latency_buckets_and_the_metrics_port_come_from_the_settings() {
    let fixture = Fixture::new();
    let toml = fixture.settings_toml("[metrics]\nlatency_buckets = [0.25, 4.0]\nport = 0\n");
    let server = TestServer::start(Settings::from_toml(&toml).unwrap()).await;
    let metrics_base = server.metrics_base.clone().expect("metrics.port bound");
    assert_ne!(metrics_base, server.base);
    let client = awc::Client::default();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let mut response = client.get(url).send().await.expect("sent");
            let body = response.body().limit(16 << 20).await.expect("body");
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    let (status, text) = get(format!("{metrics_base}/metrics")).await;
    assert_eq!(status, 200);
    let les: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("inference_latency_seconds_bucket{"))
        .filter(|l| l.contains("model=\"mlp\",") && l.contains("version=\"2\""))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(les, ["0.25", "4", "+Inf"]);
    // Nothing else on that port: not health, not inference.
    for path in ["/ready", "/health", "/v1/models/mlp", "/admin/models"] {
        let (status, body) = get(format!("{metrics_base}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("metrics port"), "{path}: {body}");
    }
    let mut response = client
        .post(format!("{metrics_base}/v1/models/echo/predict"))
        .send_json(&json!({ "inputs": [1.0, 2.0, 3.0, 4.0] }))
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 404);
    let _ = response.body().await;
    // The main port still serves everything, /metrics included.
    let (status, text) = get(server.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("inference_requests_total"));
    assert_eq!(get(server.url("/ready")).await.0, 200);
    // The HTTP request durations take the same buckets.
    let (_, text) = get(server.url("/metrics")).await;
    let http_les: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_duration_seconds_bucket{"))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        http_les.into_iter().collect::<Vec<_>>(),
        ["+Inf", "0.25", "4"]
    );
    server.stop().await;
}

#[actix_web::test]
async fn every_response_carries_its_request_id() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let send = |headers: Vec<(&'static str, String)>| {
        let mut request = server.client.get(server.url("/v2/models/nope"));
        for (name, value) in headers {
            request = request.insert_header((name, value));
        }
        async move {
            let response = request.send().await.expect("sent");
            assert_eq!(response.status().as_u16(), 404);
            response
                .headers()
                .get("x-request-id")
                .expect("x-request-id")
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        send(vec![("x-request-id", "client-7".into())]).await,
        "client-7"
    );
    assert_eq!(
        send(vec![("traceparent", trace.into())]).await,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let long = "x".repeat(200);
    let generated = send(vec![("x-request-id", long.clone())]).await;
    assert_ne!(generated, long);
    assert_eq!(generated.len(), 32);
    let other = send(vec![]).await;
    assert_eq!(other.len(), 32);
    assert_ne!(other, generated);
    server.stop().await;
}
