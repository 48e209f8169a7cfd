//! Deadline-aware admission on the bundled Fashion-MNIST CNN under load, over HTTP on
//! 127.0.0.1: with `timeout_ms` of 2 and of 20, work that cannot meet its deadline is refused
//! at once (429 with `Retry-After`) or dropped before its pass, so the requests computed exceed
//! the requests answered 200 by at most 2% (or 10). The deadline counts from the request's
//! arrival; a 504 comes within its deadline plus [`SCHEDULING_SLACK`] (as the server timed it:
//! `Server-Timing: total`, from the request's headers to its answer; the client's clock is
//! printed beside it). The slack is what a loaded 2-core machine guarantees, not what a quiet
//! one shows: 32 clients in this process keep both cores busy, a worker reaches a due 504 only
//! after the requests queued on it, and other work on the machine delays it more (a quiet run's
//! 2 ms deadline's 504s came at 5 to 8 ms; a fresh clone's `scripts/test.sh` beside other work
//! saw 110 ms for a 20 ms deadline). The bound still fails a 504 that waits for a queue to drain
//! or never comes; how late 504s are on a quiet machine is printed, not asserted.

mod common;

use std::time::{Duration, Instant};

use burnserve::Settings;
use common::*;
use futures_util::future::join_all;
use serde_json::json;

const CLIENTS: usize = 32;
const RUN: Duration = Duration::from_secs(4);
/// How late past its deadline a 504 may come on a loaded 2-core machine (see above).
const SCHEDULING_SLACK: Duration = Duration::from_secs(1);

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
    server_took: Duration,
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
                let server_took = TestServer::server_total(&headers)
                    .expect("every response carries Server-Timing: total");
                let retry_after = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                outcomes.push(Outcome {
                    status,
                    took,
                    server_took,
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
        let slowest_504_server = outcomes
            .iter()
            .filter(|o| o.status == 504)
            .map(|o| o.server_took)
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
             computed {computed}; executor 504s so far {executor_504}; slowest 504 \
             {slowest_504_server:?} at the server ({slowest_504:?} at the client), slowest 429 \
             {slowest_429:?}"
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
        let deadline = Duration::from_millis(deadline_ms);
        assert!(
            slowest_504_server <= deadline + SCHEDULING_SLACK,
            "{model}: a 504 came after {slowest_504_server:?} (server time)"
        );
    }
    server.stop().await;
}

/// Once a version has refused a request for its deadline it sheds: the next requests are refused
/// before their body is read (a stalled body gets its 429 at once, not a 408 later), counted
/// like any other refusal, until the work ahead falls below 80% of the deadline.
#[actix_web::test]
async fn a_shedding_version_refuses_before_reading_the_body() {
    let fixture = Fixture::new();
    let dir = fixture.path().join("shedder").join("1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("model.toml"),
        "architecture = \"fake-slow\"\ntimeout_ms = 300\nparams = { delay_ms = 100 }\n\
         [batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\n\
         [input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [2]\n",
    )
    .unwrap();
    let toml = fixture.settings_toml("[[models]]\nname = \"shedder\"\nversions = [\"1\"]\n");
    let server = TestServer::start(Settings::from_toml(&toml).unwrap()).await;
    let path = "/v1/models/shedder/predict";
    let item = |x: f32| json!({ "inputs": [x, x] });

    // A and B fill 200 ms of a 300 ms deadline (251 ms with the margin); C cannot make it
    // (refused after its body was read, at the full admission), and the version starts shedding.
    let (a, b) = (server.post(path, &item(1.0)), server.post(path, &item(2.0)));
    let c_and_d = async {
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
        let (status_c, body_c, _) = server.post(path, &item(3.0)).await;
        // D sends its headers and 10 of 100 body bytes, then nothing.
        let addr = server.base.trim_start_matches("http://").to_string();
        let started = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"inputs\":"
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; 4096];
        let first = actix_web::rt::time::timeout(Duration::from_secs(5), stream.read(&mut reply))
            .await
            .expect("an answer")
            .expect("read");
        let answered_after = started.elapsed();
        reply.truncate(first);
        let rest =
            actix_web::rt::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
                .await;
        let closed = matches!(rest, Ok(Ok(_)) | Ok(Err(_)));
        let d = (
            String::from_utf8_lossy(&reply).into_owned(),
            closed,
            answered_after,
        );
        ((status_c, body_c), d)
    };
    let ((status_a, _, _), (status_b, _, _), ((status_c, body_c), (reply_d, closed_d, took_d))) =
        futures_util::future::join3(a, b, c_and_d).await;
    assert_eq!((status_a, status_b), (200, 200));
    assert_eq!(
        (status_c, body_c["error_type"].as_str()),
        (429, Some("overloaded")),
        "{body_c}"
    );
    assert!(reply_d.starts_with("HTTP/1.1 429"), "{reply_d}");
    assert!(
        reply_d.contains("\"error_type\":\"overloaded\""),
        "{reply_d}"
    );
    assert!(
        reply_d.to_ascii_lowercase().contains("retry-after"),
        "{reply_d}"
    );
    assert!(closed_d, "the unread body closes the connection");
    assert!(
        took_d < Duration::from_millis(150),
        "refused before its body, at once: {took_d:?}"
    );

    // The work ahead is done: shedding stops, and E is served.
    let (status_e, body_e, _) = server.post(path, &item(5.0)).await;
    assert_eq!(status_e, 200, "{body_e}");
    let text = server.metrics().await;
    let labels = [("model", "shedder"), ("version", "1")];
    assert_eq!(metric(&text, "inference_requests_total", &labels), 5.0);
    let overloaded = [
        ("model", "shedder"),
        ("version", "1"),
        ("error_type", "overloaded"),
    ];
    assert_eq!(metric(&text, "inference_errors_total", &overloaded), 2.0);
    assert_eq!(metric(&text, "inference_batch_size_count", &labels), 3.0);
    server.stop().await;
}
