//! The process around the listeners: typed settings, start-up and wiring, the graceful drain,
//! process limits, the heap, logging, GPU memory gauges.
//!
//! - [`settings`] — typed, validated settings from `config/*.toml` and the environment.
//! - [`server`] — start-up (registry, actors, model loading) and the HTTP and gRPC servers.
//! - [`shutdown`] — the graceful drain on SIGTERM/SIGINT.
//! - [`limits`] — process limits raised at start.
//! - [`repository`] — the model repository at start-up by control mode, and the poll.
//! - [`heap`] — the allocator's free memory handed back, and its figures.
//! - [`telemetry`] — logging.
//! - [`gpu_metrics`] — GPU memory gauges read at scrape (`cuda` builds).

pub mod gpu_metrics;
pub mod heap;
pub mod limits;
pub mod repository;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
