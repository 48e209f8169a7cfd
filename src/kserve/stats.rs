//! Triton's statistics extension, one document for every protocol: each version's request
//! counts and durations (success, fail, queue, compute) and its batch sizes. Burnserve does not
//! split input and output handling from the forward pass: `compute_input` and `compute_output`
//! count the requests with 0 ns, and the whole pass is `compute_infer`; there is no cache.

use serde::Serialize;
use utoipa::ToSchema;

/// `{count, ns}` as Triton writes a statistic.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct StatDuration {
    pub count: u64,
    pub ns: u64,
}

impl From<burnserve_actors::stats::Totals> for StatDuration {
    fn from(totals: burnserve_actors::stats::Totals) -> Self {
        StatDuration {
            count: totals.count,
            ns: totals.ns,
        }
    }
}

/// `GET /v2/models[/{m}[/versions/{v}]]/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub model_stats: Vec<ModelStats>,
}

/// One version's statistics, as Triton writes them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStats {
    pub name: String,
    pub version: String,
    /// Unix milliseconds of the last inference (0: none yet).
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
    pub batch_stats: Vec<BatchStats>,
    /// Not reported (always empty).
    #[schema(value_type = Vec<Object>)]
    pub memory_usage: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferenceStats {
    pub success: StatDuration,
    pub fail: StatDuration,
    pub queue: StatDuration,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
    pub cache_hit: StatDuration,
    pub cache_miss: StatDuration,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStats {
    pub batch_size: usize,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
}

/// Triton's `model_stats` entry of one version.
pub fn model_stats(
    key: &burnserve_actors::VersionKey,
    s: &burnserve_actors::stats::StatsSnapshot,
) -> ModelStats {
    let none = StatDuration { count: 0, ns: 0 };
    let counted = StatDuration {
        count: s.compute_infer.count,
        ns: 0,
    };
    let batch_stats = s
        .batches
        .iter()
        .map(|(size, totals)| {
            let counted = StatDuration {
                count: totals.count,
                ns: 0,
            };
            BatchStats {
                batch_size: *size,
                compute_input: counted,
                compute_infer: (*totals).into(),
                compute_output: counted,
            }
        })
        .collect();
    ModelStats {
        name: key.model.clone(),
        version: key.version.clone(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: InferenceStats {
            success: s.success.into(),
            fail: s.fail.into(),
            queue: s.queue.into(),
            compute_input: counted,
            compute_infer: s.compute_infer.into(),
            compute_output: counted,
            cache_hit: none,
            cache_miss: none,
        },
        batch_stats,
        memory_usage: Vec::new(),
    }
}
