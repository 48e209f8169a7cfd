//! The `burnserve` binary: parse the CLI, load settings, serve until stopped.

use std::path::PathBuf;

use anyhow::Context;
use std::time::Duration;

use burnserve::app::shutdown::{self, Ending};
use burnserve::app::{settings::Settings, telemetry};
use burnserve_actors::ControlMode;
use clap::Parser;

/// burnserve: serve burn models over HTTP (simple JSON and KServe v2), with Prometheus metrics.
///
/// Settings: config/default.toml, then --config FILE (or config/$BURNSERVE_MODE.toml), then
/// environment variables BURNSERVE__SECTION__KEY, then these flags. The repository flags are
/// spelled as Triton's, so a Triton command line serves the same repository.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML settings file layered over the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen port (overrides server.port).
    #[arg(long, visible_alias = "http-port")]
    port: Option<u16>,
    /// Listen address (overrides server.host).
    #[arg(long)]
    host: Option<String>,
    /// The KServe v2 gRPC port (overrides grpc.port).
    #[arg(long)]
    grpc_port: Option<u16>,
    /// A port serving only /metrics (overrides metrics.port).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// The model repository (overrides repository.path). Without --config, the bundled
    /// [[models]] of the default settings are not loaded, and the control mode is `none`
    /// unless --model-control-mode says otherwise: every model of DIR is served, as Triton does.
    #[arg(long, visible_alias = "model-store", value_name = "DIR")]
    model_repository: Option<PathBuf>,
    /// none | explicit | poll (overrides repository.control_mode).
    #[arg(long, value_name = "MODE")]
    model_control_mode: Option<ControlModeArg>,
    /// A repository model to load at start in explicit mode (repeatable; `*`: every one).
    #[arg(long, value_name = "NAME")]
    load_model: Vec<String>,
    /// Seconds between two looks at the repository in poll mode (overrides
    /// repository.poll_interval_ms).
    #[arg(long, value_name = "SECONDS")]
    repository_poll_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ControlModeArg {
    None,
    Explicit,
    Poll,
}

impl From<ControlModeArg> for ControlMode {
    fn from(mode: ControlModeArg) -> Self {
        match mode {
            ControlModeArg::None => ControlMode::None,
            ControlModeArg::Explicit => ControlMode::Explicit,
            ControlModeArg::Poll => ControlMode::Poll,
        }
    }
}

impl Cli {
    /// The keys the --config file sets that the repository flags consider (`models`,
    /// `repository.control_mode`); none when there is no file or it does not parse (the
    /// settings loader then says why).
    fn config_file_keys(&self) -> std::collections::HashSet<&'static str> {
        let table = self
            .config
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| text.parse::<toml::Table>().ok())
            .unwrap_or_default();
        let mut keys = std::collections::HashSet::new();
        if table.contains_key("models") {
            keys.insert("models");
        }
        if table
            .get("repository")
            .and_then(|r| r.get("control_mode"))
            .is_some()
        {
            keys.insert("repository.control_mode");
        }
        keys
    }

    /// The flags over the settings read.
    fn apply(&self, settings: &mut Settings) {
        if let Some(port) = self.port {
            settings.server.port = port;
        }
        if let Some(host) = &self.host {
            settings.server.host = host.clone();
        }
        if let Some(port) = self.grpc_port {
            settings.grpc.port = port;
        }
        if let Some(port) = self.metrics_port {
            settings.metrics.port = Some(port);
        }
        if let Some(path) = &self.model_repository {
            settings.repository.path = path.clone();
            // The built-in [[models]] name the bundled repository; Triton's default mode is
            // `none`. A --config file that sets either keeps its own.
            let file = self.config_file_keys();
            if !file.contains("models") {
                settings.models.clear();
            }
            if !file.contains("repository.control_mode") {
                settings.repository.control_mode = ControlMode::None;
            }
        }
        if let Some(mode) = self.model_control_mode {
            settings.repository.control_mode = mode.into();
        }
        if !self.load_model.is_empty() {
            settings.repository.load_models = self.load_model.clone();
        }
        if let Some(secs) = self.repository_poll_secs {
            settings.repository.poll_interval_ms = secs.saturating_mul(1000);
        }
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load_adjusted(cli.config.as_deref(), |settings| cli.apply(settings))
        .context("invalid settings")?;
    telemetry::init(&settings.log);
    let grace = Duration::from_millis(settings.server.drain_grace_ms);
    let timeout = Duration::from_millis(settings.server.shutdown_timeout_ms);
    let running = burnserve::start(settings)
        .await
        .context("burnserve could not start")?;
    match shutdown::serve_until_signalled(running, grace, timeout)
        .await
        .context("server error")?
    {
        Ending::Clean => Ok(()),
        Ending::GaveUp { left } => {
            anyhow::bail!("shutdown timed out with {left} request(s) still in flight")
        }
    }
}
