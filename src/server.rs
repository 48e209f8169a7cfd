//! Start-up and shut-down: the metrics registry, the actors, the configured models (loaded and
//! warmed before the port opens), and the actix-web server with its HTTP metrics.

use std::net::{SocketAddr, TcpListener};

use actix::Actor;
use actix_web::{dev::ServerHandle, web, App, HttpServer};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use burnserve_actors::supervisor::LoadReport;
use burnserve_actors::{InferenceService, LoadVersion, Metrics, ModelRouter, ModelSupervisor};
use prometheus::Registry;

use crate::api::{self, AppState};
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(String),
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
    pub handle: ServerHandle,
    pub server: actix_web::dev::Server,
    pub registry: Registry,
    pub loads: Vec<(String, String, LoadReport)>,
}

fn http_metrics(registry: &Registry) -> Result<PrometheusMetrics, StartError> {
    PrometheusMetricsBuilder::new("")
        .registry(registry.clone())
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| StartError::Metrics(e.to_string()))
}

/// Builds everything and binds the port; must run inside an actix system.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    let registry = Registry::new();
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    let metrics = Metrics::register(&registry, settings.metrics.enabled)
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    let router = ModelRouter::default().start();
    let supervisor = ModelSupervisor::new(
        settings.repository.path.clone(),
        router.clone(),
        metrics.clone(),
    )
    .start();

    let mut loads = Vec::new();
    for model in &settings.models {
        for version in &model.versions {
            let make_default = model.default_version.as_deref() == Some(version.as_str());
            let mut load = LoadVersion::new(&model.name, version, model.device());
            load.make_default = make_default;
            let fail = |message: String| StartError::Load {
                model: model.name.clone(),
                version: version.clone(),
                message,
            };
            let report = supervisor
                .send(load)
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(|e| fail(e.to_string()))?;
            tracing::info!(model = %model.name, version = %version, took_ms = report.took.as_millis() as u64,
                weight_bytes = report.weight_bytes, "loaded");
            loads.push((model.name.clone(), version.clone(), report));
        }
    }

    let state = web::Data::new(AppState {
        service: InferenceService::new(router, metrics),
        supervisor,
        admin_token: settings.admin.token.clone(),
        repository: settings.repository.path.clone(),
        settings_file: settings.source.clone(),
        devices: settings
            .models
            .iter()
            .map(|m| (m.name.clone(), m.device()))
            .collect(),
    });
    let prometheus = http_metrics(&registry)?;
    let json = api::json_config(settings.server.max_body_bytes);
    let addr = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let mut http = HttpServer::new(move || {
        App::new()
            .wrap(prometheus.clone())
            .app_data(state.clone())
            .app_data(json.clone())
            .configure(api::routes)
            .default_service(web::to(api::no_route))
    });
    if settings.server.workers > 0 {
        http = http.workers(settings.server.workers);
    }
    let server = http
        .listen(listener)
        .map_err(|source| StartError::Bind { addr, source })?
        .run();
    tracing::info!(%local, cpu_backend = burnserve_models::arch::CPU_BACKEND, "burnserve listening");
    Ok(RunningServer {
        addr: local,
        handle: server.handle(),
        server,
        registry,
        loads,
    })
}
