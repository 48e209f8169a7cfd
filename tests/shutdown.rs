//! SIGTERM against the binary under steady traffic, as a load balancer sees it: readiness goes
//! 503 `shutting_down` while the port still serves, the balancer (this test) stops sending new
//! requests when it sees that, no request already sent fails, and the process exits 0.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{free_port, http, serve, Killed};
use common::Fixture;

fn start(fixture: &Fixture, grace_ms: u64) -> (Killed, u16) {
    start_with(fixture, grace_ms, grace_ms + 10_000, "")
}

fn start_with(fixture: &Fixture, grace_ms: u64, timeout_ms: u64, models: &str) -> (Killed, u16) {
    let port = free_port();
    let config = fixture.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nport = {port}\nworkers = 2\ndrain_grace_ms = {grace_ms}\n\
             shutdown_timeout_ms = {timeout_ms}\n[repository]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n\
             [[models]]\nname = \"echo\"\nversions = [\"1\"]\n\
             [[models]]\nname = \"slow\"\nversions = [\"1\"]\n{models}",
            fixture.path().display()
        ),
    )
    .unwrap();
    (serve(&config, port, "/ready"), port)
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn predict_slow() -> String {
    let body = r#"{"inputs": [1, 2]}"#;
    format!(
        "POST /v1/models/slow/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn sigterm_drains_readiness_first_and_fails_no_request() {
    let fixture = Fixture::new();
    let (mut server, port) = start(&fixture, 1500);
    let pid = server.0.id();
    let balancer_away = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    // Four clients send 300 ms requests back to back until the balancer moves away.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (away, outcomes) = (balancer_away.clone(), outcomes.clone());
            std::thread::spawn(move || {
                while !away.load(Ordering::Acquire) {
                    let reply = http(port, &predict_slow());
                    let ok = reply
                        .as_ref()
                        .is_ok_and(|r| r.starts_with("HTTP/1.1 200") && r.contains("[1.0,2.0]"));
                    outcomes.lock().unwrap().push((ok, format!("{reply:?}")));
                }
            })
        })
        .collect();
    // The slow model serves one 300 ms request at a time: at the signal four are in flight.
    std::thread::sleep(Duration::from_millis(1000));
    let signalled = Instant::now();
    signal(pid, "TERM");
    // The balancer probes readiness every 50 ms.
    let mut first_503 = None;
    let mut port_closed = None;
    while signalled.elapsed() < Duration::from_secs(10) {
        match http(
            port,
            "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ) {
            Ok(reply) if reply.starts_with("HTTP/1.1 503") => {
                assert!(reply.contains("shutting_down"), "{reply}");
                first_503.get_or_insert(signalled.elapsed());
                balancer_away.store(true, Ordering::Release);
            }
            Ok(reply) => assert!(
                first_503.is_none() && reply.starts_with("HTTP/1.1 200"),
                "readiness after 503: {reply}"
            ),
            Err(_) => {
                port_closed = Some(signalled.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    balancer_away.store(true, Ordering::Release);
    for client in clients {
        client.join().unwrap();
    }
    let status = server.0.wait().unwrap();
    let exited = signalled.elapsed();
    let outcomes = outcomes.lock().unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|(ok, _)| !ok).collect();
    println!(
        "readiness 503 after {first_503:?}, port closed after {port_closed:?}, exit {status} after \
         {exited:?}; {} requests, {} failed",
        outcomes.len(),
        failed.len()
    );
    let first_503 = first_503.expect("readiness answered 503");
    let port_closed = port_closed.expect("the port closed");
    assert!(first_503 < Duration::from_millis(300), "{first_503:?}");
    assert!(
        port_closed >= Duration::from_millis(1400),
        "the port stayed open for the 1.5 s grace: {port_closed:?}"
    );
    assert!(
        failed.is_empty(),
        "{} failed, the first: {:?}",
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>()
    );
    assert!(outcomes.len() >= 5, "{} requests", outcomes.len());
    assert_eq!(status.code(), Some(0));
    assert!(exited < Duration::from_secs(5), "{exited:?}");
}

#[test]
fn a_second_signal_ends_the_grace_early() {
    let fixture = Fixture::new();
    let (mut server, port) = start(&fixture, 60_000);
    let signalled = Instant::now();
    signal(server.0.id(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    let reply = http(
        port,
        "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    signal(server.0.id(), "INT");
    let status = server.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited after {:?} of a 60 s grace",
        signalled.elapsed()
    );
}

#[test]
fn a_drain_past_its_timeout_gives_up_and_exits_non_zero() {
    let fixture = Fixture::new();
    fixture.add_fake(
        "stuck",
        "fake-slow",
        2,
        "params = { delay_ms = 2000 }\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0",
    );
    let (mut server, port) = start_with(
        &fixture,
        0,
        1000,
        "[[models]]\nname = \"stuck\"\nversions = [\"1\"]\n",
    );
    let body = r#"{"inputs": [1, 2]}"#;
    let request = format!(
        "POST /v1/models/stuck/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let client = std::thread::spawn(move || http(port, &request));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    signal(server.0.id(), "TERM");
    let status = server.0.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(1), "gave up: exit 1");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "gave up after {took:?} of a 1 s shutdown_timeout_ms"
    );
    let _ = client.join();
}
