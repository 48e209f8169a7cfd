//! `Settings`: `config/default.toml` (built in) → `--config FILE` or `config/{BURNSERVE_MODE}.toml`
//! → `BURNSERVE__SECTION__KEY` environment variables → CLI flags, into one typed, validated value.

use std::fmt;
use std::path::{Path, PathBuf};

use burnserve_actors::ModelConfig;
use burnserve_models::spec::is_valid_name;
use config::{Config, Environment, File, FileFormat};

mod repository;
mod validate;
pub use repository::{RepositorySettings, POLL_INTERVAL_MS};
use serde::Deserialize;

/// The built-in defaults; the same file users read in the repository.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub repository: RepositorySettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub jobs: JobsSettings,
    pub grpc: GrpcSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    /// The models to serve: `[[models]] name, versions, default_version, device`.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// API keys and quotas: `[[tenants]] name, api_key | api_key_env | api_key_file,
    /// requests_per_second, burst, max_inflight`. None: inference is open to anyone.
    #[serde(default)]
    pub tenants: Vec<TenantSettings>,
    /// The file these settings were read from (for `POST /admin/reload-config`).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token for `/admin` and `/v2/repository`; unset = those routes answer 403.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Wrong admin tokens one source address may send within a minute before it is refused
    /// unchecked (429 `rate_limited`) for a penalty that doubles from 1 s to 60 s.
    #[serde(default = "default_wrong_tokens_before_penalty")]
    pub wrong_tokens_before_penalty: u32,
}

fn default_wrong_tokens_before_penalty() -> u32 {
    crate::edge::guesses::FREE_FAILURES
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            token: None,
            wrong_tokens_before_penalty: default_wrong_tokens_before_penalty(),
        }
    }
}

/// A key or token: printed as `***` by `Debug` and `Display`, so no log or error shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Shortest accepted admin token or tenant key.
pub const MIN_SECRET_LEN: usize = 16;

/// One `[[tenants]]` entry: a name (its `tenant` metric label), one key source, and its quota.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    pub name: String,
    /// The key itself (prefer `api_key_env` or `api_key_file`: files in git leak).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The environment variable that holds the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A file that holds the key (surrounding whitespace ignored), e.g. a mounted secret.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Sustained request rate; unset: no rate limit.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests accepted at once above the rate (the bucket's size); default: one second's
    /// worth of `requests_per_second`.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Requests of this tenant being served at once; unset: no cap.
    #[serde(default)]
    pub max_inflight: Option<usize>,
}

impl TenantSettings {
    /// The key from whichever one source is set.
    pub fn key(&self) -> Result<Secret, String> {
        let key = match (&self.api_key, &self.api_key_env, &self.api_key_file) {
            (Some(key), None, None) => key.clone(),
            (None, Some(var), None) => Secret(
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
            ),
            (None, None, Some(path)) => Secret(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            _ => return Err("set exactly one of api_key, api_key_env, api_key_file".into()),
        };
        if key.0.len() < MIN_SECRET_LEN || key.0.chars().any(|c| c.is_whitespace()) {
            return Err(format!(
                "the key must be at least {MIN_SECRET_LEN} characters without whitespace"
            ));
        }
        Ok(key)
    }

    /// The rate quota, `(requests_per_second, burst)`, if any.
    pub fn rate(&self) -> Option<(f64, u32)> {
        self.requests_per_second.map(|rps| {
            (
                rps,
                self.burst.unwrap_or_else(|| rps.ceil().max(1.0) as u32),
            )
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Request body bytes held at once by the whole server, HTTP and gRPC together (decoded,
    /// for compressed bodies); a body that would pass it is refused 429 `overloaded`.
    pub max_inflight_body_bytes: usize,
    /// Largest body of the embeddings route (text only: each text is cut to what its model
    /// tokenizes anyway, so a large body is only parsing work); never above `max_body_bytes`.
    pub max_text_body_bytes: usize,
    /// A request's headers must arrive within this (else 408 and the connection closes).
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this, counted from its headers (else 408).
    pub body_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this; 0 closes after each response.
    pub keep_alive_ms: u64,
    /// Time a client gets to close its side after the server closed a connection.
    pub disconnect_timeout_ms: u64,
    /// Open connections per worker; more wait in the kernel's listen backlog.
    pub max_connections_per_worker: usize,
    /// Length of the kernel's listen backlog; connections beyond it are refused.
    pub backlog: u32,
    /// After SIGTERM/SIGINT, readiness answers 503 this long while serving goes on.
    pub drain_grace_ms: u64,
    /// The bound on the whole shutdown (grace included); then the process gives up (exit 1).
    pub shutdown_timeout_ms: u64,
    /// A configured version that fails to load at start: `exit` (refuse to start) or `serve`
    /// (report it failed and not ready, serve the others).
    pub start_on_load_failure: LoadFailurePolicy,
    /// `/ready` answers 200 only while every configured version serves (Triton's
    /// `--strict-readiness`); `false`: while at least one does.
    pub strict_readiness: bool,
}

/// `server.start_on_load_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadFailurePolicy {
    Exit,
    Serve,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Record inference metrics (switch off only to measure their cost).
    pub enabled: bool,
    /// Buckets (seconds) of `inference_latency_seconds` and `inference_queue_duration_seconds`:
    /// 1 to 64 finite values above 0, increasing.
    pub latency_buckets: Vec<f64>,
    /// A second listener serving only `/metrics` (as Triton's 8002), so a scraper can use a
    /// port that is not exposed to clients. Absent: `/metrics` on the main port only.
    #[serde(default)]
    pub port: Option<u16>,
}

/// Most latency buckets `metrics.latency_buckets` may list (each is a series per version and
/// tenant).
pub const MAX_LATENCY_BUCKETS: usize = 64;

/// Most HTTP workers `server.workers` may ask for.
pub const MAX_WORKERS: usize = 1024;

/// `[grpc]`: the KServe v2 gRPC listener (on `server.host`) and what one client may hold of it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpcSettings {
    pub enabled: bool,
    /// 0: any free port (tests).
    pub port: u16,
    /// Open connections; more are closed at once. Fitted under the open-file limit at start.
    pub max_connections: usize,
    /// Streams one connection may open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Calls open on the listener at once, all connections together; more are refused
    /// (RESOURCE_EXHAUSTED `overloaded`) before their message is read.
    pub max_concurrent_calls: usize,
    /// Request message bytes one connection may hold in flight (at least `server.max_body_bytes`).
    pub max_connection_body_bytes: usize,
    /// Bytes of a call's headers (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_list_bytes: u32,
    /// A connection that has not sent the HTTP/2 preface within this is closed.
    pub handshake_timeout_ms: u64,
    /// A connection with no call open this long gets a GOAWAY (0: never).
    pub idle_timeout_ms: u64,
    /// A PING after this long without a frame from the client ...
    pub keepalive_interval_ms: u64,
    /// ... unanswered this long closes the connection.
    pub keepalive_timeout_ms: u64,
}

/// `[jobs]`: the durable async jobs (`burnserve_actors::JobSettings`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// `false`: the jobs routes answer 403 and no store is opened.
    pub enabled: bool,
    /// The store's directory (`jobs.redb` inside).
    pub path: PathBuf,
    pub max_running_per_version: usize,
    /// Share (0 to 0.95) of each version's queue and deadline kept for interactive requests.
    pub interactive_reserve: f64,
    /// Seconds a finished job is kept.
    pub retention_s: u64,
    /// Seconds a job may stay PENDING before it ends EXPIRED.
    pub max_pending_age_s: u64,
    pub max_pending: usize,
    /// PENDING jobs one tenant may hold. Unset: a fair split, `max_pending` divided by the
    /// number of configured tenants (all of it when none is configured).
    #[serde(default)]
    pub max_pending_per_tenant: Option<usize>,
    /// Bytes the store's file may hold, as redb allocates them.
    pub max_store_bytes: u64,
    pub max_attempts: u32,
}

impl JobsSettings {
    /// `max_pending_per_tenant` as set, or the fair split among `tenants` configured tenants.
    pub fn pending_per_tenant(&self, tenants: usize) -> usize {
        self.max_pending_per_tenant
            .unwrap_or(self.max_pending / tenants.max(1))
            .max(1)
    }

    /// The runtime's settings, with `tenants` configured tenants (for the per-tenant share).
    pub fn runtime(&self, tenants: usize) -> burnserve_actors::JobSettings {
        burnserve_actors::JobSettings {
            path: self.path.clone(),
            max_running_per_version: self.max_running_per_version,
            interactive_reserve: self.interactive_reserve,
            retention: std::time::Duration::from_secs(self.retention_s),
            max_pending_age: std::time::Duration::from_secs(self.max_pending_age_s),
            max_pending: self.max_pending,
            max_pending_per_tenant: self.pending_per_tenant(tenants),
            max_store_bytes: self.max_store_bytes,
            max_attempts: self.max_attempts,
        }
    }
}

/// Ten years, the longest `jobs.retention_s` and `jobs.max_pending_age_s`.
pub const MAX_JOB_AGE_S: u64 = 10 * 365 * 24 * 3600;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Default filter when `RUST_LOG` is unset.
    pub level: String,
    /// One JSON object per line instead of text.
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key {key}: {message}")]
    Invalid { key: String, message: String },
}

impl Settings {
    /// Layers the sources. `file` replaces the `config/{mode}.toml` lookup when given.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_adjusted(file, |_| {})
    }

    /// [`Self::load`], with `adjust` (the command line's flags) applied before validation.
    pub fn load_adjusted(
        file: Option<&Path>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Result<Self, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        builder = match file {
            Some(path) => builder.add_source(File::from(path).required(true)),
            None => {
                let mode = std::env::var("BURNSERVE_MODE").unwrap_or_else(|_| "development".into());
                builder.add_source(File::with_name(&format!("config/{mode}")).required(false))
            }
        };
        let mut settings: Settings = builder
            .add_source(
                Environment::with_prefix("BURNSERVE")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        adjust(&mut settings);
        settings.validate()?;
        settings.source = file.map(Path::to_path_buf);
        Ok(settings)
    }

    /// Reads settings from TOML text layered over the defaults (tests, examples).
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from_str(text, FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_name_bad_keys() {
        let settings = Settings::from_toml("models = []").expect("defaults are valid");
        assert_eq!(settings.server.port, 8000);
        assert_eq!(settings.server.host, "127.0.0.1");
        assert!(settings.metrics.enabled);

        let err = Settings::from_toml("models = []\n[server]\nport = \"abc\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.port"), "{err}");
        let err = Settings::from_toml("models = []\n[server]\nprot = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");
        let err = Settings::from_toml("[[models]]\nname = \"x\"\nversions = []")
            .unwrap_err()
            .to_string();
        assert!(err.contains("models[0].versions"), "{err}");
        let err =
            Settings::from_toml("[[models]]\nname = \"x\"\nversions = [\"1\"]\ndevice = \"tpu\"")
                .unwrap_err()
                .to_string();
        // config 0.15 prints the key of a value its deserializer refused as `models[0]device`.
        assert!(
            err.contains("models[0]") && err.contains("device 'tpu'"),
            "{err}"
        );
        for (key, value) in [
            ("disconnect_timeout_ms", "200"),
            ("body_timeout_ms", "0"),
            ("header_timeout_ms", "360000000"),
            ("header_timeout_ms", "999"),
            ("backlog", "0"),
            ("max_connections_per_worker", "0"),
            ("max_text_body_bytes", "100"),
            ("workers", "100000"),
        ] {
            let err = Settings::from_toml(&format!("models = []\n[server]\n{key} = {value}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("server.{key}")), "{err}");
        }
        for (value, why) in [
            ("[]", "list 1 to 64"),
            ("[0.1, 0.1]", "increasing"),
            ("[0.5, 0.1]", "increasing"),
            ("[0.0, 1.0]", "above 0"),
            ("[-1.0]", "above 0"),
            ("[nan]", "finite"),
            ("[inf]", "finite"),
        ] {
            let err = Settings::from_toml(&format!(
                "models = []\n[metrics]\nlatency_buckets = {value}"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("metrics.latency_buckets") && err.contains(why),
                "{value}: {err}"
            );
        }
        let many: Vec<String> = (1..=65).map(|i| format!("{i}.0")).collect();
        let err = Settings::from_toml(&format!(
            "models = []\n[metrics]\nlatency_buckets = [{}]",
            many.join(", ")
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("metrics.latency_buckets"), "{err}");
        let err = Settings::from_toml("models = []\n[server]\nport = 9000\n[metrics]\nport = 9000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.port"), "{err}");
        let err = Settings::from_toml("[[models]]\nname = \"nope\"\nversions = [\"1\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("models[0].versions") && err.contains("model.toml"),
            "{err}"
        );
    }
}
