//! Deadline-aware admission on the bundled Fashion-MNIST CNN under load, over HTTP on
//! 127.0.0.1: with `timeout_ms` of 2 and of 20, work that cannot meet its deadline is refused
//! at once (429 with `Retry-After`) or dropped before its pass, so the requests computed exceed
//! the requests answered 200 by at most 2% (or 10), and no 504 comes later than twice its
//! deadline.

mod common;

use std::time::{Duration, Instant};

use burnserve::Settings;
use common::*;
use futures_util::future::join_all;
use serde_json::json;

const CLIENTS: usize = 32;
const RUN: Duration = Duration::from_secs(4);

/// The bundled CNN copied under `name` with `timeout_ms` set.
fn cnn_with_timeout(fixture: &Fixture, name: &str, timeout_ms: u64) {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/repository/fashion/2");
    let dir = fixture.path().join(name).join("1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        source.join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let toml = std::fs::read_to_string(source.join("model.toml")).unwrap();
    let toml = toml
        .lines()
        .map(|line| {
            if line.starts_with("timeout_ms") {
                format!("timeout_ms = {timeout_ms}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(toml.contains(&format!("timeout_ms = {timeout_ms}")));
    std::fs::write(dir.join("model.toml"), toml).unwrap();
}

struct Outcome {
    status: u16,
    took: Duration,
    retry_after: Option<u64>,
}

async fn load(server: &TestServer, model: &str) -> Vec<Outcome> {
    let path = format!("/v1/models/{model}/predict");
    let clients = (0..CLIENTS).map(|c| {
        let path = path.clone();
        async move {
            let mut outcomes = Vec::new();
            let started = Instant::now();
            let mut i = 0usize;
            while started.elapsed() < RUN {
                let pixels: Vec<f32> = (0..784)
                    .map(|p| ((p * 7 + c * 13 + i) % 255) as f32 / 255.0)
                    .collect();
                let begin = Instant::now();
                let (status, body, headers) =
                    server.post(&path, &json!({ "inputs": pixels })).await;
                let took = begin.elapsed();
                assert!(matches!(status, 200 | 429 | 504), "{status}: {body}");
                let retry_after = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                outcomes.push(Outcome {
                    status,
                    took,
                    retry_after,
                });
                i += 1;
            }
            outcomes
        }
    });
    join_all(clients).await.into_iter().flatten().collect()
}

#[actix_web::test]
async fn work_that_cannot_meet_its_deadline_is_refused_not_computed() {
    let fixture = Fixture::new();
    cnn_with_timeout(&fixture, "cnn2", 2);
    cnn_with_timeout(&fixture, "cnn20", 20);
    let toml = fixture.settings_toml(
        "[[models]]\nname = \"cnn2\"\nversions = [\"1\"]\n[[models]]\nname = \"cnn20\"\nversions = [\"1\"]\n",
    );
    let server = TestServer::start(Settings::from_toml(&toml).unwrap()).await;
    for (model, deadline_ms) in [("cnn20", 20u64), ("cnn2", 2)] {
        let outcomes = load(&server, model).await;
        let count = |status| outcomes.iter().filter(|o| o.status == status).count();
        let (ok, refused, late) = (count(200), count(429), count(504));
        let text = server.metrics().await;
        let labels = [("model", model), ("version", "1")];
        let computed = metric(&text, "inference_batch_size_sum", &labels);
        let executor_504 = metric(&text, "executor_timeouts_total", &[("device", "cpu")]);
        let slowest_504 = outcomes
            .iter()
            .filter(|o| o.status == 504)
            .map(|o| o.took)
            .max()
            .unwrap_or_default();
        let slowest_429 = outcomes
            .iter()
            .filter(|o| o.status == 429)
            .map(|o| o.took)
            .max()
            .unwrap_or_default();
        println!(
            "{model} (timeout {deadline_ms} ms): {ok} x 200, {refused} x 429, {late} x 504; \
             computed {computed}; executor 504s so far {executor_504}; slowest 504 {slowest_504:?}, \
             slowest 429 {slowest_429:?}"
        );
        let wasted = computed - ok as f64;
        assert!(
            wasted <= (0.02 * ok as f64).max(10.0),
            "{model}: computed {computed} for {ok} answered 200"
        );
        assert!(
            outcomes
                .iter()
                .filter(|o| o.status == 429)
                .all(|o| o.retry_after.is_some_and(|r| r >= 1)),
            "every 429 says when to retry"
        );
        if deadline_ms >= 20 {
            assert!(ok > 1000, "{model}: {ok} requests were served");
        }
        assert!(
            slowest_504 <= Duration::from_millis(2 * deadline_ms) + Duration::from_millis(15),
            "{model}: a 504 came after {slowest_504:?}"
        );
    }
    server.stop().await;
}
