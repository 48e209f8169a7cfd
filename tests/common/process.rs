//! The `burnserve` binary as a child process: spawn it on a free loopback port, wait until it
//! answers, kill it when the test ends, and talk raw HTTP/1.1 to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, with a job store of its own (`BURNSERVE__JOBS__PATH`, a fresh directory under
/// the system's temp dir): servers started from the package root would otherwise share
/// `data/jobs`. A test that needs its own store sets the variable again. gRPC listens on a free
/// port (`BURNSERVE__GRPC__PORT=0`).
pub fn burnserve() -> Command {
    static STORES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let store =
        std::env::temp_dir().join(format!("burnserve-test-jobs-{}-{n}", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_burnserve"));
    command.env("BURNSERVE__JOBS__PATH", store);
    // Binaries of one test run side by side: gRPC on any free port, not 8001.
    command.env("BURNSERVE__GRPC__PORT", "0");
    command
}

/// Kills the server when the test ends, pass or fail.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request on a fresh connection (`Connection: close`); the whole reply as text.
pub fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Waits until `GET path` answers 200 (at most 30 s).
pub fn wait_until_ready(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    loop {
        assert!(
            Instant::now() < deadline,
            "server did not answer on port {port}"
        );
        if http(port, &request).is_ok_and(|reply| reply.starts_with("HTTP/1.1 200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the binary with `--config config` (logs discarded, `RUST_LOG` unset) and waits until
/// `GET ready` answers 200 on `port`.
pub fn serve(config: &Path, port: u16, ready: &str) -> Killed {
    let child = burnserve()
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Killed(child);
    wait_until_ready(port, ready);
    server
}
