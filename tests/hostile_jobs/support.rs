//! `tests/hostile_jobs.rs`'s helpers: raw HTTP to the binary, the server as a child process
//! with its log in a file, a small tmpfs for the job store (mounted here, or in the server's own
//! mount namespace), and the bodies the tests send.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::process::{burnserve, free_port, Killed};
use super::common::{Fixture, TOKEN};

/// An answer: status, headers (lower-case names), JSON body.
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Reply {
    pub fn error_type(&self) -> &str {
        self.body["error_type"].as_str().unwrap_or_default()
    }
}

/// One request on a fresh connection, as `token` (the admin token when `None`); status 0 when
/// nothing listens.
pub fn send(port: u16, method: &str, path: &str, body: &[u8], token: Option<&str>) -> Reply {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        // Not listening (yet): status 0.
        return Reply {
            status: 0,
            headers: HashMap::new(),
            body: Value::Null,
        };
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        token.unwrap_or(TOKEN),
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(body).expect("body");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.get(9..12))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

pub fn get(port: u16, path: &str) -> Reply {
    send(port, "GET", path, b"", None)
}

/// A sample of `/metrics` without labels.
pub fn gauge(port: u16, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The server, its port and its log file (stdout and stderr).
pub struct Server {
    pub process: Killed,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Waits until `GET path` answers 200 (30 s); a server that exits shows its log.
    pub fn wait_ready(&mut self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(exit)) = self.process.0.try_wait() {
                panic!("the server ended ({exit}): {:#?}", self.log_lines());
            }
            if get(self.port, path).status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} not ready: {:#?}",
                self.log_lines()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `VmHWM` (peak resident set) or `VmRSS` of the process, in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("process status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .expect("memory field")
    }
}

/// The binary under test (`HOSTILE_JOBS_BIN` for another build).
pub fn binary() -> Command {
    match std::env::var_os("HOSTILE_JOBS_BIN") {
        Some(bin) => {
            let mut command = Command::new(bin);
            command.env("BURNSERVE__GRPC__PORT", "0");
            command
        }
        None => burnserve(),
    }
}

/// Writes the fixture's config with `extra` (sections) and `models` (more `[[models]]`) and
/// starts the server with `env`, logging to a file; `wrap` runs it under another command.
pub fn start(
    fixture: &Fixture,
    extra: &str,
    models: &str,
    env: &[(&str, String)],
    wrap: Option<&[String]>,
) -> Server {
    let port = free_port();
    let toml = fixture
        .settings_toml(&format!("[admin]\ntoken = \"{TOKEN}\"\n{extra}"))
        .replace("port = 0", &format!("port = {port}"))
        .replace(
            "level = \"warn\"",
            "level = \"warn,burnserve_actors::jobs=info\"",
        )
        + models;
    let config = fixture.path().join(format!("hostile-{port}.toml"));
    std::fs::write(&config, toml).expect("config");
    let log = fixture.path().join(format!("hostile-{port}.log"));
    let mut command = match wrap {
        Some(wrapper) => {
            let mut command = Command::new(&wrapper[0]);
            command.args(&wrapper[1..]);
            command.arg(binary().get_program());
            command.env("BURNSERVE__GRPC__PORT", "0");
            command
        }
        None => binary(),
    };
    // The log goes to stdout; stderr (a panic) beside it.
    let file = std::fs::File::create(&log).expect("log file");
    command
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    for (key, value) in env {
        command.env(key, value);
    }
    let process = Killed(command.spawn().expect("server starts"));
    let mut server = Server { process, port, log };
    server.wait_ready("/ready");
    server
}

/// A tmpfs of `size` for the job store: mounted here (root), or in the server's own mount
/// namespace (`unshare`), reached through `/proc/<pid>/root`.
pub enum SmallDisk {
    Mounted {
        dir: tempfile::TempDir,
    },
    Unshared {
        dir: tempfile::TempDir,
        size: String,
    },
}

impl SmallDisk {
    pub fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let force_unshare = std::env::var_os("HOSTILE_JOBS_UNSHARE").is_some();
        if !force_unshare {
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .output();
            if mounted.is_ok_and(|out| out.status.success()) {
                return SmallDisk::Mounted { dir };
            }
        }
        // Not root: a mount namespace of our own, where an unprivileged user may mount a tmpfs.
        let probe = Command::new("unshare")
            .args(["--mount", "--map-root-user", "sh", "-c"])
            .arg(format!("mount -t tmpfs -o size={size} tmpfs \"$0\""))
            .arg(dir.path())
            .output();
        match probe {
            Ok(out) if out.status.success() => SmallDisk::Unshared {
                dir,
                size: size.to_string(),
            },
            other => panic!(
                "this test needs a small filesystem for the job store: run it as root (to \
                 `mount -t tmpfs`) or where unprivileged user namespaces are allowed (`unshare \
                 --mount --map-root-user`); neither worked: {other:?}"
            ),
        }
    }

    /// The store's directory as the server sees it.
    pub fn jobs_dir(&self) -> PathBuf {
        match self {
            SmallDisk::Mounted { dir } | SmallDisk::Unshared { dir, .. } => dir.path().join("jobs"),
        }
    }

    /// A path on the tmpfs as this process reaches it.
    pub fn here(&self, server: &Server, name: &str) -> PathBuf {
        match self {
            SmallDisk::Mounted { dir } => dir.path().join(name),
            SmallDisk::Unshared { dir, .. } => {
                let inside = dir.path().strip_prefix("/").expect("absolute");
                Path::new(&format!("/proc/{}/root", server.pid()))
                    .join(inside)
                    .join(name)
            }
        }
    }

    /// The command the server runs under, if any.
    pub fn wrapper(&self) -> Option<Vec<String>> {
        match self {
            SmallDisk::Mounted { .. } => None,
            SmallDisk::Unshared { dir, size } => Some(vec![
                "unshare".into(),
                "--mount".into(),
                "--map-root-user".into(),
                "sh".into(),
                "-c".into(),
                format!(
                    "mount -t tmpfs -o size={size} tmpfs '{}' && exec \"$@\"",
                    dir.path().display()
                ),
                "sh".into(),
            ]),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let SmallDisk::Mounted { dir } = self {
            let unmounted = Command::new("umount").arg(dir.path()).status();
            if !unmounted.is_ok_and(|s| s.success()) {
                let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
            }
        }
    }
}

/// Fills the filesystem of `path` with one file until it refuses: its size.
pub fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let mut written = 0u64;
    for chunk in [256 << 10, 4 << 10, 512] {
        let block = vec![0x5au8; chunk];
        while file.write_all(&block).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

/// A `vec` job's body: 16 items of 256 numbers, distinct per `n`, exact in f32 and JSON.
pub fn vec_body(n: usize) -> (Vec<u8>, Vec<f32>) {
    let values: Vec<f32> = (0..16 * 256)
        .map(|i| ((n * 31 + i) % 4096) as f32 / 8.0)
        .collect();
    let items: Vec<&[f32]> = values.chunks(256).collect();
    (json!({ "inputs": items }).to_string().into_bytes(), values)
}

/// Polls job `id` until final; its JSON.
pub fn wait_final(port: u16, id: &str, token: Option<&str>, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let reply = send(port, "GET", &format!("/v1/jobs/{id}"), b"", token);
        if reply.status == 200 {
            let status = reply.body["status"].as_str().unwrap_or_default();
            if !["PENDING", "RUNNING"].contains(&status) {
                return reply.body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not final: {} {}",
            reply.status,
            reply.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|v| v as f32)
                .collect()
        })
        .unwrap_or_default()
}

/// A predict body of about `target` bytes of JSON (numbers with six decimals).
pub fn big_body(target: usize, seed: usize) -> Vec<u8> {
    let mut body = String::with_capacity(target + 64);
    body.push_str("{\"inputs\": [");
    let mut i = 0usize;
    while body.len() < target - 40 {
        if i > 0 {
            body.push(',');
        }
        let v = ((i * 7919 + seed * 104_729) % 1_000_000) as f64 / 1_000_000.0;
        body.push_str(&format!("{v:.6}"));
        i += 1;
    }
    // Whole items of 4 (the echo model's item).
    while !i.is_multiple_of(4) {
        body.push_str(",0.000000");
        i += 1;
    }
    body.push_str("], \"top_k\": 1}");
    body.into_bytes()
}

/// The file's bytes on disk and its length.
pub fn file_size(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).expect("store file");
    (meta.blocks() * 512, meta.len())
}
