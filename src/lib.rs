//! burnserve: an actor-based multi-model inference server (actix + burn).
//!
//! # Layout
//! - [`settings`] — typed, validated settings from `config/*.toml` and the environment.
//! - [`server`] — start-up (registry, actors, model loading) and the actix-web server.
//! - [`api`] — HTTP routes: simple predict, KServe v2, health; JSON errors; the bearer and
//!   shedding gates, the body deadline, request ids and the metrics port.
//! - [`kserve`] — the protocol-neutral KServe v2 core: inputs decoded and bounded, outputs
//!   selected, metadata, configuration and statistics documents (HTTP and gRPC adapt it).
//! - [`grpc`] — KServe v2 gRPC (tonic on hyper) and grpc.health.v1, through the same state as
//!   HTTP; its listener's connection, stream and body limits.
//! - [`gpu_metrics`] — GPU memory gauges read at scrape (`cuda` builds).
//! - [`access`] — the admin token, tenant keys and per-tenant quotas.
//! - [`guesses`] — failed credentials counted, admin-token guessers slowed.
//! - [`budget`] — request body bytes in flight, server-wide and per gRPC connection.
//! - [`limits`] — process limits raised at start.
//! - [`shutdown`] — the graceful drain on SIGTERM/SIGINT.
//! - [`telemetry`] — logging.
//!
//! The serving runtime lives in `burnserve-actors`; models and burn in `burnserve-models`.

pub mod access;
pub mod api;
pub mod budget;
pub mod gpu_metrics;
pub mod grpc;
pub mod guesses;
pub mod heap;
pub mod kserve;
pub mod limits;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use server::{start, RunningServer};
pub use settings::Settings;
