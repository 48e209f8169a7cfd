//! Shared test support: a model repository of fixtures in a temp dir, a server started on
//! 127.0.0.1:0, a JSON client, and a Prometheus text reader.
#![allow(dead_code)]

pub mod hostile;
pub mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use burnserve::{RunningServer, Settings};
use burnserve_models::{arch::mlp, ModelSpec};
use serde_json::Value;

pub const MLP_INPUT: usize = 12;
pub const TOKEN: &str = "test-admin-token-0123456789";
pub const MLP_CLASSES: usize = 4;
pub const LABELS: [&str; MLP_CLASSES] = ["north", "east", "south", "west"];

fn write(dir: &Path, model: &str, version: &str, toml: &str) -> PathBuf {
    let path = dir.join(model).join(version);
    std::fs::create_dir_all(&path).expect("create version dir");
    std::fs::write(path.join("model.toml"), toml).expect("write model.toml");
    path
}

fn mlp_toml() -> String {
    format!(
        r#"
architecture = "mlp"
weights = "model.safetensors"
params = {{ hidden = [16] }}
[input]
name = "features"
shape = [{MLP_INPUT}]
finite = true
[output]
name = "probabilities"
shape = [{MLP_CLASSES}]
labels = {LABELS:?}
[batching]
max_batch_size = 16
max_batch_delay_ms = 1
"#
    )
}

fn fake_toml(architecture: &str, item: usize, extra: &str) -> String {
    format!(
        r#"
architecture = "{architecture}"
{extra}
[input]
name = "x"
shape = [{item}]
[output]
name = "y"
shape = [{item}]
"#
    )
}

/// A repository with two seeded MLP versions and the fakes, in a fresh temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for (version, seed) in [("1", 7), ("2", 11)] {
            let path = write(root, "mlp", version, &mlp_toml());
            let spec = ModelSpec::from_dir(&path).expect("fixture spec");
            mlp::write_initialised(&spec, &path.join("model.safetensors"), seed)
                .expect("fixture weights");
        }
        write(
            root,
            "echo",
            "1",
            &fake_toml(
                "fake-echo",
                4,
                "[batching]\nmax_batch_size = 64\nmax_batch_delay_ms = 20",
            ),
        );
        write(
            root,
            "slow",
            "1",
            &fake_toml("fake-slow", 2, "params = { delay_ms = 300 }\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0"),
        );
        write(
            root,
            "tiny",
            "1",
            &fake_toml(
                "fake-slow",
                2,
                "params = { delay_ms = 400 }\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\nqueue_capacity = 2",
            ),
        );
        write(
            root,
            "panic",
            "1",
            &fake_toml("fake-panic", 2, "[batching]\nmax_batch_delay_ms = 0"),
        );
        write(
            root,
            "fail",
            "1",
            &fake_toml("fake-fail", 2, "[batching]\nmax_batch_delay_ms = 0"),
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn version_dir(&self, model: &str, version: &str) -> PathBuf {
        self.path().join(model).join(version)
    }

    /// Settings serving every fixture model on 127.0.0.1:0.
    pub fn settings(&self) -> Settings {
        Settings::from_toml(&self.settings_toml("")).expect("fixture settings")
    }

    /// Like [`Fixture::settings`], with the admin API on (token [`TOKEN`]).
    pub fn admin_settings(&self) -> Settings {
        Settings::from_toml(&self.settings_toml(&format!("[admin]\ntoken = \"{TOKEN}\"\n")))
            .expect("fixture settings")
    }

    /// The fixture settings as TOML, with `extra` sections before the model list.
    pub fn settings_toml(&self, extra: &str) -> String {
        format!(
            r#"
[server]
port = 0
workers = 2
[repository]
path = "{}"
[log]
level = "warn"
{extra}
[[models]]
name = "mlp"
versions = ["1", "2"]
default_version = "2"
[[models]]
name = "echo"
versions = ["1"]
[[models]]
name = "slow"
versions = ["1"]
[[models]]
name = "tiny"
versions = ["1"]
[[models]]
name = "panic"
versions = ["1"]
[[models]]
name = "fail"
versions = ["1"]
"#,
            self.path().display()
        )
    }

    /// Adds `<name>/1`, a fake model (`architecture`, items of `item` floats) whose model.toml
    /// ends with `extra`; serve it by listing it in the settings.
    pub fn add_fake(&self, name: &str, architecture: &str, item: usize, extra: &str) {
        write(
            self.path(),
            name,
            "1",
            &fake_toml(architecture, item, extra),
        );
    }

    /// Adds version `to` of `model` as a copy of version `from` (same weights).
    pub fn copy_version(&self, model: &str, from: &str, to: &str) {
        let (src, dst) = (self.version_dir(model, from), self.version_dir(model, to));
        std::fs::create_dir_all(&dst).expect("version dir");
        for entry in std::fs::read_dir(&src).expect("source version") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy");
        }
    }
}

/// A server on an ephemeral loopback port, running on the current actix system.
pub struct TestServer {
    pub base: String,
    /// The `metrics.port` listener's base URL, when set.
    pub metrics_base: Option<String>,
    pub client: awc::Client,
    pub running_handle: actix_web::dev::ServerHandle,
    /// The job store's directory when the settings left `jobs.path` at its default.
    pub jobs_dir: Option<tempfile::TempDir>,
    /// The gRPC listener (stops when dropped).
    pub grpc: Option<burnserve::grpc::GrpcServer>,
}

/// Gives settings that leave `jobs.path` at its default (`data/jobs`, shared by every server
/// started from the package root) a job store of their own; the directory lives as long as the
/// returned guard.
pub fn own_job_store(settings: &mut Settings) -> Option<tempfile::TempDir> {
    if settings.jobs.path != Path::new("data/jobs") {
        return None;
    }
    let dir = tempfile::tempdir().expect("job store dir");
    settings.jobs.path = dir.path().join("jobs");
    Some(dir)
}

impl TestServer {
    pub async fn start(mut settings: Settings) -> Self {
        let jobs_dir = own_job_store(&mut settings);
        // Servers of one test binary run side by side: gRPC on any free port, not 8001.
        if settings.grpc.port == 8001 {
            settings.grpc.port = 0;
        }
        let RunningServer {
            addr,
            metrics_addr,
            handle,
            server,
            grpc,
            ..
        } = burnserve::start(settings).await.expect("server starts");
        actix_web::rt::spawn(server);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        Self {
            base: format!("http://{addr}"),
            metrics_base: metrics_addr.map(|addr| format!("http://{addr}")),
            client,
            running_handle: handle,
            jobs_dir,
            grpc,
        }
    }

    /// The gRPC listener's address, as `http://127.0.0.1:PORT` for a tonic client.
    pub fn grpc_url(&self) -> String {
        let grpc = self.grpc.as_ref().expect("grpc enabled");
        format!("http://{}", grpc.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs JSON; returns status, body as JSON, and the response headers.
    pub fn post<'a>(
        &'a self,
        path: &'a str,
        body: &Value,
    ) -> impl std::future::Future<Output = (u16, Value, awc::http::header::HeaderMap)> + 'a {
        self.post_raw(path, body.to_string())
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: String,
    ) -> (u16, Value, awc::http::header::HeaderMap) {
        let mut response = self
            .client
            .post(self.url(path))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .expect("request sent");
        let bytes = response.body().limit(64 << 20).await.expect("body read");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (response.status().as_u16(), json, response.headers().clone())
    }

    /// The `total` entry of a response's `Server-Timing` (the server's own time for it).
    pub fn server_total(headers: &awc::http::header::HeaderMap) -> Option<std::time::Duration> {
        headers
            .get_all("server-timing")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .find_map(|entry| entry.trim().strip_prefix("total;dur="))
            .and_then(|ms| ms.parse::<f64>().ok())
            .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
    }

    /// Sends an admin request with the bearer token; `body` is raw (JSON or TOML).
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.admin_as(method, path, body, Some(TOKEN)).await
    }

    pub async fn admin_as(
        &self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> (u16, Value) {
        let (status, body, _) = self.send(method, path, body, token).await;
        (status, body)
    }

    /// Any method, path (already encoded), raw body and optional bearer token; answers the
    /// status, the body as JSON (`Null` when it is not) and the headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> (u16, Value, awc::http::header::HeaderMap) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        let mut response = request
            .send_body(body.to_string())
            .await
            .expect("request sent");
        let bytes = response.body().limit(16 << 20).await.expect("body read");
        (
            response.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            response.headers().clone(),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        let bytes = response.body().await.expect("body read");
        (
            response.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn metrics(&self) -> String {
        let mut response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        let bytes = response.body().limit(16 << 20).await.expect("metrics body");
        String::from_utf8(bytes.to_vec()).expect("utf-8 metrics")
    }

    pub async fn stop(self) {
        self.running_handle.stop(false).await;
    }
}

/// A random seed from the environment variable `var` (to replay a run), else from the clock;
/// printed so a failure can be replayed.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    println!("seed {seed} ({var} replays it)");
    seed
}

/// The number of samples (series lines) of a Prometheus text exposition.
pub fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

/// The `q` quantile (0..=1) of some durations, nearest rank.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A JSON array of numbers as `f32`s.
pub fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

/// The value of the one sample of `name` whose labels include all of `labels`; 0 when absent.
/// Panics when several samples match (the test asked an ambiguous question).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// The one sample of `name` whose labels include `labels`; `None` when there is none.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let pairs: Vec<(String, String)> = series_labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                p.split_once("=\"")
                    .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            })
            .collect();
        if labels
            .iter()
            .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v))
        {
            found.push(value.parse::<f64>().expect("numeric sample"));
        }
    }
    assert!(
        found.len() <= 1,
        "{name}{labels:?} matches {} samples",
        found.len()
    );
    found.first().copied()
}

/// The input every MLP test uses: item `i` is a deterministic ramp.
pub fn mlp_items(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            (0..MLP_INPUT)
                .map(|j| ((i * 7 + j * 3) % 11) as f32 / 10.0 - 0.4)
                .collect()
        })
        .collect()
}
