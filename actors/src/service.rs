//! `InferenceService`: the one entry point for callers (HTTP handlers, benches, jobs). It routes
//! a request, awaits its result until the deadline (so a queued request times out on time even
//! while the executor is busy), and records the request metrics exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use burnserve_models::{ModelSpec, RequestInput};

use crate::error::InferError;
use crate::messages::{JobOutput, VersionKey};
use crate::metrics::{Metrics, ANONYMOUS};
use crate::router::{ModelRouter, Route};

#[derive(Debug, Clone)]
pub struct InferRequest {
    pub model: String,
    pub version: Option<String>,
    pub input: RequestInput,
    pub timeout: Option<Duration>,
    pub tenant: String,
}

impl InferRequest {
    pub fn new(model: impl Into<String>, version: Option<String>, input: RequestInput) -> Self {
        Self {
            model: model.into(),
            version,
            input,
            timeout: None,
            tenant: ANONYMOUS.to_string(),
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
    metrics: Metrics,
}

impl InferenceService {
    pub fn new(router: Addr<ModelRouter>, metrics: Metrics) -> Self {
        Self { router, metrics }
    }

    pub fn router(&self) -> &Addr<ModelRouter> {
        &self.router
    }

    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, InferError> {
        let start = Instant::now();
        let tenant = request.tenant;
        let outcome = self
            .router
            .send(Route {
                model: request.model,
                version: request.version,
                input: request.input,
                timeout: request.timeout,
            })
            .await;
        let (key, result) = match outcome {
            Ok(outcome) => (outcome.key, outcome.result),
            Err(_) => (None, Err(InferError::ShuttingDown)),
        };
        let result = match result {
            Ok(ticket) => match tokio::time::timeout_at(ticket.deadline.into(), ticket.reply).await
            {
                Err(_elapsed) => Err(InferError::Timeout(ticket.timeout)),
                Ok(Err(_dropped)) => Err(InferError::Inference(
                    "the executor stopped before answering".into(),
                )),
                Ok(Ok(answer)) => answer.map(|output| (ticket.key, ticket.spec, output)),
            },
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
