//! burnserve-models: the only crate where burn types appear.
//!
//! # Layout
//! - [`spec`] — `model.toml`, the description of one model version (architecture, I/O schema,
//!   batching and timeout settings, value ranges, file digests), read and validated.
//! - [`jail`] — the repository jail: every path a load reads resolved inside the canonical
//!   repository root (`repository.symlinks`), and the repository scan.
//! - [`digest`] — SHA-256 of files and the pinning rule (`sha256`, `[files]`).
//! - [`header`] — a safetensors file's header (names, dtypes, shapes) without its data.
//! - [`load`] — what one load may read and spend: limits, the deadline and cancel flag, the
//!   memory estimate, and the `LoadContext` architectures read their files through.
//! - [`device`] — where a version runs (`cpu`, `cuda:N`).
//! - [`tensor`] — typed tensors: [`DataType`] (every KServe v2 datatype), [`TensorData`],
//!   [`NamedTensor`], and their little-endian wire form.
//! - [`input`] — what a request gives ([`RequestInput`]: tensors, named or not) and what a
//!   forward pass gives back ([`ModelOutput`]: named tensors, tokens per row for text models).
//! - [`error`] — [`ErrorType`], the one table of error kinds every crate maps to, and
//!   [`ModelError`].
//! - [`model`] — the [`InferenceModel`] seam the actors see (named, typed tensors in and out).
//! - [`arch`] — burn architectures, one module each, and their registry: [`load_model`] builds
//!   the architecture a spec names on the right backend.
//! - [`onnx`] — the user's own ONNX files: checked, parsed with onnx-ir, planned and run on
//!   burn tensors at run time (architecture `onnx`).
//! - [`weights`] — safetensors loading and saving through burn-store.
//! - [`pipeline`] — the request stage before `forward`, the same for every protocol: the
//!   request's tensors checked against the signature (names, datatypes, shapes with variable
//!   dimensions, counts, rows, the values an input asks to check), UINT8 pixels scaled.
//! - `fakes` (feature `test-util`): echo, slow, panicking and failing models for tests and benches.
//! - `testdata` (feature `test-util`): tests that need installed data fail naming the installer.
//!
//! Training and datasets live in the `burnserve-train` crate (`models/train/`), outside the
//! server's dependency graph.

pub mod arch;
pub mod device;
pub mod digest;
pub mod error;
#[cfg(feature = "test-util")]
pub mod fakes;
pub mod gpu;
pub mod header;
pub mod input;
pub mod jail;
pub mod load;
pub mod model;
pub mod onnx;
pub mod pipeline;
pub mod spec;
pub mod tensor;
#[cfg(feature = "test-util")]
pub mod testdata;
pub mod triton;
pub mod weights;

pub use arch::{load_model, load_version};
pub use device::Device;
pub use error::{ErrorType, ModelError};
pub use input::{take_f32, take_texts, ModelOutput, RequestInput, RequestTensor};
pub use jail::{Jail, Symlinks};
pub use load::{Cancel, LoadBudget, LoadContext, LoadLimits, MemoryEstimate};
pub use model::{forward_f32, forward_texts, InferenceModel};
pub use pipeline::{
    check_outputs, check_requested_outputs, prepare_input, warm_up_inputs, Prepared, UINT8,
};
pub use spec::{Instances, ModelSpec, TensorSpec, Threads, MAX_TENSORS};
pub use tensor::{DataType, NamedTensor, TensorData};
