//! Actor-level test support: a repository of fake models in a temp dir, the runtime started on
//! it through its handles, requests, and a Prometheus text reader.
#![allow(dead_code)]

use std::path::Path;

use burnserve_actors::{InferError, InferRequest, InferResponse, LoadOptions, Metrics, Runtime};
use burnserve_models::RequestInput;
use prometheus::{Encoder, Registry, TextEncoder};

/// A fake version: `architecture`, items of `item` floats, extra `model.toml` lines.
pub fn write_fake(root: &Path, model: &str, version: &str, architecture: &str, extra: &str) {
    let dir = root.join(model).join(version);
    std::fs::create_dir_all(&dir).expect("version dir");
    let toml = format!(
        "architecture = \"{architecture}\"\n{extra}\n[input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [2]\n"
    );
    std::fs::write(dir.join("model.toml"), toml).expect("model.toml");
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub registry: Registry,
    pub runtime: Runtime,
}

impl Harness {
    /// A runtime over an empty repository; add versions with [`write_fake`] on `root()`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let registry = Registry::new();
        let metrics = Metrics::register(&registry, true).expect("metrics");
        let runtime = Runtime::start(dir.path().to_path_buf(), metrics);
        Self {
            dir,
            registry,
            runtime,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes and loads `model`/1, a `fake-slow` that takes `delay_ms` per batch of one item.
    pub async fn load_slow(&self, model: &str, delay_ms: u64) {
        write_fake(
            self.root(),
            model,
            "1",
            "fake-slow",
            &format!("params = {{ delay_ms = {delay_ms} }}\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0"),
        );
        self.load(model, "1").await;
    }

    pub async fn load(&self, model: &str, version: &str) {
        self.runtime
            .control
            .load(model, version, LoadOptions::default())
            .await
            .unwrap_or_else(|e| panic!("load {model}/{version}: {e}"));
    }

    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        item: [f32; 2],
    ) -> Result<InferResponse, InferError> {
        self.runtime
            .service
            .infer(request(model, version, item))
            .await
    }

    /// The exposition's samples (lines that are not comments).
    pub fn samples(&self) -> Vec<String> {
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("encode");
        String::from_utf8(text)
            .expect("utf-8")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    /// The value of one sample of the exposition.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("encode");
        let text = String::from_utf8(text).expect("utf-8");
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter(|line| {
                let rest = &line[name.len()..];
                rest.starts_with('{') || rest.starts_with(' ')
            })
            .find(|line| {
                labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

pub fn request(model: &str, version: Option<&str>, item: [f32; 2]) -> InferRequest {
    InferRequest::new(
        model,
        version.map(str::to_string),
        RequestInput::new(vec![2], item.to_vec()),
    )
}
