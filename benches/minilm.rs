//! all-MiniLM-L6-v2 throughput: sentences/s at batch 1 and 32 for short (≈16 tokens) and long
//! (≈128 tokens) texts, in-process and served over HTTP on 127.0.0.1 (32 concurrent clients,
//! one sentence per request, dynamic batching), length grouping on/off on a mixed batch, served
//! against in-process batch 32 in alternating rounds (A B B A: the ratio the issue targets,
//! with the machine's drift cancelled), and the bench process's peak RSS (the in-process model
//! and the server's, both loaded). Writes `benches/results/minilm.json`. Run: `cargo bench --bench minilm`
//! (the in-process rates also go to target/bench-minilm/in_process.json; `MINILM_IN_PROCESS_ONLY=1`:
//! only them)
//! (`MINILM_PROFILE=short|long`: only batch 32 of that set for 6 s, for `benches/minilm_profile.sh`)
//! (needs `scripts/fetch-minilm.sh`). Bounded: about two minutes on 2 cores.

use std::path::Path;
use std::time::{Duration, Instant};

use burnserve::Settings;
use burnserve_models::arch::bert::TextEmbedder;
use burnserve_models::arch::CpuBackend;
use burnserve_models::ModelSpec;
use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "the",
    "model",
    "server",
    "answers",
    "every",
    "request",
    "quickly",
    "while",
    "batching",
    "sentences",
    "from",
    "many",
    "clients",
    "on",
    "a",
    "small",
    "machine",
    "with",
    "two",
    "cores",
    "and",
    "reports",
    "latency",
    "throughput",
    "memory",
    "in",
    "one",
    "file",
    "engineers",
    "read",
    "before",
    "deciding",
];

/// `count` texts of `words` words each, all different.
fn texts(count: usize, words: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            (0..words)
                .map(|w| WORDS[(i * 7 + w * 3 + w / WORDS.len()) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Sentences per second embedding `texts` in batches of `batch`, repeated for at least `min`.
fn in_process(
    model: &mut TextEmbedder<CpuBackend>,
    texts: &[String],
    batch: usize,
    min: Duration,
) -> f64 {
    model.embed(texts[..batch].to_vec()).expect("warm-up");
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < min {
        for chunk in texts.chunks(batch) {
            model.embed(chunk.to_vec()).expect("embed");
            done += chunk.len();
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// CPU seconds this process has used (all threads: user + system, from /proc; Linux ticks are
/// 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // After the command: state, ppid, pgrp, session, tty_nr, tpgid (-1 without a
            // terminal), flags, 4 fault counts, then utime and stime.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
            Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Runs `work`, answering its result and the cores the process kept busy meanwhile.
fn with_cores<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let out = work();
    (out, (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sentences per second served: `clients` concurrent loops, each posting `per_request` texts,
/// for `duration`; returns (sentences/s, p50 ms, p99 ms).
async fn served(
    base: &str,
    texts: &[String],
    clients: usize,
    per_request: usize,
    duration: Duration,
) -> (f64, f64, f64) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let start = Instant::now();
    let loops = (0..clients).map(|c| {
        let client = client.clone();
        let url = format!("{base}/v1/models/minilm/predict");
        async move {
            let mut latencies = Vec::new();
            let mut i = c;
            while start.elapsed() < duration {
                let batch: Vec<&String> = (0..per_request)
                    .map(|k| &texts[(i + k) % texts.len()])
                    .collect();
                i += per_request;
                let sent = Instant::now();
                let mut response = client
                    .post(&url)
                    .send_json(&json!({ "inputs": batch }))
                    .await
                    .expect("request");
                let body: Value = response.json().limit(64 << 20).await.expect("json body");
                assert!(response.status().is_success(), "{body}");
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }
    });
    let mut latencies: Vec<f64> = futures_util::future::join_all(loops)
        .await
        .into_iter()
        .flatten()
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (
        (latencies.len() * per_request) as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    )
}

/// A repository with MiniLM's version 1 once more, with `[batching] instances = "auto"` (and
/// `threads_per_instance` left on auto: the cores divided among the instances); the files are
/// hard-linked (copied where a link fails).
fn auto_instances_repository() -> std::path::PathBuf {
    let from = Path::new("models/repository/minilm/1");
    let root = Path::new("target/bench-minilm/instances-auto");
    let dir = root.join("minilm/1");
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(&dir).expect("target/bench-minilm/instances-auto");
    for file in ["model.safetensors", "tokenizer.json", "config.json"] {
        if std::fs::hard_link(from.join(file), dir.join(file)).is_err() {
            std::fs::copy(from.join(file), dir.join(file)).expect("copy MiniLM's files");
        }
    }
    let toml = std::fs::read_to_string(from.join("model.toml")).expect("model.toml");
    assert!(
        toml.contains("[batching]\n"),
        "MiniLM's model.toml has a [batching] table"
    );
    let toml = toml.replace("[batching]\n", "[batching]\ninstances = \"auto\"\n");
    std::fs::write(dir.join("model.toml"), toml).expect("write model.toml");
    root.to_path_buf()
}

/// Serves MiniLM with `settings` and measures it served (1 and 32 clients, 1 and 32 texts a
/// request), then served against in-process batch 32 in alternating rounds; results under keys
/// prefixed with `label`.
async fn serve_and_measure(
    settings: Settings,
    label: &str,
    short: &[String],
    long: &[String],
    model: &mut TextEmbedder<CpuBackend>,
    results: &mut Value,
) {
    let running = burnserve::start(settings).await.expect("server starts");
    let base = format!("http://{}", running.addr);
    let handle = running.handle.clone();
    actix_web::rt::spawn(running.server);
    let shown = label.trim_end_matches('_').replace('_', " ");
    let shown = if shown.is_empty() {
        "as shipped".to_string()
    } else {
        shown
    };
    for (name, set) in [("short", short), ("long", long)] {
        for (clients, per_request) in [(1usize, 1usize), (32, 1), (1, 32)] {
            let (cpu, wall) = (cpu_seconds(), Instant::now());
            let (rate, p50, p99) =
                served(&base, set, clients, per_request, Duration::from_secs(6)).await;
            // Server and clients share the process: the cores include the clients' share.
            let cores = (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64();
            let key = format!("clients_{clients}_texts_per_request_{per_request}");
            println!("served {name} ({shown}): {clients:2} clients × {per_request:2} texts/request: {rate:8.1} sentences/s, p50 {p50:7.1} ms, p99 {p99:7.1} ms, {cores:.2} cores busy (server + clients)");
            results[format!("{label}served")][name][key] = json!({ "sentences_per_s": rate, "p50_ms": p50, "p99_ms": p99, "cores_busy": cores });
        }
    }
    // The target's ratio, with the machine's drift cancelled: served (32 one-text clients)
    // and in-process batch 32 in alternating rounds (A B B A), means of each.
    let round = Duration::from_secs(4);
    for (name, set) in [("short", short), ("long", long)] {
        let (mut local, mut remote, mut remote_cores) = (Vec::new(), Vec::new(), Vec::new());
        for order in [[false, true], [true, false]] {
            for serve in order {
                if serve {
                    let (cpu, wall) = (cpu_seconds(), Instant::now());
                    let (rate, _, _) = served(&base, set, 32, 1, round).await;
                    remote.push(rate);
                    remote_cores.push((cpu_seconds() - cpu) / wall.elapsed().as_secs_f64());
                } else {
                    // The server idles meanwhile; its workers are threads of their own.
                    local.push(in_process(model, set, 32, round));
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let ratio = mean(&remote) / mean(&local);
        println!(
            "alternating {name} ({shown}): served (32 one-text clients) {:.1} / in-process batch 32 {:.1} sentences/s = {ratio:.3}x, served at {:.2} cores busy (rounds: served {remote:.1?}, in-process {local:.1?})",
            mean(&remote),
            mean(&local),
            mean(&remote_cores)
        );
        results[format!("{label}served_vs_in_process_b32")][name] = json!({
            "served_sentences_per_s": remote,
            "in_process_sentences_per_s": local,
            "served_cores_busy": remote_cores,
            "ratio": ratio,
        });
    }
    handle.stop(true).await;
}

fn main() {
    let dir = Path::new("models/repository/minilm/1");
    assert!(
        dir.join("model.safetensors").is_file(),
        "MiniLM files are absent: run scripts/fetch-minilm.sh"
    );
    let spec = ModelSpec::from_dir(dir).expect("model.toml");
    let mut model = TextEmbedder::<CpuBackend>::load(&spec, dir, Default::default()).expect("load");
    let short = texts(64, 13);
    let long = texts(32, 120);
    let tokens = |m: &TextEmbedder<CpuBackend>, t: &[String]| {
        t.iter()
            .map(|s| m.token_ids(s).expect("tokens").len())
            .sum::<usize>() as f64
            / t.len() as f64
    };
    let (short_tokens, long_tokens) = (tokens(&model, &short), tokens(&model, &long));
    let budget = Duration::from_secs(6);
    if let Ok(set) = std::env::var("MINILM_PROFILE") {
        // One batch size of one set and nothing else, so that a profiler sees only its passes.
        let texts = if set == "long" { &long } else { &short };
        let (rate, cores) = with_cores(|| in_process(&mut model, texts, 32, budget));
        println!("profile {set} batch 32: {rate:.1} sentences/s, {cores:.2} cores busy");
        return;
    }
    let mut results = json!({
        "model": "all-MiniLM-L6-v2",
        "backend": burnserve_models::arch::CPU_BACKEND,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "short_mean_tokens": short_tokens,
        "long_mean_tokens": long_tokens,
    });
    for (name, set) in [("short", &short), ("long", &long)] {
        for batch in [1usize, 32] {
            let (rate, cores) = with_cores(|| in_process(&mut model, set, batch, budget));
            println!(
                "in-process {name} (≈{:.0} tokens) batch {batch:2}: {rate:8.1} sentences/s, {cores:.2} cores busy",
                if name == "short" {
                    short_tokens
                } else {
                    long_tokens
                }
            );
            results["in_process"][name][format!("batch_{batch}")] = json!(rate);
            results["in_process_cores"][name][format!("batch_{batch}")] = json!(cores);
        }
    }
    // The in-process rates alone, for benches/minilm_vs_anchors.sh (which alternates them with
    // PyTorch and ONNX Runtime): target/bench-minilm/in_process.json.
    let dir = Path::new("target/bench-minilm");
    std::fs::create_dir_all(dir).expect("target/bench-minilm");
    std::fs::write(
        dir.join("in_process.json"),
        serde_json::to_string_pretty(&results).expect("json") + "\n",
    )
    .expect("write in-process results");
    if std::env::var("MINILM_IN_PROCESS_ONLY").is_ok_and(|v| v == "1") {
        return;
    }
    // A mixed batch: 16 short and 16 long texts, one pass padded to the longest vs grouped.
    let mixed: Vec<String> = short
        .iter()
        .take(16)
        .chain(long.iter().take(16))
        .cloned()
        .collect();
    for grouped in [false, true] {
        model.set_group_by_length(grouped);
        let before = model.token_counts();
        let rate = in_process(&mut model, &mixed, 32, budget);
        let after = model.token_counts();
        let waste = (after.padded - before.padded) as f64 / (after.real - before.real) as f64 - 1.0;
        let key = if grouped { "grouped" } else { "one_pass" };
        println!(
            "mixed batch of 32, {key:8}: {rate:8.1} sentences/s, padding waste {:5.1}%",
            waste * 100.0
        );
        results["mixed_batch_32"][key] = json!({ "sentences_per_s": rate, "padding_waste": waste });
    }
    model.set_group_by_length(true);

    let system = actix_web::rt::System::new();
    system.block_on(async {
        let mut settings = Settings::load(Some(Path::new("config/minilm.toml"))).expect("settings");
        settings.server.port = 0;
        settings.log.level = "warn".into();
        // No job store: the bench serves interactive requests only.
        settings.jobs.enabled = false;
        // As shipped (one instance on the shared pool), then as README recommends for many
        // concurrent clients: `instances = "auto"`, one instance per core on a pool of its own.
        let mut auto = settings.clone();
        auto.repository.path = auto_instances_repository();
        auto.models.retain(|m| m.name == "minilm");
        for (label, settings) in [("", settings), ("instances_auto_", auto)] {
            serve_and_measure(settings, label, &short, &long, &mut model, &mut results).await;
        }
    });
    results["bench_process_peak_rss_mib"] = json!(peak_rss_mib());
    println!("peak RSS (whole bench process): {:.1} MiB", peak_rss_mib());
    let out = Path::new("benches/results/minilm.json");
    std::fs::write(
        out,
        serde_json::to_string_pretty(&results).expect("json") + "\n",
    )
    .expect("write results");
    println!("wrote {}", out.display());
}
