//! The metric contract (ARCHITECTURE.md, "Metrics": names, labels and buckets exact), registered
//! on the caller's registry, plus per-version handles resolved once so the hot path does no label
//! hashing. `model_loaded` is written only by the lifecycle (`VersionState::apply`).
//!
//! A version's request, latency and error series exist at 0 from its load on (for every tenant
//! and every error a request to it can get), and the `unknown` model's requests and
//! `model_not_found` errors from start-up, so rates and ratios read 0, not "no data", and a first
//! burst is seen whole; an unload removes every series of the version, so versions coming and
//! going leave no residue.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burnserve_models::ErrorType;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::jobs::JOB_OUTCOMES;
use crate::messages::VersionKey;

/// Default buckets of `inference_latency_seconds` and `inference_queue_duration_seconds`
/// (`metrics.latency_buckets`): the contract's 0.005 … 10 s, with finer ones below for
/// sub-millisecond models.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// The error types a request that reached a loaded version can end with; their series exist at
/// 0 from the version's load on.
pub const VERSION_ERRORS: &[ErrorType] = &[
    ErrorType::InvalidInput,
    ErrorType::Overloaded,
    ErrorType::NotReady,
    ErrorType::ShuttingDown,
    ErrorType::Timeout,
    ErrorType::Inference,
];
const LIFECYCLE_ACTIONS: &[&str] = &["load", "reload", "unload"];
const LIFECYCLE_OUTCOMES: &[&str] = &["success", "failure"];

/// How the metrics are registered (`[metrics]` settings).
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// With `false` the metrics exist but nothing is recorded (for the overhead benchmark).
    pub enabled: bool,
    /// Buckets of the latency and queue-time histograms, increasing.
    pub latency_buckets: Vec<f64>,
    /// The configured tenants' names (the `tenant` label); empty: `anonymous` only.
    pub tenants: Vec<String>,
    /// `burnserve_build_info`'s labels: version, cpu_backend, features.
    pub build: [String; 3],
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            latency_buckets: LATENCY_BUCKETS.to_vec(),
            tenants: Vec::new(),
            build: ["test".into(), "flex".into(), String::new()],
        }
    }
}
/// Buckets of `inference_batch_size`.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// Label values for a request whose model or version is not loaded.
pub const UNKNOWN: &str = "unknown";
/// Tenant label until tenants are configured.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Clone)]
pub struct Metrics {
    enabled: bool,
    requests: IntCounterVec,
    errors: IntCounterVec,
    latency: HistogramVec,
    successful: IntGaugeVec,
    queue_depth: IntGaugeVec,
    queue_duration: HistogramVec,
    batch_size: HistogramVec,
    executor_inflight: IntGaugeVec,
    executor_timeouts: IntCounterVec,
    actor_restarts: IntCounterVec,
    supervisor_restarts: IntCounter,
    model_loaded: IntGaugeVec,
    model_load_time: GaugeVec,
    instances: IntGaugeVec,
    admission_margin: GaugeVec,
    weight_bytes: IntGaugeVec,
    lifecycle: IntCounterVec,
    job_queue_depth: IntGaugeVec,
    jobs: IntCounterVec,
    job_duration: HistogramVec,
    /// 1 while the job store can write, 0 while it cannot (and when jobs are switched off).
    job_store_available: IntGauge,
    /// Versions loaded now: the job series are written for these only, so a job finishing
    /// after its version was unloaded cannot bring the version's series back.
    loaded: Arc<Mutex<HashSet<VersionKey>>>,
    /// The `tenant` label values: configured names, or `anonymous`.
    tenants: Arc<[String]>,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn int_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Registers every metric of the contract on `registry` with the default buckets and no
    /// tenants. With `enabled = false` the metrics exist but nothing is recorded.
    pub fn register(registry: &Registry, enabled: bool) -> prometheus::Result<Self> {
        Self::register_with(
            registry,
            &MetricsConfig {
                enabled,
                ..MetricsConfig::default()
            },
        )
    }

    /// Registers every metric of the contract on `registry` as `config` says.
    pub fn register_with(registry: &Registry, config: &MetricsConfig) -> prometheus::Result<Self> {
        const MV: &[&str] = &["model", "version"];
        const MVT: &[&str] = &["model", "version", "tenant"];
        let build_info = IntGaugeVec::new(
            Opts::new(
                "burnserve_build_info",
                "Always 1: the server's version, CPU backend and compiled features",
            ),
            &["version", "cpu_backend", "features"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        let [version, backend, features] = &config.build;
        build_info
            .with_label_values(&[version.as_str(), backend.as_str(), features.as_str()])
            .set(1);
        let tenants: Arc<[String]> = if config.tenants.is_empty() {
            Arc::from(vec![ANONYMOUS.to_string()])
        } else {
            Arc::from(config.tenants.clone())
        };
        let enabled = config.enabled;
        let buckets = config.latency_buckets.as_slice();
        let metrics = Self {
            tenants,
            enabled,
            requests: counter(
                registry,
                "inference_requests_total",
                "Inference requests received, before execution",
                MVT,
            )?,
            errors: counter(
                registry,
                "inference_errors_total",
                "Inference requests that failed",
                &["model", "version", "error_type", "tenant"],
            )?,
            latency: histogram(
                registry,
                "inference_latency_seconds",
                "Latency of successful requests from their arrival (body, decode, queue, forward, postprocess)",
                MVT,
                buckets,
            )?,
            successful: int_gauge(
                registry,
                "inference_successful",
                "1 if the last request succeeded, else 0",
                MV,
            )?,
            queue_depth: int_gauge(
                registry,
                "inference_queue_depth",
                "Requests waiting in the version's queue",
                MV,
            )?,
            queue_duration: histogram(
                registry,
                "inference_queue_duration_seconds",
                "Time from enqueue to batch start",
                MV,
                buckets,
            )?,
            batch_size: histogram(
                registry,
                "inference_batch_size",
                "Requests per executed batch",
                MV,
                BATCH_SIZE_BUCKETS,
            )?,
            executor_inflight: int_gauge(
                registry,
                "executor_inflight",
                "Requests in forward passes executing now",
                &["device"],
            )?,
            executor_timeouts: counter(
                registry,
                "executor_timeouts_total",
                "Requests that expired in an executor's queue or run",
                &["device"],
            )?,
            actor_restarts: counter(
                registry,
                "actor_restarts_total",
                "Supervisor restarts of a version's actor",
                MV,
            )?,
            supervisor_restarts: {
                let metric = IntCounter::new(
                    "supervisor_restarts_total",
                    "Restarts of the model supervisor (the control plane) after it died",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            model_loaded: int_gauge(
                registry,
                "model_loaded",
                "1 while the version is loaded and ready, else 0",
                MV,
            )?,
            model_load_time: {
                let metric = GaugeVec::new(
                    Opts::new(
                        "model_load_time_seconds",
                        "Time the last load (with warm-up) took",
                    ),
                    MV,
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            instances: int_gauge(
                registry,
                "model_instances",
                "Executor threads serving the loaded version (batching.instances)",
                MV,
            )?,
            admission_margin: {
                let metric = GaugeVec::new(
                    Opts::new(
                        "inference_admission_margin",
                        "Factor on the version's estimate of the work ahead when admitting a \
                         request (1.25 at least; rises while admitted requests take longer)",
                    ),
                    MV,
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            weight_bytes: int_gauge(
                registry,
                "model_weight_bytes",
                "Bytes of the loaded version's weights on its device",
                &["model", "version", "device"],
            )?,
            lifecycle: counter(
                registry,
                "model_lifecycle_total",
                "Loads, reloads and unloads of versions by outcome",
                &["model", "version", "action", "outcome"],
            )?,
            job_queue_depth: int_gauge(
                registry,
                "job_queue_depth",
                "Async jobs PENDING for the version (submitted, not yet taken by a worker)",
                MV,
            )?,
            jobs: counter(
                registry,
                "jobs_total",
                "Async jobs that ended, by outcome (succeeded, failed, cancelled, expired)",
                &["model", "version", "outcome"],
            )?,
            job_duration: histogram(
                registry,
                "job_duration_seconds",
                "Time from submit to finish of async jobs that ran (succeeded or failed)",
                MV,
                buckets,
            )?,
            job_store_available: {
                let gauge = IntGauge::new(
                    "job_store_available",
                    "0 while the async job store cannot write (a full disk, an I/O error) and re-opens by itself; 1 otherwise (jobs switched off included, so an alert on 0 never fires for them)",
                )?;
                gauge.set(1);
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            loaded: Arc::default(),
        };
        // Requests for models that are not loaded count under `unknown`: those series exist at
        // 0 from start-up too, so the first such burst shows in rates and alerts.
        for tenant in metrics.tenants.iter() {
            let unknown = [UNKNOWN, UNKNOWN, tenant.as_str()];
            metrics.requests.with_label_values(&unknown);
            metrics.errors.with_label_values(&[
                UNKNOWN,
                UNKNOWN,
                ErrorType::ModelNotFound.as_str(),
                tenant.as_str(),
            ]);
        }
        Ok(metrics)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Records one finished request. `key` is `None` when the model or version is unknown.
    pub fn record_request(
        &self,
        key: Option<&VersionKey>,
        tenant: &str,
        outcome: Result<Duration, ErrorType>,
    ) {
        if !self.enabled {
            return;
        }
        let (model, version) = key.map_or((UNKNOWN, UNKNOWN), |k| {
            (k.model.as_str(), k.version.as_str())
        });
        self.requests
            .with_label_values(&[model, version, tenant])
            .inc();
        match outcome {
            Ok(latency) => {
                self.latency
                    .with_label_values(&[model, version, tenant])
                    .observe(latency.as_secs_f64());
            }
            Err(error_type) => {
                self.errors
                    .with_label_values(&[model, version, error_type.as_str(), tenant])
                    .inc();
            }
        }
        if key.is_some() {
            self.successful
                .with_label_values(&[model, version])
                .set(i64::from(outcome.is_ok()));
        }
    }

    /// Counts a restart of the model supervisor (always, like the lifecycle metrics).
    pub fn record_supervisor_restart(&self) {
        self.supervisor_restarts.inc();
    }

    /// A version was loaded (or reloaded) on `device`: its request, latency and error series
    /// exist from now on, at 0 until traffic comes, and its weight bytes are set.
    pub fn version_loaded(&self, key: &VersionKey, device: &str, weight_bytes: usize) {
        let (model, version) = (key.model.as_str(), key.version.as_str());
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if loaded.insert(key.clone()) {
                self.job_queue_depth.with_label_values(&[model, version]);
            }
            for outcome in JOB_OUTCOMES {
                self.jobs.with_label_values(&[model, version, outcome]);
            }
            self.job_duration.with_label_values(&[model, version]);
        }
        for tenant in self.tenants.iter() {
            let mvt = [model, version, tenant.as_str()];
            self.requests.with_label_values(&mvt);
            self.latency.with_label_values(&mvt);
            for error in VERSION_ERRORS {
                self.errors
                    .with_label_values(&[model, version, error.as_str(), tenant.as_str()]);
            }
        }
        self.weight_bytes
            .with_label_values(&[model, version, device])
            .set(i64::try_from(weight_bytes).unwrap_or(i64::MAX));
    }

    /// A version was unloaded (no instance of it is left): every series with its labels goes.
    pub fn version_unloaded(&self, key: &VersionKey, device: &str) {
        let (model, version) = (key.model.as_str(), key.version.as_str());
        let mv = [model, version];
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            loaded.remove(key);
            let _ = self.job_queue_depth.remove_label_values(&mv);
            let _ = self.job_duration.remove_label_values(&mv);
            for outcome in JOB_OUTCOMES {
                let _ = self.jobs.remove_label_values(&[model, version, outcome]);
            }
        }
        for tenant in self.tenants.iter() {
            let mvt = [model, version, tenant.as_str()];
            let _ = self.requests.remove_label_values(&mvt);
            let _ = self.latency.remove_label_values(&mvt);
            // Every error_type word (a superset of those counted here; removing a series that
            // never existed is a no-op).
            for error in ErrorType::ALL {
                let _ = self.errors.remove_label_values(&[
                    model,
                    version,
                    error.as_str(),
                    tenant.as_str(),
                ]);
            }
        }
        let _ = self.successful.remove_label_values(&mv);
        let _ = self.queue_depth.remove_label_values(&mv);
        let _ = self.queue_duration.remove_label_values(&mv);
        let _ = self.batch_size.remove_label_values(&mv);
        let _ = self.actor_restarts.remove_label_values(&mv);
        let _ = self.model_loaded.remove_label_values(&mv);
        let _ = self.model_load_time.remove_label_values(&mv);
        let _ = self.instances.remove_label_values(&mv);
        let _ = self.admission_margin.remove_label_values(&mv);
        let _ = self
            .weight_bytes
            .remove_label_values(&[model, version, device]);
        for action in LIFECYCLE_ACTIONS {
            for outcome in LIFECYCLE_OUTCOMES {
                let _ = self
                    .lifecycle
                    .remove_label_values(&[model, version, action, outcome]);
            }
        }
    }

    /// Sets `job_queue_depth` of each loaded version: its count in `pending`, else 0. Versions
    /// not loaded are left alone (their series were removed at unload).
    pub fn set_job_queue_depths(&self, pending: &HashMap<VersionKey, usize>) {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        for key in loaded.iter() {
            let depth = pending.get(key).copied().unwrap_or(0);
            self.job_queue_depth
                .with_label_values(&[key.model.as_str(), key.version.as_str()])
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// Sets `job_store_available`: whether the job store can write.
    pub fn set_job_store_available(&self, available: bool) {
        self.job_store_available.set(i64::from(available));
    }

    /// Counts a job that ended with `outcome` (a `jobs_total` outcome), and its time from submit
    /// when it ran. Nothing for a version no longer loaded.
    pub fn record_job(&self, key: &VersionKey, outcome: &str, ran_for: Option<Duration>) {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if !loaded.contains(key) {
            return;
        }
        let mv = [key.model.as_str(), key.version.as_str()];
        self.jobs.with_label_values(&[mv[0], mv[1], outcome]).inc();
        if let Some(took) = ran_for {
            self.job_duration
                .with_label_values(&mv)
                .observe(took.as_secs_f64());
        }
    }

    /// Handles for one version, resolved once.
    pub fn version(&self, key: &VersionKey, device: &str) -> VersionMetrics {
        let mv = [key.model.as_str(), key.version.as_str()];
        VersionMetrics {
            enabled: self.enabled,
            queue_depth: self.queue_depth.with_label_values(&mv),
            queue_duration: self.queue_duration.with_label_values(&mv),
            batch_size: self.batch_size.with_label_values(&mv),
            inflight: self.executor_inflight.with_label_values(&[device]),
            timeouts: self.executor_timeouts.with_label_values(&[device]),
            restarts: self.actor_restarts.with_label_values(&mv),
            admission_margin: self.admission_margin.with_label_values(&mv),
        }
    }

    /// Counts a load, reload or unload (`action`) that ended in `outcome` (success, failure).
    pub fn record_lifecycle(&self, key: &VersionKey, action: &str, outcome: &str) {
        self.lifecycle
            .with_label_values(&[key.model.as_str(), key.version.as_str(), action, outcome])
            .inc();
    }

    /// The `model_loaded` series of a version, handed to its instances' lifecycle.
    pub fn loaded_gauge(&self, key: &VersionKey) -> IntGauge {
        self.model_loaded
            .with_label_values(&[key.model.as_str(), key.version.as_str()])
    }

    /// How many executor threads serve the version now.
    pub fn record_instances(&self, key: &VersionKey, instances: usize) {
        self.instances
            .with_label_values(&[key.model.as_str(), key.version.as_str()])
            .set(instances as i64);
    }

    pub fn record_load_time(&self, key: &VersionKey, took: Duration) {
        self.model_load_time
            .with_label_values(&[key.model.as_str(), key.version.as_str()])
            .set(took.as_secs_f64());
    }
}

/// Per-version metric handles used by the router, actor and executor.
#[derive(Clone)]
pub struct VersionMetrics {
    enabled: bool,
    pub queue_depth: IntGauge,
    queue_duration: Histogram,
    batch_size: Histogram,
    inflight: IntGauge,
    timeouts: IntCounter,
    pub restarts: IntCounter,
    admission_margin: Gauge,
}

impl VersionMetrics {
    pub fn set_queue_depth(&self, depth: usize) {
        if self.enabled {
            self.queue_depth.set(depth as i64);
        }
    }

    pub fn batch_started(&self, batch_size: usize, queue_times: impl Iterator<Item = Duration>) {
        if !self.enabled {
            return;
        }
        self.batch_size.observe(batch_size as f64);
        for waited in queue_times {
            self.queue_duration.observe(waited.as_secs_f64());
        }
        self.inflight.add(batch_size as i64);
    }

    pub fn batch_finished(&self, batch_size: usize) {
        if self.enabled {
            self.inflight.sub(batch_size as i64);
        }
    }

    /// The admission margin's factor now (`CostModel::margin`).
    pub fn set_admission_margin(&self, factor: f64) {
        if self.enabled {
            self.admission_margin.set(factor);
        }
    }

    pub fn timed_out(&self) {
        if self.enabled {
            self.timeouts.inc();
        }
    }
}
