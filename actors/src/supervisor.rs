//! `ModelSupervisor`: loads versions from the model repository. A load reads `model.toml`,
//! starts the version's `ModelActor` (whose executor builds the network and warms it up with a
//! real forward pass), and only once that succeeded adds the version to the router.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use burnserve_models::{Device, ModelError, ModelSpec};

use crate::executor::ExecutorConfig;
use crate::messages::VersionKey;
use crate::metrics::Metrics;
use crate::model_actor::ModelActor;
use crate::router::{ModelRouter, RegisterVersion, VersionEntry};

pub struct ModelSupervisor {
    repository: PathBuf,
    router: Addr<ModelRouter>,
    metrics: Metrics,
}

impl ModelSupervisor {
    pub fn new(repository: PathBuf, router: Addr<ModelRouter>, metrics: Metrics) -> Self {
        Self {
            repository,
            router,
            metrics,
        }
    }
}

impl Actor for ModelSupervisor {
    type Context = Context<Self>;
}

/// Load `model`/`version` from the repository onto `device` and route to it once warm.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<LoadReport, ModelError>")]
pub struct LoadVersion {
    pub model: String,
    pub version: String,
    pub device: Device,
    pub make_default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    pub took: Duration,
    pub weight_bytes: usize,
}

impl Handler<LoadVersion> for ModelSupervisor {
    type Result = ResponseFuture<Result<LoadReport, ModelError>>;

    fn handle(&mut self, msg: LoadVersion, _ctx: &mut Self::Context) -> Self::Result {
        let key = VersionKey::new(msg.model.clone(), msg.version.clone());
        let dir = self.repository.join(&msg.model).join(&msg.version);
        let router = self.router.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let spec = Arc::new(ModelSpec::from_dir(&dir)?);
            let version_metrics = metrics.version(&key, &msg.device.to_string());
            let config = ExecutorConfig {
                key: key.clone(),
                spec: spec.clone(),
                dir,
                device: msg.device,
            };
            let started = ModelActor::start(config, version_metrics.clone());
            let loaded = started.ready.await.map_err(|_| {
                ModelError::Load("the version's actor stopped while loading".into())
            })??;
            metrics.record_load(&key, loaded.took);
            let entry = VersionEntry {
                addr: started.addr,
                queue: started.queue,
                spec,
                state: started.state,
                metrics: version_metrics,
                device: msg.device,
            };
            router
                .send(RegisterVersion {
                    key,
                    entry,
                    make_default: msg.make_default,
                })
                .await
                .map_err(|_| ModelError::Load("the router stopped".into()))?;
            Ok(LoadReport {
                took: loaded.took,
                weight_bytes: loaded.weight_bytes,
            })
        })
    }
}
