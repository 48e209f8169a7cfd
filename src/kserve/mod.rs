//! The KServe v2 / Open Inference Protocol core, protocol-neutral: HTTP JSON, HTTP binary and
//! gRPC are thin adapters over it that only read and write their wire formats, so the same
//! request gets the same answer and the same `error_type` on each.
//!
//! - [`request`]: inputs decoded (datatype, shape, raw bytes, typed contents, JSON), outputs
//!   asked for, `parameters.timeout`, with their bounds. The check against the model's
//!   signature follows in the runtime (`burnserve_models::pipeline`), for every protocol alike.
//! - [`json`]: a tensor's JSON `data` read as its datatype, and written back.
//! - [`response`]: which outputs a response gives, in which order, as JSON or binary.
//! - [`documents`]: server and model metadata, model configuration.
//! - [`stats`]: the statistics extension.
//!
//! It depends on the runtime's types only (`burnserve-actors`, `burnserve-models`), never on
//! the HTTP or gRPC modules.

pub mod classify;
pub mod documents;
pub mod json;
pub mod request;
pub mod response;
pub mod stats;
