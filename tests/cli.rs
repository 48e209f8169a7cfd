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
    for flag in [
        "--config",
        "--port",
        "--host",
        "BURNSERVE__SECTION__KEY",
        "--model-repository",
        "--model-control-mode",
        "--load-model",
        "--repository-poll-secs",
        "--http-port",
        "--grpc-port",
    ] {
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

/// Starts the binary with `--config config`, its stdout and stderr in `server.log` of the
/// fixture, and `RUST_LOG` set to `filter` (or unset).
fn serve_logging_to_file(
    fixture: &Fixture,
    config: &std::path::Path,
    filter: Option<&str>,
) -> (Killed, std::path::PathBuf) {
    let log = fixture.path().join("server.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut command = burnserve();
    command
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if let Some(filter) = filter {
        command.env("RUST_LOG", filter);
    }
    (Killed(command.spawn().unwrap()), log)
}

/// At the default log level, a client's mistakes write nothing: 360 bad requests of 12 kinds
/// (wrong and invented methods, bad JSON, unknown models, oversized and stalled bodies, wrong
/// keys) add no log line, so a client cannot flood the logs.
#[test]
fn client_mistakes_do_not_flood_the_logs() {
    use common::process::{http, wait_until_ready};
    use common::TOKEN;
    let fixture = Fixture::new();
    let port = free_port();
    let config = fixture.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nport = {port}\nmax_body_bytes = 4096\nbody_timeout_ms = 300\ndisconnect_timeout_ms = 0\n\
             [repository]\npath = \"{}\"\n[admin]\ntoken = \"{TOKEN}\"\n\
             [[tenants]]\nname = \"alpha\"\napi_key = \"alpha-key-0123456789abcdef\"\n\
             [[models]]\nname = \"echo\"\nversions = [\"1\"]\n",
            fixture.path().display()
        ),
    )
    .unwrap();
    let (server, log) = serve_logging_to_file(&fixture, &config, None);
    wait_until_ready(port, "/v2/health/ready");
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count();
    let before = lines();
    let key = "Authorization: Bearer alpha-key-0123456789abcdef\r\n";
    let big = "x".repeat(5000);
    let mistakes: Vec<String> = vec![
        "BREW /health HTTP/1.1\r\n\r\n".into(),
        "PUT /health HTTP/1.1\r\n\r\n".into(),
        "GET /nope/%2F..%2F HTTP/1.1\r\n\r\n".into(),
        format!("POST /v1/models/echo/predict HTTP/1.1\r\n{key}Content-Length: 5\r\n\r\n{{bad!"),
        format!("POST /v1/models/nope/predict HTTP/1.1\r\n{key}Content-Length: 15\r\n\r\n{{\"inputs\": [1]}}"),
        format!("POST /v1/models/echo/predict HTTP/1.1\r\n{key}Content-Length: 15\r\n\r\n{{\"inputs\": [1]}}"),
        format!("POST /v1/models/echo/predict HTTP/1.1\r\n{key}Content-Length: 5000\r\n\r\n{big}"),
        format!("POST /v1/models/echo/predict HTTP/1.1\r\n{key}Content-Length: 50\r\n\r\n{{"),
        "POST /v1/models/echo/predict HTTP/1.1\r\nAuthorization: Bearer wrong-key-0123456789\r\n\r\n".into(),
        format!("GET /admin/models HTTP/1.1\r\n{key}\r\n"),
        "GET /admin/models HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n".into(),
        format!("POST /admin/models/..%2F..%2Fetc/versions/1 HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"),
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for i in 0..360 {
        let request = mistakes[i % mistakes.len()].replacen(
            "HTTP/1.1\r\n",
            "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
            1,
        );
        let reply = http(port, &request).unwrap();
        let status: u16 = reply[9..12].parse().unwrap();
        assert!((400..500).contains(&status), "{request:?}: {reply}");
        statuses.insert(status);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        vec![400, 401, 403, 404, 405, 408, 413, 422],
        "every kind of mistake was made"
    );
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines(),
        before,
        "client mistakes wrote log lines:\n{}",
        text.lines()
            .skip(before)
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(server);
}

/// Every log line of a request carries its `x-request-id` (and `traceparent`), and the outcome
/// is logged at the level it deserves: a client's mistake at DEBUG, a server fault at ERROR.
#[test]
fn log_lines_carry_the_request_id_at_the_level_of_the_outcome() {
    use common::process::{http, wait_until_ready};
    let fixture = Fixture::new();
    let port = free_port();
    let config = fixture.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nport = {port}\n[repository]\npath = \"{}\"\n[log]\njson = true\n\
             [[models]]\nname = \"panic\"\nversions = [\"1\"]\n",
            fixture.path().display()
        ),
    )
    .unwrap();
    let (server, log) = serve_logging_to_file(&fixture, &config, Some("burnserve=debug,warn"));
    wait_until_ready(port, "/ready");
    let post = |id: &str, extra: &str, body: &str| {
        let request = format!(
            "POST /v1/models/{body} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             x-request-id: {id}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            r#"{"inputs": [-1.0, 0.5]}"#.len(),
            r#"{"inputs": [-1.0, 0.5]}"#
        );
        http(port, &request).unwrap()
    };
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mistake = post("corr-77", "", "nope/predict");
    assert!(mistake.starts_with("HTTP/1.1 404"), "{mistake}");
    assert!(mistake
        .to_ascii_lowercase()
        .contains("x-request-id: corr-77"));
    let fault = post(
        "corr-88",
        &format!("traceparent: {trace}\r\n"),
        "panic/predict",
    );
    assert!(fault.starts_with("HTTP/1.1 500"), "{fault}");
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let of = |id: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|line| line["span"]["request_id"] == id)
            .collect()
    };
    let levels = |id: &str| -> Vec<String> {
        of(id)
            .iter()
            .map(|line| line["level"].as_str().unwrap_or("").to_string())
            .collect()
    };
    // The mistake: logged, at DEBUG only, with its status.
    let mistake_levels = levels("corr-77");
    assert!(
        !mistake_levels.is_empty() && mistake_levels.iter().all(|l| l == "DEBUG"),
        "{mistake_levels:?}\n{text}"
    );
    assert!(of("corr-77")
        .iter()
        .any(|line| line["fields"]["status"] == 404));
    assert!(levels("corr-88").contains(&"ERROR".to_string()), "{text}");
    assert!(of("corr-88")
        .iter()
        .all(|line| line["span"]["traceparent"] == trace));
}

/// A Triton command line: `--model-repository DIR --http-port N` without `--config` serves the
/// repository's models in mode `none` (the bundled `[[models]]`, which this repository lacks,
/// are not loaded), and the repository API may not load.
#[test]
fn triton_flags_serve_a_repository_in_mode_none() {
    let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/onnx-testdata/fashion-mlp/model.onnx");
    if !burnserve_models::testdata::require(
        "the ONNX test data",
        onnx.is_file(),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    let version = repo.path().join("mlp_onnx/1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::copy(&onnx, version.join("model.onnx")).unwrap();
    let port = free_port();
    let child = burnserve()
        .arg("--model-repository")
        .arg(repo.path())
        .arg("--http-port")
        .arg(port.to_string())
        .env("BURNSERVE__ADMIN__TOKEN", common::TOKEN)
        .env("BURNSERVE__LOG__LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Killed(child);
    common::process::wait_until_ready(port, "/v2/models/mlp_onnx/ready");
    let reply = common::process::http(
        port,
        "GET /v2/models/fashion HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    let load = format!(
        "POST /v2/repository/models/mlp_onnx/load HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        common::TOKEN
    );
    let reply = common::process::http(port, &load).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 403") && reply.contains("control mode is none"),
        "{reply}"
    );
}
