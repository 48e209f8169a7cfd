//! Start-up and shut-down: the metrics registry, the actors, the configured models (loaded and
//! warmed before the port opens), and the actix-web server with its HTTP metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::KeepAlive;
use actix_web::{dev::ServerHandle, web, App, HttpServer};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use burnserve_actors::{JobService, LoadReport, Metrics, MetricsConfig, Runtime, VersionKey};
use prometheus::Registry;

use crate::app::settings::{LoadFailurePolicy, ServerSettings, Settings};
use crate::app::shutdown::Drain;
use crate::edge::access::Access;
use crate::http::{self, AppState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(String),
    #[error("access settings: {0}")]
    Access(String),
    #[error("{0} (jobs.path; or set jobs.enabled = false)")]
    Jobs(String),
    #[error("cannot load model '{model}' version '{version}': {message}")]
    Load {
        model: String,
        version: String,
        message: String,
    },
}

/// A started server: where it listens, how to stop it, and the future that runs it.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The `metrics.port` listener, when set.
    pub metrics_addr: Option<SocketAddr>,
    pub handle: ServerHandle,
    pub server: actix_web::dev::Server,
    pub registry: Registry,
    pub loads: Vec<(VersionKey, LoadReport)>,
    /// Readiness and in-flight count for the graceful shutdown (`crate::app::shutdown`).
    pub drain: Arc<Drain>,
    /// The async jobs, when enabled (stopped at the start of a drain).
    pub jobs: Option<JobService>,
    /// The KServe v2 gRPC listener, when enabled (it stops when dropped).
    pub grpc: Option<crate::grpc::GrpcServer>,
}

/// The HTTP metrics middleware (`http_requests_total`, `http_requests_duration_seconds`, the
/// latter with `metrics.latency_buckets` so it resolves sub-millisecond requests too).
fn http_metrics(registry: &Registry, buckets: &[f64]) -> Result<PrometheusMetrics, StartError> {
    PrometheusMetricsBuilder::new("")
        .registry(registry.clone())
        .buckets(buckets)
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| StartError::Metrics(e.to_string()))
}

/// The `[metrics]` settings, the tenants' names and the build, for the metrics' registration.
fn metrics_config(settings: &Settings) -> MetricsConfig {
    let mut features: Vec<&str> = Vec::new();
    if cfg!(feature = "cuda") {
        features.push("cuda");
    }
    MetricsConfig {
        enabled: settings.metrics.enabled,
        latency_buckets: settings.metrics.latency_buckets.clone(),
        tenants: settings.tenants.iter().map(|t| t.name.clone()).collect(),
        build: [
            env!("CARGO_PKG_VERSION").to_string(),
            burnserve_models::arch::CPU_BACKEND.to_string(),
            features.join(","),
        ],
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// `server.keep_alive_ms` for actix-web: 0 closes each connection after its response.
fn keep_alive(server: &ServerSettings) -> KeepAlive {
    match server.keep_alive_ms {
        0 => KeepAlive::Disabled,
        ms => KeepAlive::Timeout(millis(ms)),
    }
}

/// HTTP worker threads: `server.workers`, or one per core.
fn http_workers(server: &ServerSettings) -> usize {
    match server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The gRPC listener's limits from `[grpc]`, with its connection cap as fitted.
fn grpc_limits(settings: &Settings, max_connections: usize) -> crate::grpc::GrpcLimits {
    let grpc = &settings.grpc;
    crate::grpc::GrpcLimits {
        max_message_bytes: settings.server.max_body_bytes,
        max_connections,
        max_concurrent_streams: grpc.max_concurrent_streams,
        max_concurrent_calls: grpc.max_concurrent_calls,
        max_connection_body_bytes: grpc.max_connection_body_bytes,
        max_header_list_bytes: grpc.max_header_list_bytes,
        handshake_timeout: millis(grpc.handshake_timeout_ms),
        idle_timeout: match grpc.idle_timeout_ms {
            0 => Duration::from_secs(365 * 24 * 3600),
            ms => millis(ms),
        },
        keepalive_interval: millis(grpc.keepalive_interval_ms),
        keepalive_timeout: millis(grpc.keepalive_timeout_ms),
        body_timeout: millis(settings.server.body_timeout_ms),
    }
}

/// Builds everything and binds the port; must run inside an actix system.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    crate::app::heap::start_trimming();
    let open_files = match crate::app::limits::raise_open_file_limit() {
        Ok((before, after)) => {
            if before != after {
                tracing::info!(
                    before,
                    after,
                    "raised the open-file limit to its hard limit"
                );
            }
            after
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let caps = crate::app::limits::ConnectionCaps::fit(
        open_files,
        http_workers(&settings.server),
        settings.server.max_connections_per_worker,
        settings
            .grpc
            .enabled
            .then_some(settings.grpc.max_connections),
    );
    tracing::info!(
        open_files,
        http_per_worker = caps.http_per_worker,
        http_workers = caps.http_workers,
        grpc = caps.grpc,
        reserved = caps.reserved,
        "connection caps fitted under the open-file limit"
    );
    let body_budget = crate::edge::budget::ByteBudget::new(settings.server.max_inflight_body_bytes);
    let registry = Registry::new();
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    let metrics = Metrics::register_with(&registry, &metrics_config(&settings))
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    crate::app::gpu_metrics::register(&registry).map_err(|e| StartError::Metrics(e.to_string()))?;
    crate::edge::budget::BudgetGauge::register(&registry, body_budget.clone())
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    let runtime = Runtime::start(settings.repository.runtime_config(), metrics.clone());
    let report = runtime
        .control
        .reconcile(&settings.models)
        .await
        .map_err(|e| StartError::Load {
            model: "*".into(),
            version: "*".into(),
            message: e.to_string(),
        })?;
    if settings.server.start_on_load_failure == LoadFailurePolicy::Exit {
        if let Some((key, err)) = report.failed.into_iter().next() {
            return Err(StartError::Load {
                model: key.model,
                version: key.version,
                message: err.to_string(),
            });
        }
    } else {
        for (key, err) in &report.failed {
            tracing::error!(version = %key, error = %err,
                "could not load; serving the other versions (server.start_on_load_failure = \"serve\")");
        }
    }
    for (key, loaded) in &report.loaded {
        tracing::info!(version = %key, device = %loaded.device, took_ms = loaded.took.as_millis() as u64,
            weight_bytes = loaded.weight_bytes, "loaded");
    }
    let loads = report.loaded;
    crate::app::repository::start(&settings, &runtime.control).await?;

    let access = Access::from_settings(&settings, &registry).map_err(StartError::Access)?;
    // Jobs start once the configured versions are loaded: a job of a version that is not
    // loaded now fails `model_not_found` instead of waiting forever.
    let jobs = if settings.jobs.enabled {
        let jobs = JobService::open(
            settings.jobs.runtime(settings.tenants.len()),
            runtime.service.clone(),
            metrics,
        )
        .map_err(|e| StartError::Jobs(e.to_string()))?;
        jobs.start(std::rc::Rc::new(http::jobs::HttpJobRunner {
            service: runtime.service.clone(),
        }));
        Some(jobs)
    } else {
        None
    };
    let drain = Arc::new(Drain::default());
    let state = web::Data::new(AppState {
        drain: drain.clone(),
        service: runtime.service,
        control: runtime.control,
        access: Arc::new(access),
        body_timeout: millis(settings.server.body_timeout_ms),
        strict_readiness: settings.server.strict_readiness,
        settings_file: settings.source.clone(),
        max_body_bytes: settings.server.max_body_bytes,
        body_budget: body_budget.clone(),
        metrics_listener: Arc::default(),
        jobs: jobs.clone(),
    });
    let metrics_listener = state.metrics_listener.clone();
    let grpc_state = state.get_ref().clone();
    let prometheus = http_metrics(&registry, &settings.metrics.latency_buckets)?;
    let json = http::json_config(settings.server.max_body_bytes, "server.max_body_bytes");
    let route_limits = http::RouteLimits {
        text_body_bytes: settings
            .server
            .max_text_body_bytes
            .min(settings.server.max_body_bytes),
    };
    let addr = format!("{}:{}", settings.server.host, settings.server.port);
    let http = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(http::body::body_deadline))
            .wrap(prometheus.clone())
            .wrap(actix_web::middleware::from_fn(http::metrics_listener_only))
            .wrap(actix_web::middleware::from_fn(http::fold_unknown_methods))
            .wrap(actix_web::middleware::from_fn(http::request_id::correlate))
            // Compressed answers for clients that ask (Accept-Encoding: gzip, deflate).
            // Outermost: actix-web-prom puts the /metrics text into the response of the inner
            // service, so compressing inside it sent a gzip header over plain text.
            .wrap(actix_web::middleware::Compress::default())
            .app_data(state.clone())
            .app_data(json.clone())
            .app_data(http::query_config())
            .app_data(http::path_config())
            .configure(|cfg| http::routes(cfg, route_limits))
            .default_service(web::to(http::no_route))
    });
    let limits = &settings.server;
    let mut http = http
        .client_request_timeout(millis(limits.header_timeout_ms))
        .client_disconnect_timeout(millis(limits.disconnect_timeout_ms))
        .keep_alive(keep_alive(limits))
        .max_connections(caps.http_per_worker)
        .backlog(limits.backlog)
        // `crate::app::shutdown` handles the signals: readiness first, then the stop.
        .disable_signals()
        .shutdown_timeout(limits.shutdown_timeout_ms.div_ceil(1000));
    http = http.workers(caps.http_workers);
    let mut http = http.bind(&addr).map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?;
    if let Some(port) = settings.metrics.port {
        let metrics_addr = format!("{}:{}", settings.server.host, port);
        http = http
            .bind(&metrics_addr)
            .map_err(|source| StartError::Bind {
                addr: metrics_addr,
                source,
            })?;
    }
    let local = http
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| StartError::Bind {
            addr,
            source: std::io::Error::other("no address to listen on"),
        })?;
    let metrics_addr = settings.metrics.port.and_then(|port| {
        http.addrs()
            .into_iter()
            .skip(1)
            .rev()
            .find(|bound| port == 0 || bound.port() == port)
    });
    if let Some(metrics_addr) = metrics_addr {
        let _ = metrics_listener.set(metrics_addr);
        tracing::info!(%metrics_addr, "serving /metrics on its own port as well");
    }
    let grpc = if settings.grpc.enabled {
        let connection_metrics = crate::grpc::serve::ConnectionMetrics::register(&registry)
            .map_err(|e| StartError::Metrics(e.to_string()))?;
        let grpc = crate::grpc::start(
            &settings.server.host,
            settings.grpc.port,
            grpc_state,
            grpc_limits(&settings, caps.grpc),
            body_budget.clone(),
            connection_metrics,
        )
        .map_err(|source| StartError::Bind {
            addr: format!(
                "{}:{} (grpc.port)",
                settings.server.host, settings.grpc.port
            ),
            source,
        })?;
        Some(grpc)
    } else {
        None
    };
    let server = http.run();
    tracing::info!(%local, cpu_backend = burnserve_models::arch::CPU_BACKEND, "burnserve listening");
    Ok(RunningServer {
        addr: local,
        metrics_addr,
        handle: server.handle(),
        server,
        registry,
        loads,
        drain,
        jobs,
        grpc,
    })
}
