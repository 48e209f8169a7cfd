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
    // One sample swings by a model's weights (whether the last drained instance's pages are
    // back yet): compare the highest of the first 20 cycles with the lowest of the last 10, so
    // a real leak (every sample rising) still fails.
    let (mut early_high, mut late_low) = (0, u64::MAX);
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
        match cycle {
            1..=20 => early_high = early_high.max(rss_bytes()),
            191..=200 => late_low = late_low.min(rss_bytes()),
            _ => {}
        }
    }
    let growth = late_low as f64 / early_high as f64;
    println!(
        "RSS highest in cycles 1-20 {:.1} MiB, lowest in 191-200 {:.1} MiB (x{growth:.3}), 200 cycles in {:.1} s",
        early_high as f64 / 1048576.0,
        late_low as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    assert!(
        growth <= 1.10,
        "RSS grew {growth:.3}x between the first 20 cycles and the last 10"
    );
    // Nor do series pile up: each unload took the version's series with it.
    let text = server.metrics().await;
    let left: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.contains("model=\"fashion\"") && line.contains("version=\"1\""))
        .collect();
    assert!(left.is_empty(), "series of the unloaded version: {left:?}");
    let serving = [
        ("model", "fashion"),
        ("version", "2"),
        ("tenant", "anonymous"),
    ];
    assert_eq!(
        common::sample(&text, "inference_requests_total", &serving),
        Some(0.0)
    );
    server.stop().await;
}
