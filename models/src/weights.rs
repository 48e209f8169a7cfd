//! Weight files: safetensors read into and written from burn modules through burn-store.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, SafetensorsStore};

use crate::error::ModelError;

/// Loads every parameter of `module` from a safetensors file. A missing file, a tensor the
/// module needs but the file lacks, a wrong shape, or a tensor the module does not use is an
/// error: a version never serves with half its weights.
pub fn load_safetensors<B: Backend, M: Module<B>>(
    module: &mut M,
    path: &Path,
) -> Result<(), ModelError> {
    if !path.is_file() {
        return Err(ModelError::Load(format!(
            "weights file {} not found",
            path.display()
        )));
    }
    let mut store = SafetensorsStore::from_file(path)
        .validate(true)
        .allow_partial(false);
    let result = module
        .load_from(&mut store)
        .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(ModelError::Load(format!(
            "{}: {}",
            path.display(),
            errors.join("; ")
        )));
    }
    if !result.unused.is_empty() {
        return Err(ModelError::Load(format!(
            "{}: tensors the architecture does not use: {}",
            path.display(),
            result.unused.join(", ")
        )));
    }
    Ok(())
}

/// Writes every parameter of `module` to a safetensors file (replacing it).
pub fn save_safetensors<B: Backend, M: Module<B>>(
    module: &M,
    path: &Path,
) -> Result<(), ModelError> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| ModelError::Load(format!("cannot write {}: {e}", path.display())))
}
