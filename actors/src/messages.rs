//! Plain data crossing actors and threads: the queued `Job`, its `JobOutput`, `VersionKey`.

use std::fmt;
use std::time::{Duration, Instant};

pub use crate::reply::JobReply;
use burnserve_models::{NamedTensor, TensorData};

/// `model`/`version` of one loaded version; also its metric label values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionKey {
    pub model: String,
    pub version: String,
}

impl VersionKey {
    pub fn new(model: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            version: version.into(),
        }
    }
}

impl fmt::Display for VersionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.model, self.version)
    }
}

/// One request waiting in a version's queue. The requester owns the other end of `reply`:
/// when it is gone (client left, deadline passed) the executor skips the job.
#[derive(Debug)]
pub struct Job {
    /// The request's inputs checked against the signature, in its order, each `[rows, ..]`
    /// (its whole shape for a model without a batch dimension).
    pub inputs: Vec<NamedTensor>,
    /// The outputs the request asked for (checked against the signature); empty: every one.
    pub outputs: Vec<String>,
    pub rows: usize,
    pub deadline: Instant,
    pub enqueued_at: Instant,
    pub reply: JobReply,
    /// Admitted against the cost estimate to measure it again (see `cost::CostModel::probe`):
    /// computed even if the estimate says it will be late.
    pub probe: bool,
    /// The version's estimate of the work ahead when the job was admitted (with its own rows;
    /// no margin), against which its actual wait calibrates the margin; `None` without one.
    pub estimate: Option<Duration>,
}

/// What the executor sends back for one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    /// This job's rows of every output the model gave, in the signature's order.
    pub outputs: Vec<NamedTensor>,
    pub rows: usize,
    /// From enqueue to the start of its batch.
    pub queue_time: Duration,
    /// The forward pass of its batch.
    pub inference_time: Duration,
    /// Requests in its batch.
    pub batch_size: usize,
    /// Tokens its rows were encoded to (text models; 0 otherwise).
    pub tokens: usize,
}

impl JobOutput {
    /// The first output's values when they are FP32 (single-output models: classifiers,
    /// embedders).
    pub fn values(&self) -> Option<&[f32]> {
        match self.outputs.first().map(|t| &t.data) {
            Some(TensorData::F32(values)) => Some(values),
            _ => None,
        }
    }
}
