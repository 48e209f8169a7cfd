//! `Runtime::start`: the actors (router, supervisor under its guardian) wired together, handed
//! out as the two handles callers use, [`InferenceService`] and [`ModelControl`].

use actix::Actor;

use crate::control::{ModelControl, RepositoryConfig};
use crate::guardian::SupervisorGuardian;
use crate::metrics::Metrics;
use crate::router::{ModelRouter, RouteTable};
use crate::service::InferenceService;
use crate::shed::LoadView;

/// The started runtime: the data-plane and control-plane handles.
#[derive(Clone)]
pub struct Runtime {
    pub service: InferenceService,
    pub control: ModelControl,
}

impl Runtime {
    /// Starts the router and the supervisor (under its guardian) on the current actix arbiter;
    /// serves nothing until `control` loads or reconciles versions from `repository` (a path:
    /// the default link policy and limits; or a [`RepositoryConfig`]).
    pub fn start(repository: impl Into<RepositoryConfig>, metrics: Metrics) -> Self {
        let repository: RepositoryConfig = repository.into();
        let view = LoadView::default();
        let table = RouteTable::default();
        let router = ModelRouter::new(view.clone(), table.clone()).start();
        let supervisor =
            SupervisorGuardian::start(repository.path.clone(), router.clone(), metrics.clone());
        Self {
            service: InferenceService::new(router.clone(), table, view, metrics),
            control: ModelControl::new(router, supervisor, repository),
        }
    }
}
