//! Floods against the binary serving the bundled CNN and all-MiniLM-L6-v2: 192 clients on fresh
//! connections for 20 s per model (MiniLM's include 8 clients sending 4 MB texts). On two cores
//! shared with the clients this saturates the machine; it does not reach 10x the CNN's capacity
//! (batching keeps up with what the clients can send), so the CNN flood may see no 429. Every request is answered (200, 429 or 503, never a connection error or
//! another status), every 429 within 50 ms, and the server's RSS returns within 1.5x of its
//! steady value afterwards.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{free_port, http, serve};
use common::quantile;

const CLIENTS: usize = 192;
const FLOOD: Duration = Duration::from_secs(20);

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `clients` threads sending `request(i)` back to back for `duration`; every answer's status
/// and latency (status 0: no answer).
fn drive(
    port: u16,
    clients: usize,
    duration: Duration,
    request: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Vec<(u16, Duration)> {
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (request, stop, results) = (request.clone(), stop.clone(), results.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let text = request(c);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let status = http(port, &text)
                        .ok()
                        .and_then(|reply| reply.get(9..12)?.parse::<u16>().ok())
                        .unwrap_or(0);
                    mine.push((status, started.elapsed()));
                }
                results.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    Arc::try_unwrap(results).unwrap().into_inner().unwrap()
}

fn report(name: &str, results: &[(u16, Duration)]) {
    let count = |status: u16| results.iter().filter(|(s, _)| *s == status).count();
    let refused: Vec<Duration> = results
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, t)| *t)
        .collect();
    let served: Vec<Duration> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| *t)
        .collect();
    println!(
        "{name}: {} requests: {} x 200 (p50 {:?}, p99 {:?}), {} x 429 (p99 {:?}, max {:?}), {} x 503",
        results.len(),
        served.len(),
        (!served.is_empty()).then(|| quantile(&served, 0.5)),
        (!served.is_empty()).then(|| quantile(&served, 0.99)),
        refused.len(),
        (!refused.is_empty()).then(|| quantile(&refused, 0.99)),
        refused.iter().max(),
        count(503),
    );
    let others: Vec<_> = results
        .iter()
        .filter(|(s, _)| !matches!(s, 200 | 429 | 503))
        .take(5)
        .collect();
    assert!(
        others.is_empty(),
        "{name}: answers other than 200/429/503: {others:?}"
    );
    assert!(count(200) > 0, "{name}: nothing served");
    let slow_refusals = refused
        .iter()
        .filter(|t| **t > Duration::from_millis(50))
        .count();
    assert_eq!(slow_refusals, 0, "{name}: 429s slower than 50 ms");
}

#[test]
fn floods_of_the_cnn_and_minilm_are_answered_and_memory_comes_back() {
    let minilm = Path::new("models/repository/minilm/1");
    if !burnserve_models::testdata::require_minilm(minilm) {
        return;
    }
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nport = {port}\nworkers = 2\n[log]\nlevel = \"warn\"\n\
             [[models]]\nname = \"fashion\"\nversions = [\"2\"]\n\
             [[models]]\nname = \"minilm\"\nversions = [\"1\"]\n"
        ),
    )
    .unwrap();
    let server = serve(&config, port, "/ready");
    let pid = server.0.id();
    let pixels: Vec<String> = (0..784)
        .map(|i| format!("{:.3}", (i % 255) as f32 / 255.0))
        .collect();
    let image = format!("{{\"inputs\": [{}]}}", pixels.join(","));
    let sentence = r#"{"inputs": ["A man is playing a guitar on stage."]}"#.to_string();

    // Steady: a few clients on each model.
    let (image_steady, sentence_steady) = (image.clone(), sentence.clone());
    drive(port, 4, Duration::from_secs(3), move |c| {
        if c % 2 == 0 {
            post("/v1/models/fashion/predict", &image_steady)
        } else {
            post("/v1/models/minilm/predict", &sentence_steady)
        }
    });
    let steady = rss_bytes(pid);

    let cnn = drive(port, CLIENTS, FLOOD, move |_| {
        post("/v1/models/fashion/predict", &image)
    });
    report("CNN flood", &cnn);
    let peak_cnn = rss_bytes(pid);

    let huge = format!(
        "{{\"inputs\": [\"{}\"]}}",
        "many words of text ".repeat(200_000)
    );
    let text = drive(port, CLIENTS, FLOOD, move |c| {
        if c < 8 {
            post("/v1/models/minilm/predict", &huge)
        } else {
            post("/v1/models/minilm/predict", &sentence)
        }
    });
    report("MiniLM flood", &text);
    let peak_text = rss_bytes(pid);

    std::thread::sleep(Duration::from_secs(3));
    let after = rss_bytes(pid);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "RSS: steady {:.0} MiB, after the CNN flood {:.0} MiB, after the MiniLM flood {:.0} MiB, \
         3 s later {:.0} MiB",
        mib(steady),
        mib(peak_cnn),
        mib(peak_text),
        mib(after)
    );
    assert!(
        after as f64 <= 1.5 * steady as f64,
        "RSS {:.0} MiB after the floods vs {:.0} MiB steady",
        mib(after),
        mib(steady)
    );
    drop(server);
}
