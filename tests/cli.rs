//! The `burnserve` binary as users run it: `--help`, a config file plus an environment
//! override of the port, and a bad setting that must name its key.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::process::{burnserve, free_port, Killed};
use common::Fixture;

fn mlp_config(fixture: &Fixture) -> std::path::PathBuf {
    let path = fixture.path().join("serve.toml");
    let toml = format!(
        "[repository]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n[[models]]\nname = \"mlp\"\nversions = [\"1\", \"2\"]\n",
        fixture.path().display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn help_lists_the_flags() {
    let out = burnserve().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--config", "--port", "--host", "BURNSERVE__SECTION__KEY"] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn serves_on_the_port_the_environment_sets() {
    let fixture = Fixture::new();
    let config = mlp_config(&fixture);
    let port = free_port();
    let child = burnserve()
        .arg("--config")
        .arg(&config)
        .env("BURNSERVE__SERVER__PORT", port.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        assert!(
            Instant::now() < deadline,
            "server did not answer on port {port}"
        );
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            stream
                .write_all(b"GET /v2/models/mlp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            break reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"versions\":[\"1\",\"2\"]"), "{body}");
}

#[test]
fn a_bad_setting_fails_start_up_naming_the_key() {
    let fixture = Fixture::new();
    let config = mlp_config(&fixture);
    let out = burnserve()
        .arg("--config")
        .arg(&config)
        .env("BURNSERVE__SERVER__PORT", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("server.port"), "{err}");
}
