//! burnserve: an actor-based multi-model inference server (actix + burn).
//!
//! # Layout
//! Dependencies point one way: `app` → (`http`, `grpc`) → `kserve`; `http` and `grpc` share
//! `edge`; `grpc` reuses `http`'s state and error type; `kserve` sees only the runtime's types.
//! - [`app`] — the process: settings (`config/*.toml` and the environment), start-up (registry,
//!   actors, model loading, both listeners), the graceful drain, process limits, the heap,
//!   logging, GPU memory gauges.
//! - [`kserve`] — the protocol-neutral KServe v2 core: inputs decoded and bounded, outputs
//!   selected, metadata, configuration and statistics documents (HTTP and gRPC adapt it).
//! - [`http`] — HTTP routes (actix-web): simple predict, KServe v2 over JSON and binary,
//!   embeddings, jobs, admin, health; JSON errors; the bearer and shedding gates, the body
//!   deadline, request ids and the metrics port.
//! - [`grpc`] — KServe v2 gRPC (tonic on hyper) and grpc.health.v1, through the same state as
//!   HTTP; its listener's connection, stream and body limits.
//! - [`edge`] — what both listeners enforce on strangers: the admin token, tenant keys and
//!   quotas (`access`), failed credentials counted and guessers slowed (`guesses`), request
//!   body bytes in flight (`budget`).
//!
//! The serving runtime lives in `burnserve-actors`; models and burn in `burnserve-models`.

pub mod app;
pub mod edge;
pub mod grpc;
pub mod http;
pub mod kserve;

pub use app::server::{start, RunningServer};
pub use app::settings::Settings;
