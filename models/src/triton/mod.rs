//! Triton's model repository, served unchanged: `<repo>/<model>/config.pbtxt` (Triton's model
//! configuration: parsed in `schema`, located in `pbtxt`, checked in `config`) over
//! `<version>/model.onnx` files, mapped onto our own version specs against each graph
//! (`mapping`, `warmup`), the repository's models, version policies and fingerprints as the
//! control plane sees them (`repository`), and the effective configuration served back
//! (`effective`).

pub mod config;
pub mod effective;
pub mod mapping;
pub mod pbtxt;
pub mod repository;
pub mod schema;
pub mod warmup;

pub use config::{TritonConfig, CONFIG_FILE};
pub use effective::effective_config;
pub use repository::{scan, version_spec, Description, RepoModel};
pub use schema::{pb, Located, Parsed};
