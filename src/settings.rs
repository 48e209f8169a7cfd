//! `Settings`: `config/default.toml` (built in) → `--config FILE` or `config/{BURNSERVE_MODE}.toml`
//! → `BURNSERVE__SECTION__KEY` environment variables → CLI flags, into one typed, validated value.

use std::path::{Path, PathBuf};

use burnserve_actors::ModelConfig;
use burnserve_models::spec::is_valid_name;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The built-in defaults; the same file users read in the repository.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub repository: RepositorySettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    /// The models to serve: `[[models]] name, versions, default_version, device`.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// The file these settings were read from (for `POST /admin/reload-config`).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token for `/admin` and `/v2/repository`; unset = those routes answer 403.
    #[serde(default)]
    pub token: Option<String>,
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
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepositorySettings {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Record inference metrics (switch off only to measure their cost).
    pub enabled: bool,
}

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

fn invalid(key: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Settings {
    /// Layers the sources. `file` replaces the `config/{mode}.toml` lookup when given.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
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

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "must not be empty"));
        }
        if self.admin.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("admin.token", "must be at least 16 characters"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let key = |field: &str| format!("models[{i}].{field}");
            if !is_valid_name(&model.name) {
                return Err(invalid(
                    key("name"),
                    format!(
                        "'{}' is not a model directory name ([A-Za-z0-9][A-Za-z0-9._-]{{0,127}})",
                        model.name
                    ),
                ));
            }
            if let Some(bad) = model.versions.iter().find(|v| !is_valid_name(v)) {
                return Err(invalid(
                    key("versions"),
                    format!("'{bad}' is not a version directory name"),
                ));
            }
            if !names.insert(&model.name) {
                return Err(invalid(
                    key("name"),
                    format!("model '{}' is listed twice", model.name),
                ));
            }
            if model.versions.is_empty() {
                return Err(invalid(key("versions"), "list at least one version"));
            }
            if let Some(default) = &model.default_version {
                if !model.versions.contains(default) {
                    return Err(invalid(
                        key("default_version"),
                        format!("'{default}' is not in versions"),
                    ));
                }
            }
            if !model.device.is_supported() {
                return Err(invalid(
                    key("device"),
                    format!(
                        "{} needs burnserve built with --features cuda",
                        model.device
                    ),
                ));
            }
            for version in &model.versions {
                let dir = self.repository.path.join(&model.name).join(version);
                if !dir.join("model.toml").is_file() {
                    return Err(invalid(
                        key("versions"),
                        format!("no {}/model.toml in the repository", dir.display()),
                    ));
                }
            }
        }
        Ok(())
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
        let err = Settings::from_toml("[[models]]\nname = \"nope\"\nversions = [\"1\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("models[0].versions") && err.contains("model.toml"),
            "{err}"
        );
    }
}
