//! Memory given back on unload: RSS after 200 load → predict → unload cycles of one version
//! stays within 10% of RSS after the first 10. Its own test binary, so no other test shares the
//! process whose RSS it reads. Bounded: 200 cycles on 127.0.0.1.

mod common;

use std::time::Instant;

use burnserve::Settings;
use common::{TestServer, TOKEN};
use serde_json::json;

/// Resident set size of this process (the server runs in it), from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

#[actix_web::test]
async fn rss_is_flat_over_200_load_unload_cycles() {
    // The bundled repository: fashion/1 (a 940 kB MLP) is cycled; fashion/2 keeps serving.
    let toml = format!(
        "[server]\nport = 0\nworkers = 2\n[log]\nlevel = \"warn\"\n[admin]\ntoken = \"{TOKEN}\"\n[[models]]\nname = \"fashion\"\nversions = [\"2\"]\n"
    );
    let server = TestServer::start(Settings::from_toml(&toml).unwrap()).await;
    let image = json!({ "inputs": vec![0.5f32; 784] });
    let started = Instant::now();
    let mut after_10 = 0;
    for cycle in 1..=200 {
        let (status, body) = server
            .admin("POST", "/admin/models/fashion/versions/1", "")
            .await;
        assert_eq!(status, 200, "cycle {cycle}: {body}");
        let (status, body, _) = server
            .post("/v1/models/fashion/versions/1/predict", &image)
            .await;
        assert_eq!((status, body["version"].as_str()), (200, Some("1")));
        let (status, body) = server
            .admin("DELETE", "/admin/models/fashion/versions/1", "")
            .await;
        assert_eq!(status, 200, "cycle {cycle}: {body}");
        if cycle == 10 {
            after_10 = rss_bytes();
        }
    }
    let after_200 = rss_bytes();
    let growth = after_200 as f64 / after_10 as f64;
    println!(
        "RSS after 10 cycles {:.1} MiB, after 200 {:.1} MiB (x{growth:.3}), 200 cycles in {:.1} s",
        after_10 as f64 / 1048576.0,
        after_200 as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    assert!(
        growth <= 1.10,
        "RSS grew {growth:.3}x between cycle 10 and 200"
    );
    let text = server.metrics().await;
    let loads = common::metric(
        &text,
        "model_lifecycle_total",
        &[
            ("model", "fashion"),
            ("version", "1"),
            ("action", "load"),
            ("outcome", "success"),
        ],
    );
    assert_eq!(loads, 200.0);
    server.stop().await;
}
