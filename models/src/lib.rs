//! burnserve-models: the only crate where burn types appear.
//!
//! # Layout
//! - [`spec`] — `model.toml`, the description of one model version (architecture, I/O schema,
//!   batching and timeout settings), read and validated.
//! - [`device`] — where a version runs (`cpu`, `cuda:N`).
//! - [`input`] — what crosses the seam: [`InputData`] (FP32 values or BYTES text) in,
//!   [`ModelOutput`] (FP32 values, tokens per row for text models) out.
//! - [`model`] — the [`InferenceModel`] seam the actors see (plain data in and out) and
//!   [`load_model`], which builds the right architecture on the right backend.
//! - [`arch`] — burn architectures, one module each.
//! - [`weights`] — safetensors loading and saving through burn-store.
//! - [`pipeline`] — the request stages around `forward`: validate (shape, finiteness) and
//!   postprocess (top-k labels).
//! - `fakes` (feature `test-util`): echo, slow, panicking and failing models for tests and benches.

pub mod arch;
pub mod datasets;
pub mod device;
pub mod error;
#[cfg(feature = "test-util")]
pub mod fakes;
pub mod input;
pub mod model;
pub mod pipeline;
pub mod spec;
pub mod train;
pub mod weights;

pub use device::Device;
pub use error::ModelError;
pub use input::{InputData, ModelOutput, BYTES, FP32};
pub use model::{load_model, InferenceModel};
pub use pipeline::{prepare_input, top_k, validate_input, Prediction, RequestInput, UINT8};
pub use spec::{ModelSpec, TensorSpec};
