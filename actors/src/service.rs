//! `InferenceService`: the data-plane handle (HTTP handlers, benches, jobs). It routes a request,
//! awaits its result until the deadline (so a queued request times out on time even while the
//! executor is busy), records the request metrics exactly once, and answers metadata and
//! readiness reads. Callers never see an actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use burnserve_models::{ModelSpec, RequestInput};

use crate::error::InferError;
use crate::messages::{JobOutput, VersionKey};
use crate::metrics::{Metrics, ANONYMOUS};
use crate::router::{
    DescribeModel, ListVersions, ModelDescription, ModelRouter, Route, RouteOutcome, RouteTable,
};
use crate::shed::LoadView;

#[derive(Debug, Clone)]
pub struct InferRequest {
    pub model: String,
    pub version: Option<String>,
    pub input: RequestInput,
    pub timeout: Option<Duration>,
    pub tenant: String,
    /// When the request reached the server: its deadline counts from here (else from routing),
    /// so time spent before routing (the body, decoding, a busy worker) is not granted twice.
    pub received_at: Option<Instant>,
    /// The output item length the caller needs; checked before the job is queued, so a
    /// mismatch costs no compute.
    pub output_len: Option<usize>,
    /// Output names the caller asked for; one the model lacks is refused before queueing.
    pub output_names: Vec<String>,
}

impl InferRequest {
    pub fn new(model: impl Into<String>, version: Option<String>, input: RequestInput) -> Self {
        Self {
            model: model.into(),
            version,
            input,
            timeout: None,
            tenant: ANONYMOUS.to_string(),
            received_at: None,
            output_len: None,
            output_names: Vec::new(),
        }
    }
}

/// A served result: the version that answered, its output and timings.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub key: VersionKey,
    pub spec: Arc<ModelSpec>,
    pub output: JobOutput,
}

#[derive(Clone)]
pub struct InferenceService {
    router: Addr<ModelRouter>,
    /// The routes the router publishes: a request is queued from the caller's thread.
    table: RouteTable,
    view: LoadView,
    metrics: Metrics,
}

impl InferenceService {
    pub(crate) fn new(
        router: Addr<ModelRouter>,
        table: RouteTable,
        view: LoadView,
        metrics: Metrics,
    ) -> Self {
        Self {
            router,
            table,
            view,
            metrics,
        }
    }

    /// Refuses, before its body is read, a request for `model` (`version`) that no deadline
    /// could be met for (`shed::LoadView::refuse_early`): 429 `overloaded`, counted like any
    /// other answered request. `Ok` lets it through to the full admission.
    pub fn refuse_early(
        &self,
        model: &str,
        version: Option<&str>,
        tenant: &str,
    ) -> Result<(), InferError> {
        let Some(err) = self.view.refuse_early(model, version) else {
            return Ok(());
        };
        let key = match &err {
            InferError::Overloaded { model, version, .. } => VersionKey::new(model, version),
            InferError::CannotMeetDeadline(refusal) => {
                VersionKey::new(&refusal.model, &refusal.version)
            }
            _ => VersionKey::new(model, version.unwrap_or_default()),
        };
        self.metrics
            .record_request(Some(&key), tenant, Err(err.error_type()));
        Err(err)
    }

    /// Whether background work (an async job) may go to `key` now, leaving `reserve` of its
    /// queue and deadline to interactive requests (`shed::LoadView::background_room`).
    pub fn background_room(&self, key: &VersionKey, reserve: f64) -> crate::shed::BackgroundRoom {
        self.view.background_room(key, reserve)
    }

    /// A model (its default version, or `version`): spec, versions, routing, readiness.
    pub async fn describe(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<ModelDescription, InferError> {
        self.router
            .send(DescribeModel {
                model: model.to_string(),
                version: version.map(str::to_string),
            })
            .await?
    }

    /// The v2 statistics of every routed version, a model's versions, or one version.
    pub async fn stats(
        &self,
        model: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<(VersionKey, crate::stats::StatsSnapshot)>, InferError> {
        self.router
            .send(crate::router::CollectStats {
                model: model.map(str::to_string),
                version: version.map(str::to_string),
            })
            .await?
    }

    /// Every routed version and whether it serves now.
    pub async fn readiness(&self) -> Result<Vec<(VersionKey, bool)>, InferError> {
        Ok(self.router.send(ListVersions).await?)
    }

    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, InferError> {
        // The latency a client sees, as far as the server can: from the request's arrival (its
        // headers; body reading and decoding included) when the caller knows it.
        let start = request.received_at.unwrap_or_else(Instant::now);
        let tenant = request.tenant;
        // The router owns the table it publishes: once it is gone, nothing is served (as when a
        // message could not reach it).
        let RouteOutcome { key, result } = if self.router.connected() {
            self.table.route(Route {
                model: request.model,
                version: request.version,
                input: request.input,
                timeout: request.timeout,
                received_at: request.received_at,
                output_len: request.output_len,
                output_names: request.output_names,
            })
        } else {
            RouteOutcome {
                key: None,
                result: Err(InferError::ShuttingDown),
            }
        };
        let result = match result {
            Ok(ticket) => {
                let answer =
                    match tokio::time::timeout_at(ticket.deadline.into(), ticket.reply).await {
                        Err(_elapsed) => Err(InferError::Timeout(ticket.timeout)),
                        Ok(Err(_dropped)) => Err(InferError::Inference(
                            "the executor stopped before answering".into(),
                        )),
                        Ok(Ok(answer)) => answer,
                    };
                let took = start.elapsed();
                ticket
                    .state
                    .stats()
                    .record_request(answer.as_ref().map(|_| took).map_err(|_| took));
                answer.map(|output| (ticket.key, ticket.spec, output))
            }
            Err(err) => Err(err),
        };
        self.metrics.record_request(
            key.as_ref(),
            &tenant,
            result
                .as_ref()
                .map(|_| start.elapsed())
                .map_err(|e| e.error_type()),
        );
        let (key, spec, output) = result?;
        Ok(InferResponse { key, spec, output })
    }
}
