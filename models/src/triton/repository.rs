//! The repository's models as the control plane sees them: each model directory, how it is
//! described (Triton's `config.pbtxt`, auto-completed from `<version>/model.onnx` alone, or
//! our `model.toml` per version), the versions on disk, the versions a repository load serves
//! (Triton's `version_policy`: latest 1 by default) or why none can be, and a fingerprint of
//! each version's files for the poll mode. Also the one entry point a load uses to read a
//! version's spec, whichever the description.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use super::config::{self, TritonConfig, CONFIG_FILE};
use super::pb;
use crate::device::Device;
use crate::error::ModelError;
use crate::jail::Jail;
use crate::spec::{ModelSpec, SPEC_FILE};

/// How a model directory describes its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Description {
    /// `config.pbtxt` beside numeric version directories.
    TritonConfig,
    /// Numeric version directories holding `model.onnx` alone (Triton's auto-complete).
    AutoComplete,
    /// A `model.toml` per version (burnserve's own layout), or a mix.
    ModelToml,
}

/// One model directory.
#[derive(Debug, Clone)]
pub struct RepoModel {
    pub name: String,
    pub description: Description,
    /// Version directories on disk a load would look at, sorted.
    pub on_disk: Vec<String>,
    /// The versions a repository load serves, or why the model cannot be served.
    pub serves: Result<Vec<String>, String>,
    /// The device `config.pbtxt` asks for.
    pub device: Option<Device>,
    /// A fingerprint of each version's files and the model's own (config, labels).
    pub fingerprints: BTreeMap<String, u64>,
}

impl RepoModel {
    /// Whether versions follow Triton's rules (numeric, a version policy, the latest is the
    /// default).
    pub fn is_triton(&self) -> bool {
        self.description != Description::ModelToml
    }

    /// The version requests without one go to: the highest served, as Triton does.
    pub fn default_version(&self) -> Option<String> {
        let served = self.serves.as_ref().ok()?;
        if self.is_triton() {
            served.iter().max_by_key(|v| v.parse::<u64>().ok()).cloned()
        } else {
            None
        }
    }
}

/// The spec of `model`/`version` whose directory is `version_dir`: from `config.pbtxt` when
/// the model has one, else from `model.toml` or the lone `model.onnx`.
pub fn version_spec(jail: &Jail, model: &str, version_dir: &Path) -> Result<ModelSpec, ModelError> {
    let model_dir = version_dir
        .parent()
        .ok_or_else(|| ModelError::Load("a version directory has a model directory".into()))?;
    match config::read(jail, model_dir, model)? {
        Some(triton) => super::mapping::version_spec(&triton, jail, model_dir, version_dir),
        None => crate::onnx::version_spec(jail, version_dir),
    }
}

/// The device `config.pbtxt` of `model` asks for (`None` without one or when it is broken:
/// the load then says why).
pub fn configured_device(jail: &Jail, model: &str) -> Option<Device> {
    let dir = jail
        .model_dirs()
        .into_iter()
        .find(|(name, _)| name == model)?
        .1;
    config::read(jail, &dir, model)
        .ok()
        .flatten()
        .map(|c| c.device)
}

/// Every model directory of the repository.
pub fn scan(jail: &Jail) -> Vec<RepoModel> {
    jail.model_dirs()
        .into_iter()
        .filter_map(|(name, dir)| describe(jail, name, &dir))
        .collect()
}

/// One model directory; `None` when it holds no version and no configuration.
fn describe(jail: &Jail, name: String, dir: &Path) -> Option<RepoModel> {
    let has_file = |d: &Path, file: &str| jail.file(d, "file", file).is_ok();
    // Present in any form: a link out of the repository makes the model unavailable, it does
    // not turn it into an auto-completed one.
    let has_config = std::fs::symlink_metadata(dir.join(CONFIG_FILE)).is_ok();
    let versions = jail.version_dirs(dir);
    let own_files = fingerprint_files(dir, 1, 0);
    let fingerprints = versions
        .iter()
        .map(|(v, d)| (v.clone(), fingerprint_files(d, 4, own_files)))
        .collect();
    let numeric = |v: &str| v.parse::<u64>().is_ok();
    if has_config {
        let on_disk: Vec<String> = versions
            .iter()
            .map(|(v, _)| v.clone())
            .filter(|v| numeric(v))
            .collect();
        let (serves, device) = match config::read(jail, dir, &name) {
            Ok(Some(triton)) => (Ok(policy(&triton, &on_disk)), Some(triton.device)),
            Ok(None) => (Err(format!("{CONFIG_FILE} disappeared")), None),
            Err(ModelError::Load(why)) => (Err(why), None),
            Err(e) => (Err(e.to_string()), None),
        };
        let serves = serves.and_then(|v| {
            if v.is_empty() {
                Err(format!("no version directory the version policy of {CONFIG_FILE} serves (numeric directories: {})", listed(&on_disk)))
            } else {
                Ok(v)
            }
        });
        return Some(RepoModel {
            name,
            description: Description::TritonConfig,
            on_disk,
            serves,
            device,
            fingerprints,
        });
    }
    let with = |file: &str| -> Vec<String> {
        versions
            .iter()
            .filter(|(_, d)| has_file(d, file))
            .map(|(v, _)| v.clone())
            .collect()
    };
    let (tomls, onnx) = (with(SPEC_FILE), with(crate::onnx::DEFAULT_FILE));
    if tomls.is_empty() && onnx.is_empty() {
        return None;
    }
    if tomls.is_empty() && onnx.iter().all(|v| numeric(v)) {
        let latest = onnx
            .iter()
            .max_by_key(|v| v.parse::<u64>().unwrap_or(0))
            .cloned();
        return Some(RepoModel {
            name,
            description: Description::AutoComplete,
            serves: Ok(latest.into_iter().collect()),
            on_disk: onnx,
            device: None,
            fingerprints,
        });
    }
    let mut on_disk: Vec<String> = tomls.into_iter().chain(onnx).collect();
    on_disk.sort();
    on_disk.dedup();
    Some(RepoModel {
        name,
        description: Description::ModelToml,
        serves: Ok(on_disk.clone()),
        on_disk,
        device: None,
        fingerprints,
    })
}

fn listed(versions: &[String]) -> String {
    if versions.is_empty() {
        "none".into()
    } else {
        versions.join(", ")
    }
}

/// The numeric versions on disk `version_policy` serves (Triton's default: the latest one).
pub fn policy(triton: &TritonConfig, on_disk: &[String]) -> Vec<String> {
    use pb::model_version_policy::PolicyChoice;
    let mut numbered: Vec<(u64, &String)> = on_disk
        .iter()
        .filter_map(|v| Some((v.parse().ok()?, v)))
        .collect();
    numbered.sort();
    let choice = triton
        .parsed
        .config
        .version_policy
        .as_ref()
        .and_then(|p| p.policy_choice.clone());
    let chosen: Vec<&String> = match choice {
        None => numbered.iter().rev().take(1).map(|(_, v)| *v).collect(),
        Some(PolicyChoice::Latest(latest)) => numbered
            .iter()
            .rev()
            .take(latest.num_versions as usize)
            .map(|(_, v)| *v)
            .collect(),
        Some(PolicyChoice::All(_)) => numbered.iter().map(|(_, v)| *v).collect(),
        Some(PolicyChoice::Specific(specific)) => numbered
            .iter()
            .filter(|(n, _)| specific.versions.iter().any(|&s| s as u64 == *n))
            .map(|(_, v)| *v)
            .collect(),
    };
    let mut chosen: Vec<String> = chosen.into_iter().cloned().collect();
    chosen.sort_by_key(|v| v.parse::<u64>().unwrap_or(0));
    chosen
}

/// Most directory entries one fingerprint looks at.
const MAX_FINGERPRINT_ENTRIES: usize = 4096;

/// A hash of the names, sizes and modification times of the files below `dir` (to `depth`
/// levels, at most [`MAX_FINGERPRINT_ENTRIES`] entries), seeded with `seed`.
fn fingerprint_files(dir: &Path, depth: usize, seed: u64) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut hasher);
    let mut seen = 0usize;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((current, level)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            seen += 1;
            if seen > MAX_FINGERPRINT_ENTRIES {
                return hasher.finish();
            }
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                // Directories past the depth (a model's versions, seen from the model) are
                // not part of the fingerprint.
                if level + 1 < depth {
                    entry.file_name().hash(&mut hasher);
                    stack.push((entry.path(), level + 1));
                }
                continue;
            }
            entry.file_name().hash(&mut hasher);
            meta.len().hash(&mut hasher);
            if let Ok(modified) = meta.modified() {
                modified.hash(&mut hasher);
            }
        }
    }
    hasher.finish()
}
