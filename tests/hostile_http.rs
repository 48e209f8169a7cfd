//! Hostile clients against the HTTP listener of the real binary, on 127.0.0.1 only, bounded in
//! count and time; each attack prints what it cost (`cargo test --test hostile_http --
//! --nocapture`, or `benches/hostile.sh`):
//! - 16 concurrent gzip bombs (130 KB each, 134 MB decoded): 413 as they stream, RSS growth
//!   < 200 MB, `/health` answering;
//! - 24 bodies of 7 MB held unfinished at once: the server-wide body budget refuses those past
//!   it (429 `overloaded` + Retry-After) and RSS stays within it;
//! - a tenant over its quota for 5 s: every refusal counted, a bounded number of log lines;
//! - 1,000 admin-token guesses on one connection: counted, and the source slowed after 5;
//! - a 10,000-character model name: 404 with a bounded message; an unknown Content-Encoding: 400.
//!
//! The attacks run one at a time (a lock): each measures one server's memory and latency.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::hostile::{metric_value, HealthProbe, RssSampler, Server};
use common::quantile;
use flate2::write::GzEncoder;
use flate2::Compression;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ADMIN_TOKEN: &str = "hostile-admin-token-0123456789";
const TENANT_KEY: &str = "hostile-tenant-key-0123456789";

/// One request on a fresh connection; (status, the whole reply).
fn send(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    let _ = stream.write_all(body);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn gzip_bombs_stop_at_the_limit_as_they_stream() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start("", "", "");
    // 134 MB of a JSON-looking body, gzipped to ~130 KB.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(b"{\"inputs\": [")
        .and_then(|()| encoder.write_all(&b"0,".repeat(67_000_000)))
        .expect("compress");
    let bomb = encoder.finish().expect("bomb");
    let base = server.rss_mb();
    let sampler = RssSampler::start(server.pid());
    let probe = HealthProbe::start(server.http);
    let started = Instant::now();
    let attackers: Vec<_> = (0..16)
        .map(|i| {
            let (port, bomb) = (server.http, bomb.clone());
            let path = if i % 2 == 0 {
                "/v2/models/echo/infer"
            } else {
                "/v1/models/echo/predict"
            };
            std::thread::spawn(move || {
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bomb.len()
                );
                send(port, &head, &bomb)
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = attackers
        .into_iter()
        .map(|a| a.join().expect("attacker"))
        .collect();
    let took = started.elapsed();
    let (times, failed) = probe.stop();
    let peak = sampler.peak_mb();
    let too_large = answers
        .iter()
        .filter(|(status, text)| *status == 413 && text.contains("payload_too_large"))
        .count();
    let busy = answers
        .iter()
        .filter(|(status, text)| *status == 429 && text.contains("overloaded"))
        .count();
    println!(
        "16 concurrent gzip bombs ({} KB, 134 MB decoded): {too_large} x 413, {busy} x 429 in \
         {took:?}; server RSS {base:.0} MB before, peak {peak:.0} MB (+{:.0} MB); /health \
         meanwhile p99 {:?} ({failed} failed)",
        bomb.len() / 1024,
        peak - base,
        quantile(&times, 0.99)
    );
    assert_eq!(too_large + busy, 16, "{answers:?}");
    assert!(too_large >= 8, "most stop at server.max_body_bytes");
    assert!(peak - base < 200.0, "RSS grew {:.0} MB", peak - base);
    assert_eq!(failed, 0);
    assert!(quantile(&times, 0.99) < Duration::from_millis(500));
    let text = server.metrics();
    assert_eq!(
        metric_value(&text, "request_body_bytes_in_flight", &[]),
        0.0
    );
}

#[test]
fn bodies_in_flight_are_bounded_by_the_server_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start("body_timeout_ms = 3000", "", "");
    let base = server.rss_mb();
    let sampler = RssSampler::start(server.pid());
    let started = Instant::now();
    // 24 connections, each 7 MB into an 8 MB body, then silent.
    let chunk = vec![b' '; 7 << 20];
    let attackers: Vec<_> = (0..24)
        .map(|_| {
            let (port, chunk) = (server.http, chunk.clone());
            std::thread::spawn(move || {
                let head = format!(
                    "POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    8 << 20
                );
                send(port, &head, &chunk)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let held = metric_value(&server.metrics(), "request_body_bytes_in_flight", &[]);
    let answers: Vec<(u16, String)> = attackers
        .into_iter()
        .map(|a| a.join().expect("attacker"))
        .collect();
    let peak = sampler.peak_mb();
    let count = |status: u16, word: &str| {
        answers
            .iter()
            .filter(|(s, text)| *s == status && text.contains(word))
            .count()
    };
    let (busy, timed_out) = (count(429, "overloaded"), count(408, "request_timeout"));
    let retry_after = answers
        .iter()
        .filter(|(s, _)| *s == 429)
        .all(|(_, text)| text.to_ascii_lowercase().contains("retry-after: 1"));
    println!(
        "24 bodies of 7 of 8 MB held at once (budget 64 MiB): {busy} x 429 overloaded, \
         {timed_out} x 408 in {:?}; {:.0} MB held by bodies at the peak; server RSS {base:.0} MB \
         before, peak {peak:.0} MB (+{:.0} MB)",
        started.elapsed(),
        held / 1048576.0,
        peak - base
    );
    assert_eq!(
        busy + timed_out,
        24,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(busy >= 14, "bodies past the budget are refused: {busy}");
    assert!(retry_after, "every 429 says when to retry");
    assert!(held <= 64.0 * 1048576.0, "{held}");
    assert!(peak - base < 64.0 + 80.0, "RSS grew {:.0} MB", peak - base);
    assert_eq!(
        metric_value(&server.metrics(), "request_body_bytes_in_flight", &[]),
        0.0
    );
}

#[test]
fn a_tenant_over_its_quota_is_counted_not_logged_line_by_line() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start(
        "",
        "",
        &format!(
            "[[tenants]]\nname = \"flood\"\napi_key = \"{TENANT_KEY}\"\n\
             requests_per_second = 1\nburst = 1\n"
        ),
    );
    let lines_before = server.log_lines();
    let body = "{\"inputs\": [1, 2, 3, 4]}";
    let request = format!(
        "POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TENANT_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    let (mut sent, mut refused) = (0u64, 0u64);
    // A refusal answered before its body is read closes the connection: each on a fresh one.
    while started.elapsed() < Duration::from_secs(5) {
        let stream = TcpStream::connect(("127.0.0.1", server.http)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        writer.write_all(request.as_bytes()).expect("send");
        sent += 1;
        if read_response(&mut std::io::BufReader::new(stream)).0 == 429 {
            refused += 1;
        }
    }
    let text = server.metrics();
    let counted = metric_value(
        &text,
        "tenant_throttled_total",
        &[("reason", "rate"), ("tenant", "flood")],
    );
    let lines = server.log_lines() - lines_before;
    println!(
        "one tenant over its quota for 5 s: {sent} requests, {refused} refused 429; \
         tenant_throttled_total {counted}; {lines} log lines"
    );
    assert!(refused > 1000, "{refused}");
    assert_eq!(counted as u64, refused);
    assert!(lines <= 6, "{lines} log lines for {refused} refusals");
}

/// Reads one HTTP/1.1 response (status line, headers, a Content-Length body).
fn read_response(reader: &mut impl std::io::BufRead) -> (u16, String) {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return (0, head);
        }
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head + &String::from_utf8_lossy(&body))
}

#[test]
fn admin_token_guesses_are_counted_and_slowed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start("", "", &format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n"));
    let stream = TcpStream::connect(("127.0.0.1", server.http)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = std::io::BufReader::new(stream);
    let guess = |token: &str| {
        format!("GET /admin/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
    };
    let started = Instant::now();
    let (mut wrong, mut slowed, mut retry_after) = (0, 0, Vec::new());
    for i in 0..1000 {
        writer
            .write_all(guess(&format!("guess-{i:024}")).as_bytes())
            .expect("send");
        match read_response(&mut reader) {
            (401, _) => wrong += 1,
            (429, text) if text.contains("rate_limited") => {
                slowed += 1;
                if let Some(line) = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
                {
                    retry_after.push(line[12..].trim().parse::<u64>().unwrap_or(0));
                }
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let took = started.elapsed();
    // The right token is refused too while the penalty lasts, then passes.
    writer
        .write_all(guess(ADMIN_TOKEN).as_bytes())
        .expect("send");
    let (during, _) = read_response(&mut reader);
    let text = server.metrics();
    let failures = metric_value(
        &text,
        "auth_failures_total",
        &[("credential", "admin_token")],
    );
    let penalized = metric_value(&text, "auth_penalized_total", &[]);
    println!(
        "1,000 admin-token guesses on one connection in {took:?}: {wrong} checked (401), \
         {slowed} refused unchecked (429, Retry-After {:?} s); auth_failures_total {failures}, \
         auth_penalized_total {penalized}; the right token during the penalty: {during}",
        retry_after.first()
    );
    assert_eq!(wrong, 5, "5 free guesses, then the source is slowed");
    assert_eq!(slowed, 995);
    assert_eq!(failures, 5.0);
    assert_eq!(penalized, 996.0);
    assert_eq!(during, 429);
    assert!(retry_after.iter().all(|&s| (1..=60).contains(&s)));
    std::thread::sleep(Duration::from_millis(1100));
    writer
        .write_all(guess(ADMIN_TOKEN).as_bytes())
        .expect("send");
    assert_eq!(read_response(&mut reader).0, 200, "after the penalty");
}

#[test]
fn echoed_input_is_bounded_and_unknown_codings_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start("", "", "");
    let name = "m".repeat(10_000);
    let body = "{\"inputs\": [1, 2, 3, 4]}";
    let (status, text) = send(
        server.http,
        &format!(
            "POST /v1/models/{name}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        b"",
    );
    let answer = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(answer).expect("JSON error");
    let message = json["error"].as_str().unwrap_or("");
    println!(
        "a 10,000-character model name: {status} {}, message of {} bytes",
        json["error_type"],
        message.len()
    );
    assert_eq!(status, 404);
    assert_eq!(json["error_type"], "model_not_found");
    assert!(message.len() <= 1100, "{}", message.len());
    assert!(message.contains("bytes cut"), "{message}");
    let (status, text) = send(
        server.http,
        &format!(
            "POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Encoding: br\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        b"",
    );
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("Content-Encoding 'br' is not supported"),
        "{text}"
    );
}
