//! The model repository at start-up, by Triton's model control mode: `explicit` loads the
//! `repository.load_models` names (`--load-model`) beside the settings' models; `none` and
//! `poll` load every model the repository serves (one that cannot be served is reported
//! UNAVAILABLE in the repository index, and the server serves the rest); `poll` then watches
//! the repository every `repository.poll_interval_ms`.

use std::time::Duration;

use burnserve_actors::{ControlError, ControlMode, ModelControl};

use super::server::StartError;
use super::settings::{LoadFailurePolicy, Settings};

/// Loads what the control mode asks for at start, and starts the poll in `poll` mode.
pub async fn start(settings: &Settings, control: &ModelControl) -> Result<(), StartError> {
    let repository = &settings.repository;
    match repository.control_mode {
        ControlMode::Explicit => {
            let mut names = repository.load_models.clone();
            if names.iter().any(|n| n == "*") {
                names = control
                    .repository_models()
                    .await
                    .map_err(|e| load_error("*", e))?
                    .into_iter()
                    .map(|m| m.name)
                    .collect();
            }
            for name in names {
                match control.load_repository_model(&name).await {
                    Ok(loaded) => {
                        tracing::info!(model = %name, versions = loaded.len(), "loaded (--load-model)")
                    }
                    Err(err)
                        if settings.server.start_on_load_failure == LoadFailurePolicy::Exit =>
                    {
                        return Err(load_error(&name, err))
                    }
                    Err(err) => tracing::error!(model = %name, error = %err,
                        "could not load; serving the others (server.start_on_load_failure = \"serve\")"),
                }
            }
        }
        ControlMode::None | ControlMode::Poll => {
            let report = control
                .sync_repository()
                .await
                .map_err(|e| load_error("*", e))?;
            for key in &report.loaded {
                tracing::info!(version = %key, "loaded from the repository");
            }
            for (key, err) in &report.failed {
                tracing::error!(version = %key, error = %err,
                    "could not load from the repository; it is UNAVAILABLE, the others serve");
            }
            for model in control
                .repository_models()
                .await
                .map_err(|e| load_error("*", e))?
            {
                if let Err(reason) = &model.serves {
                    tracing::error!(model = %model.name, %reason, "UNAVAILABLE in the repository");
                }
            }
        }
    }
    if repository.control_mode == ControlMode::Poll {
        let interval = Duration::from_millis(repository.poll_interval_ms);
        actix_web::rt::spawn(control.clone().poll_repository(interval));
    }
    Ok(())
}

fn load_error(model: &str, err: ControlError) -> StartError {
    StartError::Load {
        model: model.to_string(),
        version: "*".into(),
        message: err.to_string(),
    }
}
