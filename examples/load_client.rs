//! The protocol benches' native load generator, in the manner of ghz (which no package registry
//! here carries): closed loop, one connection per virtual user, each sending the same request
//! back to back for a fixed time, from one thread. k6's gRPC module turns every call's message
//! into JSON and back (protojson, the raw tensor as base64), ~140 µs of its core a call: it capped
//! gRPC near 6-8k req/s and left the server at 0.2 cores, so what was measured was the wake-ups
//! of an idle server. This client sends pre-encoded requests, so the server's CPU per request is
//! measured near the server's capacity instead. It speaks gRPC (ModelInfer with
//! `raw_input_contents`, through tonic) and HTTP/1.1 keep-alive (v2 JSON, v2 binary tensors,
//! `GET /v2/health/live`, the simple predict API), so every path can be driven by the same
//! generator.
//!
//! ```sh
//! cargo run --release --example load_client -- --mode grpc --addr 127.0.0.1:8001 \
//!     --connections 64 --duration-s 10 --results target/grpc.json
//! ```
//!
//! Every answer is checked (gRPC status OK and the output's bytes; HTTP 200 and the body's
//! length); a failed call counts in `failed_rate` and its connection is opened again. Writes the
//! summary `benches/k6/v2.js` writes (requests, req/s, failed rate, p50/p95/p99 ms). Loopback
//! or any address given; bounded by `--duration-s`.

#[path = "load_client/extra.rs"]
mod extra;
#[path = "load_client/requests.rs"]
mod requests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use burnserve::grpc::proto::ModelInferResponse;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Mode {
    /// gRPC ModelInfer, the input as `raw_input_contents`.
    Grpc,
    /// HTTP v2 infer, the input as JSON `data`.
    Json,
    /// HTTP v2 infer with binary tensor data in and out.
    Binary,
    /// `GET /v2/health/live`: the HTTP floor.
    Live,
    /// The simple predict API (`POST /v1/models/{model}/predict`, `{"inputs": [values]}`), as
    /// `benches/k6/steady.js` sends it: what the bare actix-web echo serves.
    Predict,
}

#[derive(Parser, Debug)]
#[command(about = "Closed-loop load for the protocol benches (see the file's note)")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    /// host:port of the HTTP or gRPC listener.
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, default_value = "fashion")]
    model: String,
    #[arg(long, default_value = "1")]
    version: String,
    #[arg(long, default_value = "pixels")]
    input: String,
    /// The input's shape; the values are (i % 255) / 255, as `benches/k6/v2.js` sends.
    #[arg(long, default_value = "1,28,28", value_delimiter = ',')]
    shape: Vec<i64>,
    /// More inputs after the first, `NAME:DATATYPE:SHAPE` (e.g. `ids:INT64:1x16`), repeatable.
    #[arg(long = "extra", value_parser = extra::parse)]
    extras: Vec<extra::Extra>,
    /// Send only the `--extra` inputs, not the FP32 `--input` (e.g. one BYTES text input).
    #[arg(long)]
    only_extras: bool,
    /// Connections, each one user sending back to back.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    #[arg(long, default_value = "load")]
    name: String,
    /// Where to write the JSON summary.
    #[arg(long)]
    results: Option<std::path::PathBuf>,
}

/// Most latencies kept per connection (beyond them the count still grows).
const MAX_SAMPLES_PER_CONNECTION: usize = 1 << 20;

/// What one connection saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, started: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                if self.latencies_us.len() < MAX_SAMPLES_PER_CONNECTION {
                    let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    self.latencies_us.push(us);
                }
            }
            Err(error) => {
                self.failed += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }
}

/// Most values one request carries (a 64 MiB FP32 tensor).
const MAX_INPUT_VALUES: i64 = 1 << 24;

/// The shape's element count, refused when a dimension is negative or the product is absurd.
fn value_count(shape: &[i64]) -> anyhow::Result<i64> {
    shape
        .iter()
        .try_fold(1i64, |count, &dim| {
            (dim >= 0).then(|| count.checked_mul(dim)).flatten()
        })
        .filter(|&count| count <= MAX_INPUT_VALUES)
        .ok_or_else(|| {
            anyhow::anyhow!("--shape {shape:?}: dimensions ≥ 0, at most {MAX_INPUT_VALUES} values")
        })
}

fn input_values(shape: &[i64]) -> Vec<f32> {
    let count = value_count(shape).unwrap_or(0);
    (0..count).map(|i| (i % 255) as f32 / 255.0).collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    value_count(&args.shape)?;
    anyhow::ensure!(
        args.duration_s.is_finite() && (0.0..=86_400.0).contains(&args.duration_s),
        "--duration-s {}: between 0 and 86400 seconds",
        args.duration_s
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let tallies = runtime.block_on(run(&args))?;
    let elapsed = started
        .elapsed()
        .as_secs_f64()
        .min(args.duration_s)
        .max(1e-9);
    report(&args, &tallies, elapsed)
}

async fn run(args: &Args) -> anyhow::Result<Vec<Tally>> {
    let until = Instant::now() + Duration::from_secs_f64(args.duration_s);
    let mut users = Vec::with_capacity(args.connections);
    match args.mode {
        Mode::Grpc => {
            let request = requests::grpc_request(args);
            for _ in 0..args.connections {
                let sender = grpc_connect(args.addr).await?;
                users.push(tokio::spawn(grpc_user(
                    sender,
                    request.clone(),
                    args.addr,
                    until,
                )));
            }
        }
        mode => {
            let request = requests::http_request(args, mode);
            for _ in 0..args.connections {
                let stream = TcpStream::connect(args.addr).await?;
                stream.set_nodelay(true)?;
                users.push(tokio::spawn(http_user(
                    stream,
                    request.clone(),
                    args.addr,
                    until,
                )));
            }
        }
    }
    let mut tallies = Vec::with_capacity(users.len());
    for user in users {
        tallies.push(user.await?);
    }
    Ok(tallies)
}

/// One HTTP/2 connection, its driver spawned on this thread.
async fn grpc_connect(addr: SocketAddr) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = h2::client::handshake(stream).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn grpc_user(
    mut sender: h2::client::SendRequest<Bytes>,
    body: Bytes,
    addr: SocketAddr,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < until {
        let started = Instant::now();
        let outcome = grpc_call(&mut sender, addr, &body).await;
        // An answered error leaves the connection as it was; a broken one is opened again.
        let broken = outcome
            .as_ref()
            .is_err_and(|e| !e.starts_with("grpc-status"));
        tally.record(started, outcome);
        if broken {
            match grpc_connect(addr).await {
                Ok(fresh) => sender = fresh,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
    tally
}

/// One ModelInfer: the headers and the message are queued before the connection writes, so
/// they leave in one segment, as grpc-go sends them. Ok when the answer decodes, holds raw
/// output bytes, and ends with `grpc-status: 0`.
async fn grpc_call(
    sender: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    body: &Bytes,
) -> Result<(), String> {
    let request = http::Request::post(format!(
        "http://{addr}/inference.GRPCInferenceService/ModelInfer"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .map_err(|e| e.to_string())?;
    let ready = sender.clone().ready().await.map_err(|e| e.to_string())?;
    *sender = ready;
    let (answer, mut stream) = sender
        .send_request(request, false)
        .map_err(|e| e.to_string())?;
    stream
        .send_data(body.clone(), true)
        .map_err(|e| e.to_string())?;
    let answer = answer.await.map_err(|e| e.to_string())?;
    if answer.status() != http::StatusCode::OK {
        return Err(format!("HTTP {}", answer.status()));
    }
    // An error may come "trailers-only": the status in the headers, no message.
    if let Some(status) = answer.headers().get("grpc-status") {
        if status != "0" {
            return Err(grpc_error(answer.headers()));
        }
    }
    let mut received = answer.into_body();
    let mut message = Vec::new();
    while let Some(chunk) = received.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = received.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
    }
    let trailers = received
        .trailers()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if trailers
        .get("grpc-status")
        .is_none_or(|status| status != "0")
    {
        return Err(grpc_error(&trailers));
    }
    let decoded = message
        .get(5..)
        .ok_or("an answer shorter than its framing")
        .and_then(|m| ModelInferResponse::decode(m).map_err(|_| "an undecodable answer"))?;
    match decoded.raw_output_contents.first() {
        Some(bytes) if !bytes.is_empty() => Ok(()),
        _ => Err(format!("an answer without raw output: {decoded:?}")),
    }
}

/// A failed call's `grpc-status`, `error-type` and `grpc-message`, as one line.
fn grpc_error(fields: &http::HeaderMap) -> String {
    let field = |name: &str| {
        fields
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_owned()
    };
    format!(
        "grpc-status {} ({}): {}",
        field("grpc-status"),
        field("error-type"),
        field("grpc-message")
    )
}

async fn http_user(
    mut stream: TcpStream,
    request: Vec<u8>,
    addr: SocketAddr,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buffer = Vec::with_capacity(16 * 1024);
    while Instant::now() < until {
        let started = Instant::now();
        let outcome = http_exchange(&mut stream, &request, &mut buffer).await;
        let failed = outcome.is_err();
        tally.record(started, outcome);
        if failed {
            match TcpStream::connect(addr).await {
                Ok(fresh) => {
                    let _ = fresh.set_nodelay(true);
                    stream = fresh;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
            buffer.clear();
        }
    }
    tally
}

/// Sends one request and reads its whole answer; Ok when it is a 200 with a body.
async fn http_exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> Result<(), String> {
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    buffer.clear();
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 64 * 1024 {
            return Err("answer headers over 64 KiB".into());
        }
        read_more(stream, buffer).await?;
    };
    let head = std::str::from_utf8(&buffer[..header_end]).map_err(|e| e.to_string())?;
    let status = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .ok_or_else(|| format!("an answer without Content-Length: {head}"))?;
    let closes = head.to_ascii_lowercase().contains("connection: close");
    while buffer.len() < header_end + length {
        read_more(stream, buffer).await?;
    }
    if status != "200" || length == 0 {
        let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]);
        return Err(format!("HTTP {status}: {body}"));
    }
    if closes {
        return Err("the server closed the connection".into());
    }
    Ok(())
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn percentile_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let at = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    Some(f64::from(sorted_us[at]) / 1000.0)
}

fn report(args: &Args, tallies: &[Tally], elapsed_s: f64) -> anyhow::Result<()> {
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let requests = ok + failed;
    let summary = serde_json::json!({
        "name": args.name,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "generator": "load_client",
        "vus": args.connections,
        "duration_s": args.duration_s,
        "requests": requests,
        "req_per_s": requests as f64 / elapsed_s,
        "failed_rate": if requests == 0 { 1.0 } else { failed as f64 / requests as f64 },
        "dropped": 0,
        "p50_ms": percentile_ms(&latencies, 0.50),
        "p95_ms": percentile_ms(&latencies, 0.95),
        "p99_ms": percentile_ms(&latencies, 0.99),
    });
    let f = |key: &str| {
        summary[key]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.2}"))
    };
    println!(
        "{}: {} connections, {requests} requests, {} req/s, p50 {} ms, p99 {} ms, failed {}",
        args.name,
        args.connections,
        f("req_per_s"),
        f("p50_ms"),
        f("p99_ms"),
        failed
    );
    if let Some(error) = tallies.iter().find_map(|t| t.first_error.as_ref()) {
        println!("first failure: {error}");
    }
    if let Some(path) = &args.results {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(())
}
