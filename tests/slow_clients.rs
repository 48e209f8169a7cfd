//! Slow and stalled clients against the real binary: 1,100 connections that send 10 bytes of a
//! 100-byte body and stall, held for 20 s, while `/health` and predict must keep answering.
//! The server starts with an open-file limit of 1,024 (what the attacker counted on) and must
//! raise it; every stalled connection ends with a 408 or a close.

mod common;

use std::cell::RefCell;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::process::{burnserve, free_port, http, wait_until_ready, Killed};
use common::{quantile, Fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STALLED: usize = 1_100;
const HOLD: Duration = Duration::from_secs(20);
/// The body deadline of this test: inside the 20 s the connections are held.
const BODY_TIMEOUT_MS: u64 = 15_000;

/// The soft and hard open-file limits of a process, from /proc.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// How a stalled connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server answered 408 `request_timeout` (and closed).
    Timeout408,
    /// Closed or reset without a 408.
    Closed,
    /// Still open when the test looked.
    Open,
}

#[actix_web::test]
async fn stalled_bodies_do_not_starve_health_or_predict() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        hard >= 4 * STALLED as u64,
        "this test needs an open-file hard limit of at least {} (it is {hard}): raise it with \
         `ulimit -Hn` or in /etc/security/limits.conf",
        4 * STALLED
    );
    rlimit::increase_nofile_limit(u64::MAX).unwrap();

    let fixture = Fixture::new();
    let port = free_port();
    let config = fixture.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nport = {port}\nworkers = 2\nbody_timeout_ms = {BODY_TIMEOUT_MS}\n\
             [repository]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n\
             [[models]]\nname = \"echo\"\nversions = [\"1\"]\n",
            fixture.path().display()
        ),
    )
    .unwrap();
    let mut command = burnserve();
    command
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Start as the attacker found it: a soft limit of 1,024 open files.
    unsafe {
        command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, 1024, hard));
    }
    let server = Killed(command.spawn().unwrap());
    wait_until_ready(port, "/v2/health/ready");
    let (soft, server_hard) = open_file_limits(server.0.id());
    assert_eq!(
        soft, server_hard,
        "the server raised its open-file limit to the hard limit"
    );

    // The attack: 1,100 connections, each 10 bytes into a 100-byte body.
    let head = "POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\":";
    let endings: Rc<RefCell<Vec<(Ending, Duration)>>> = Rc::default();
    let attack_start = Instant::now();
    for _ in 0..STALLED {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("send head");
        let endings = endings.clone();
        actix_web::rt::spawn(async move {
            let mut reply = Vec::new();
            let read = actix_web::rt::time::timeout(
                HOLD + Duration::from_secs(5),
                stream.read_to_end(&mut reply),
            )
            .await;
            let text = String::from_utf8_lossy(&reply);
            let ending = match read {
                Err(_) => Ending::Open,
                Ok(_) if text.starts_with("HTTP/1.1 408") && text.contains("request_timeout") => {
                    Ending::Timeout408
                }
                Ok(_) => Ending::Closed,
            };
            endings.borrow_mut().push((ending, attack_start.elapsed()));
        });
    }
    println!(
        "{STALLED} stalled connections open after {:?}",
        attack_start.elapsed()
    );

    // While they are held: /health on a fresh connection every 25 ms, predict every 250 ms.
    let mut health = Vec::new();
    let mut predicted = 0;
    let predict = "POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                   Content-Type: application/json\r\nContent-Length: 24\r\n\r\n{\"inputs\": [1, 2, 3, 4]}";
    let mut tick = 0u32;
    while attack_start.elapsed() < HOLD {
        let start = Instant::now();
        let reply = actix_web::rt::task::spawn_blocking(move || {
            http(
                port,
                "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
        })
        .await
        .unwrap()
        .expect("/health answers");
        health.push(start.elapsed());
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        if tick.is_multiple_of(10) {
            let reply = actix_web::rt::task::spawn_blocking(move || http(port, predict))
                .await
                .unwrap()
                .expect("predict answers");
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(reply.contains("\"outputs\":[[1.0,2.0,3.0,4.0]]"), "{reply}");
            predicted += 1;
        }
        tick += 1;
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    // Give the readers a moment to record their endings.
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let endings = endings.borrow().clone();
    let count = |kind| endings.iter().filter(|(e, _)| *e == kind).count();
    let p99 = quantile(&health, 0.99);
    let first_408 = endings
        .iter()
        .filter(|(e, _)| *e == Ending::Timeout408)
        .map(|(_, at)| *at)
        .min();
    println!(
        "/health: {} probes, p50 {:?}, p99 {p99:?}, max {:?}; predict answered {predicted}; \
         stalled: {} got 408, {} closed, {} open; first 408 after {first_408:?}",
        health.len(),
        quantile(&health, 0.5),
        quantile(&health, 1.0),
        count(Ending::Timeout408),
        count(Ending::Closed),
        count(Ending::Open),
    );
    assert!(p99 < Duration::from_millis(50), "/health p99 {p99:?}");
    assert!(
        predicted >= 60,
        "predict answered {predicted} times in 20 s"
    );
    assert_eq!(endings.len(), STALLED, "every stalled connection ended");
    assert_eq!(count(Ending::Open), 0);
    assert_eq!(
        count(Ending::Timeout408),
        STALLED,
        "each stalled body was answered 408"
    );
    // The deadline, not something earlier, ended them.
    assert!(first_408.is_some_and(|at| at >= Duration::from_millis(BODY_TIMEOUT_MS - 500)));
    drop(server);
}
