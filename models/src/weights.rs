//! Weight files: safetensors read into and written from burn modules through burn-store.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::error::ModelError;

/// Loads every parameter of `module` from a safetensors file. A missing file, a tensor the
/// module needs but the file lacks, a wrong shape, or a tensor the module does not use is an
/// error: a version never serves with half its weights.
pub fn load_safetensors<B: Backend, M: Module<B>>(
    module: &mut M,
    path: &Path,
) -> Result<(), ModelError> {
    load_safetensors_with(module, path, &LoadOptions::default())
}

/// How a file written by another framework maps onto a burn module.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// PyTorch layout: Linear weights `[out, in]`, norm parameters `weight`/`bias`.
    pub from_pytorch: bool,
    /// `(regex, replacement)` applied in order to the file's tensor names.
    pub remap: Vec<(&'static str, &'static str)>,
    /// Prefixes of file tensors the module does not need (not an error when unused).
    pub ignore_unused: Vec<&'static str>,
}

/// [`load_safetensors`] with renaming and layout conversion; still strict about anything the
/// module needs and about unused tensors not listed in `ignore_unused`.
pub fn load_safetensors_with<B: Backend, M: Module<B>>(
    module: &mut M,
    path: &Path,
    options: &LoadOptions,
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
    if options.from_pytorch {
        store = store.with_from_adapter(PyTorchToBurnAdapter);
    }
    if !options.remap.is_empty() {
        let remapper = KeyRemapper::from_patterns(options.remap.clone())
            .map_err(|e| ModelError::Load(format!("bad key pattern: {e}")))?;
        store = store.remap(remapper);
    }
    let result = module
        .load_from(&mut store)
        .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
    // The store holds the file's bytes: free them before any copy below.
    drop(store);
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(ModelError::Load(format!(
            "{}: {}",
            path.display(),
            errors.join("; ")
        )));
    }
    if options.from_pytorch {
        // The adapter hands Linear weights over as transposed views; copy them into row-major
        // buffers once here, or every forward pass copies them again.
        *module = module.clone().map(&mut Contiguous);
    }
    let unused: Vec<&String> = result
        .unused
        .iter()
        .filter(|name| !options.ignore_unused.iter().any(|p| name.starts_with(p)))
        .collect();
    if !unused.is_empty() {
        return Err(ModelError::Load(format!(
            "{}: tensors the architecture does not use: {}",
            path.display(),
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
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

/// Rewrites every float parameter as a fresh row-major tensor.
struct Contiguous;

impl<B: Backend> ModuleMapper<B> for Contiguous {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|tensor| {
            let device = tensor.device();
            Tensor::from_data(tensor.into_data(), &device)
        })
    }
}
