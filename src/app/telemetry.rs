//! Logging: `tracing` to stdout, text or JSON, filtered by `RUST_LOG` or the `log.level` setting.

use tracing_subscriber::EnvFilter;

use crate::app::settings::LogSettings;

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if settings.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
