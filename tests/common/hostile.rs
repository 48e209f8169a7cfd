//! The real binary under attack: started on free loopback ports (HTTP and gRPC) with a config of
//! the test's, its log kept in a file to count lines, its resident memory read from /proc.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::process::{burnserve, free_port, http, wait_until_ready, Killed};
use super::Fixture;

/// The binary serving the fixture's `echo` model, HTTP and gRPC on free ports, its log in a file.
pub struct Server {
    pub child: Killed,
    pub http: u16,
    pub grpc: u16,
    pub log: PathBuf,
    pub fixture: Fixture,
}

impl Server {
    /// `server` and `grpc` are lines of those sections; `rest` other whole sections.
    pub fn start(server: &str, grpc: &str, rest: &str) -> Self {
        let fixture = Fixture::new();
        let (http_port, grpc_port) = (free_port(), free_port());
        let config = fixture.path().join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "{rest}\n[server]\nport = {http_port}\nworkers = 2\n{server}\n\
                 [grpc]\nport = {grpc_port}\n{grpc}\n\
                 [repository]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n\
                 [[models]]\nname = \"echo\"\nversions = [\"1\"]\n",
                fixture.path().display()
            ),
        )
        .expect("config");
        let log = fixture.path().join("server.log");
        let child = burnserve()
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("BURNSERVE__GRPC__PORT")
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn burnserve");
        let child = Killed(child);
        wait_until_ready(http_port, "/v2/health/ready");
        Self {
            child,
            http: http_port,
            grpc: grpc_port,
            log,
            fixture,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Resident memory now, in MB.
    pub fn rss_mb(&self) -> f64 {
        status_kb(self.pid(), "VmRSS:") as f64 / 1024.0
    }

    pub fn metrics(&self) -> String {
        http(
            self.http,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("metrics")
    }

    pub fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

/// A `/proc/<pid>/status` field in kB.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .expect("field")
}

/// Samples the server's RSS every 50 ms until `stop`; returns the highest, in MB.
fn rss_peak_while(server_pid: u32, stop: Arc<AtomicBool>) -> f64 {
    let mut peak = 0u64;
    while !stop.load(Ordering::Acquire) {
        peak = peak.max(status_kb(server_pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(50));
    }
    peak as f64 / 1024.0
}

pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    super::sample(text, name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

/// The server's RSS sampled every 50 ms on a thread of its own, from `start` to `peak_mb`.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || rss_peak_while(pid, stop))
        };
        Self { stop, thread }
    }

    /// The highest RSS seen, in MB.
    pub fn peak_mb(self) -> f64 {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("RSS sampler")
    }
}

/// `/health` probed on a fresh connection every 20 ms on a thread of its own, from `start` to
/// `stop`: what an orchestrator's probe sees during an attack.
pub struct HealthProbe {
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Duration>, usize)>,
}

impl HealthProbe {
    pub fn start(port: u16) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let running = running.clone();
            std::thread::spawn(move || {
                let (mut times, mut failed) = (Vec::new(), 0);
                while running.load(Ordering::Acquire) {
                    let start = std::time::Instant::now();
                    match http(
                        port,
                        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    ) {
                        Ok(reply) if reply.starts_with("HTTP/1.1 200") => {
                            times.push(start.elapsed())
                        }
                        _ => failed += 1,
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                (times, failed)
            })
        };
        Self { running, thread }
    }

    /// The latencies of the probes answered 200, and how many were not.
    pub fn stop(self) -> (Vec<Duration>, usize) {
        self.running.store(false, Ordering::Release);
        self.thread.join().expect("health probe")
    }
}
