//! `Runtime::start`: the actors (router, supervisor) wired together, handed out as the two
//! handles callers use, [`InferenceService`] and [`ModelControl`].

use std::path::PathBuf;

use actix::Actor;

use crate::control::ModelControl;
use crate::metrics::Metrics;
use crate::router::ModelRouter;
use crate::service::InferenceService;
use crate::supervisor::ModelSupervisor;

/// The started runtime: the data-plane and control-plane handles.
#[derive(Clone)]
pub struct Runtime {
    pub service: InferenceService,
    pub control: ModelControl,
}

impl Runtime {
    /// Starts the router and the supervisor on the current actix arbiter; serves nothing until
    /// `control` loads or reconciles versions from `repository`.
    pub fn start(repository: PathBuf, metrics: Metrics) -> Self {
        let router = ModelRouter::default().start();
        let supervisor =
            ModelSupervisor::new(repository.clone(), router.clone(), metrics.clone()).start();
        Self {
            service: InferenceService::new(router.clone(), metrics),
            control: ModelControl::new(router, supervisor, repository),
        }
    }
}
