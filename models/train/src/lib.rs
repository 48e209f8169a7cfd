//! burnserve-train: everything the bundled models need to be trained, kept out of the server's
//! dependency graph (indicatif, rand, flate2, clap live here only).
//!
//! # Layout
//! - [`datasets`] — Fashion-MNIST read from the IDX files of Debian's `dataset-fashion-mnist`.
//! - [`train`] — the training loop (Adam, cross-entropy) and held-out accuracy.
//! - `bin/train.rs` — the `train` command that writes a version into the model repository.

pub mod datasets;
pub mod train;
