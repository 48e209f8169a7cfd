//! burnserve: an actor-based multi-model inference server (actix + burn).
//!
//! # Layout
//! - [`settings`] — typed, validated settings from `config/*.toml` and the environment.
//! - [`server`] — start-up (registry, actors, model loading) and the actix-web server.
//! - [`api`] — HTTP routes: simple predict, KServe v2, health; JSON errors.
//! - [`telemetry`] — logging.
//!
//! The serving runtime lives in `burnserve-actors`; models and burn in `burnserve-models`.

pub mod api;
pub mod server;
pub mod settings;
pub mod telemetry;

pub use server::{start, RunningServer};
pub use settings::Settings;
