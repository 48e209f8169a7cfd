//! The `burnserve` binary: parse the CLI, load settings, serve until stopped.

use std::path::PathBuf;

use anyhow::Context;
use std::time::Duration;

use burnserve::app::shutdown::{self, Ending};
use burnserve::app::{settings::Settings, telemetry};
use clap::Parser;

/// burnserve: serve burn models over HTTP (simple JSON and KServe v2), with Prometheus metrics.
///
/// Settings: config/default.toml, then --config FILE (or config/$BURNSERVE_MODE.toml), then
/// environment variables BURNSERVE__SECTION__KEY, then these flags.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML settings file layered over the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen port (overrides server.port).
    #[arg(long)]
    port: Option<u16>,
    /// Listen address (overrides server.host).
    #[arg(long)]
    host: Option<String>,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref()).context("invalid settings")?;
    if let Some(port) = cli.port {
        settings.server.port = port;
    }
    if let Some(host) = cli.host {
        settings.server.host = host;
    }
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
