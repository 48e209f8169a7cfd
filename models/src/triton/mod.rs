//! Triton's model repository, served unchanged: `<repo>/<model>/config.pbtxt` (Triton's model
//! configuration, `schema`) over `<version>/model.onnx` files, mapped onto our own settings
//! (`config`), the versions a model's `version_policy` serves (`policy`), and the repository's
//! models as the control plane sees them (`repository`).

pub mod pbtxt;
pub mod schema;

pub use schema::{pb, Located, Parsed};
pub mod config;
pub mod mapping;

pub use config::{TritonConfig, CONFIG_FILE};
pub mod repository;

pub use repository::{scan, version_spec, Description, RepoModel};
pub mod effective;

pub use effective::effective_config;
