//! The repository jail: every path a load reads (model directory, version directory,
//! `model.toml`, each file it names) is resolved one component at a time and refused when a
//! symbolic link leads out of the canonical repository root (or, with `repository.symlinks =
//! "none"`, when any link is met), with one message whatever lies outside; and the scan of the
//! repository, which lists only the versions a load would accept.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::spec::{is_valid_name, SPEC_FILE};

/// `repository.symlinks`: which symbolic links below the repository root a load follows. The
/// root itself may be a link (the operator named it); links below it are judged here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Symlinks {
    /// Links whose target resolves inside the repository root: Kubernetes ConfigMap and volume
    /// mounts (`..data -> ..2024_…`), weights shared between versions. Any other is refused.
    #[default]
    Inside,
    /// No link at all below the root.
    None,
}

impl std::fmt::Display for Symlinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Symlinks::Inside => "inside",
            Symlinks::None => "none",
        })
    }
}

/// Why a path was not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// A component does not exist: said only of names lexically inside a directory already
    /// resolved inside the root, so it reveals nothing outside.
    Missing,
    /// A link leads outside the root, or nowhere (one answer for both).
    Outside,
    /// A link, and `Symlinks::None`.
    Link,
}

/// A repository root, canonical, and its link policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jail {
    root: PathBuf,
    symlinks: Symlinks,
}

impl Jail {
    /// The jail of the repository at `root` (resolved once here).
    pub fn open(root: &Path, symlinks: Symlinks) -> Result<Self, ModelError> {
        let root = root.canonicalize().map_err(|e| {
            ModelError::Load(format!(
                "the model repository {} cannot be opened: {e}",
                root.display()
            ))
        })?;
        Ok(Self { root, symlinks })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn symlinks(&self) -> Symlinks {
        self.symlinks
    }

    /// `base` (canonical, inside the root) joined with `parts`, each followed only when it is
    /// not a link or a link this jail accepts; the result is canonical and inside the root.
    fn resolve<'a>(
        &self,
        base: &Path,
        parts: impl IntoIterator<Item = &'a std::ffi::OsStr>,
    ) -> Result<PathBuf, Refusal> {
        let mut current = base.to_path_buf();
        for part in parts {
            let next = current.join(part);
            let metadata = std::fs::symlink_metadata(&next).map_err(|_| Refusal::Missing)?;
            if !metadata.file_type().is_symlink() {
                current = next;
                continue;
            }
            if self.symlinks == Symlinks::None {
                return Err(Refusal::Link);
            }
            match next.canonicalize() {
                Ok(real) if real.starts_with(&self.root) => current = real,
                _ => return Err(Refusal::Outside),
            }
        }
        Ok(current)
    }

    /// The version directory `<root>/<model>/<version>`, canonical: `Ok(None)` when it is not
    /// in the repository (or is not a directory); an error when a link on the way leads out of
    /// the root (or is refused by `Symlinks::None`), the same whether its target exists or not.
    pub fn version_dir(&self, model: &str, version: &str) -> Result<Option<PathBuf>, ModelError> {
        if !is_valid_name(model) || !is_valid_name(version) {
            return Err(ModelError::Load(
                "model and version names must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}".into(),
            ));
        }
        let parts = [model, version].map(std::ffi::OsStr::new);
        match self.resolve(&self.root, parts) {
            Ok(dir) if dir.is_dir() => Ok(Some(dir)),
            Ok(_) | Err(Refusal::Missing) => Ok(None),
            Err(Refusal::Outside) => Err(ModelError::Load(format!(
                "model '{model}' version '{version}': a symbolic link on the way to the version \
                 directory leads outside the model repository; refused"
            ))),
            Err(Refusal::Link) => Err(ModelError::Load(format!(
                "model '{model}' version '{version}': the version directory is reached through a \
                 symbolic link, which repository.symlinks = \"none\" refuses"
            ))),
        }
    }

    /// Resolves `name`, the file `model.toml` names in `field`, inside the version directory
    /// `dir`: a relative path of plain components (no absolute path, no `..`), whose links stay
    /// inside the repository root. Every way out (absolute, `..`, a link outside or to nothing)
    /// gets one message, so the answer never tells whether a path outside exists.
    pub fn file(&self, dir: &Path, field: &str, name: &str) -> Result<PathBuf, ModelError> {
        let jailed = || {
            ModelError::Load(format!(
                "`{field}` must name a file inside the version directory (symbolic links may \
                 lead only inside the model repository)"
            ))
        };
        let relative = Path::new(name);
        if name.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(jailed());
        }
        let dir = dir.canonicalize().map_err(|_| jailed())?;
        if !dir.starts_with(&self.root) {
            return Err(jailed());
        }
        let parts = relative.components().map(Component::as_os_str);
        match self.resolve(&dir, parts) {
            Ok(path) if path.is_file() => Ok(path),
            Ok(_) => Err(ModelError::Load(format!(
                "`{field}` '{name}' is not a file"
            ))),
            Err(Refusal::Missing) => Err(ModelError::Load(format!(
                "`{field}` file '{name}' is missing from the version directory"
            ))),
            Err(Refusal::Outside) => Err(jailed()),
            Err(Refusal::Link) => Err(ModelError::Load(format!(
                "`{field}` file '{name}' is reached through a symbolic link, which \
                 repository.symlinks = \"none\" refuses"
            ))),
        }
    }

    /// Every model directory of the repository (valid name, reached without a refused link),
    /// with its canonical path, sorted by name.
    pub fn model_dirs(&self) -> Vec<(String, PathBuf)> {
        self.subdirs(&self.root)
    }

    /// The subdirectories of `model_dir` (validly named, reached without a refused link),
    /// sorted by name.
    pub fn version_dirs(&self, model_dir: &Path) -> Vec<(String, PathBuf)> {
        self.subdirs(model_dir)
    }

    fn subdirs(&self, base: &Path) -> Vec<(String, PathBuf)> {
        let mut found: Vec<(String, PathBuf)> = valid_entries(base)
            .into_iter()
            .filter_map(|name| {
                let dir = self.resolve(base, [std::ffi::OsStr::new(&name)]).ok()?;
                dir.is_dir().then_some((name, dir))
            })
            .collect();
        found.sort();
        found
    }

    /// Every `(model, version)` of the repository whose directories and `model.toml` a load
    /// would accept (valid names, no refused link on the way to `model.toml`), sorted. The
    /// files `model.toml` names are judged by the load itself.
    pub fn scan(&self) -> Vec<(String, String)> {
        let entries = valid_entries;
        let mut found = Vec::new();
        for model in entries(&self.root) {
            let Ok(model_dir) = self.resolve(&self.root, [std::ffi::OsStr::new(&model)]) else {
                continue;
            };
            if !model_dir.is_dir() {
                continue;
            }
            for version in entries(&model_dir) {
                // A version is its `model.toml`, or a lone `model.onnx`.
                let has = |file: &str| {
                    let parts = [version.as_str(), file].map(std::ffi::OsStr::new);
                    self.resolve(&model_dir, parts)
                        .is_ok_and(|path| path.is_file())
                };
                if has(SPEC_FILE) || has(crate::onnx::DEFAULT_FILE) {
                    found.push((model.clone(), version));
                }
            }
        }
        found.sort();
        found
    }
}

/// The validly named entries of `dir` (none when it cannot be read).
fn valid_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_valid_name(n))
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves `name` (field `field` of `model.toml`) inside the version directory `dir`, with
/// `dir` itself as the jail's root: absolute paths, `..`, and links leaving `dir` are refused
/// with one message (see [`Jail::file`]).
pub fn file_in(dir: &Path, field: &str, name: &str) -> Result<PathBuf, ModelError> {
    Jail::open(dir, Symlinks::Inside)
        .map_err(|_| {
            ModelError::Load(format!(
                "`{field}` must name a file inside the version directory"
            ))
        })?
        .file(dir, field, name)
}

/// Every `(model, version)` of the repository at `root` that holds a `model.toml` reached
/// without leaving the root, sorted (see [`Jail::scan`]).
pub fn scan_repository(root: &Path) -> Vec<(String, String)> {
    Jail::open(root, Symlinks::Inside)
        .map(|jail| jail.scan())
        .unwrap_or_default()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// `<tmp>/repo/m/1/{model.toml,w}` and `<tmp>/outside/x/1/{model.toml,w}`.
    fn layout(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let base =
            std::env::temp_dir().join(format!("burnserve-jail-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (repo, outside) = (base.join("repo"), base.join("outside"));
        for dir in [repo.join("m/1"), outside.join("x/1")] {
            std::fs::create_dir_all(&dir).expect("dirs");
            std::fs::write(dir.join(SPEC_FILE), b"architecture = 'x'").expect("toml");
            std::fs::write(dir.join("w"), b"w").expect("weights");
        }
        (base, repo, outside)
    }

    #[test]
    fn files_stay_inside_with_one_answer_for_every_way_out() {
        let (base, repo, outside) = layout("files");
        let jail = Jail::open(&repo, Symlinks::Inside).expect("jail");
        let dir = repo.join("m/1");
        assert_eq!(
            jail.file(&dir, "weights", "w").expect("inside"),
            dir.join("w").canonicalize().expect("canonical")
        );
        let refusal = |name: &str| jail.file(&dir, "weights", name).unwrap_err().to_string();
        let jailed = refusal("/etc/passwd");
        assert!(jailed.contains("inside the version directory"), "{jailed}");
        symlink(outside.join("x/1/w"), dir.join("to-outside")).expect("link");
        symlink(outside.join("gone"), dir.join("to-gone")).expect("link");
        symlink(outside.join("x"), dir.join("dir-out")).expect("link");
        for way_out in [
            "/etc/no-such-file",
            "../../../outside/x/1/w",
            "../../../outside/gone",
            "",
            "./w",
            "to-outside",
            "to-gone",
            "dir-out/1/w",
            "dir-out/1/absent",
        ] {
            assert_eq!(refusal(way_out), jailed, "{way_out}");
        }
        // Missing inside: said, as nothing outside is involved.
        assert!(refusal("absent").contains("missing"));
        // A link inside the repository (weights shared with another version) is followed.
        std::fs::create_dir_all(repo.join("m/2")).expect("v2");
        symlink("../1/w", repo.join("m/2/shared")).expect("link");
        assert_eq!(
            jail.file(&repo.join("m/2"), "weights", "shared")
                .expect("shared"),
            dir.join("w").canonicalize().expect("canonical")
        );
        // file_in keeps its old jail: the version directory itself.
        assert_eq!(
            file_in(&repo.join("m/2"), "weights", "shared")
                .unwrap_err()
                .to_string(),
            file_in(&repo.join("m/2"), "weights", "/etc/passwd")
                .unwrap_err()
                .to_string()
        );
        // "none" refuses every link, naming the setting, whatever its target.
        let strict = Jail::open(&repo, Symlinks::None).expect("jail");
        for name in ["to-outside", "to-gone"] {
            let err = strict.file(&dir, "weights", name).unwrap_err().to_string();
            assert!(err.contains("repository.symlinks = \"none\""), "{err}");
        }
        let err = strict
            .file(&repo.join("m/2"), "weights", "shared")
            .unwrap_err()
            .to_string();
        assert!(err.contains("repository.symlinks"), "{err}");
        assert!(strict.file(&dir, "weights", "w").is_ok());
        std::fs::remove_dir_all(base).expect("clean up");
    }

    #[test]
    fn model_and_version_directories_cannot_lead_out() {
        let (base, repo, outside) = layout("dirs");
        symlink(outside.join("x"), repo.join("evil")).expect("model link out");
        symlink(outside.join("nothing-here"), repo.join("ghost")).expect("dangling link");
        symlink(outside.join("x/1"), repo.join("m/9")).expect("version link out");
        symlink(outside.join("x/404"), repo.join("m/8")).expect("dangling version link");
        symlink("m", repo.join("alias")).expect("model link inside");
        symlink("1", repo.join("m/7")).expect("version link inside");
        let jail = Jail::open(&repo, Symlinks::Inside).expect("jail");
        let refused = |model: &str, version: &str| {
            jail.version_dir(model, version)
                .unwrap_err()
                .to_string()
                .replace(&format!("model '{model}' version '{version}'"), "M")
        };
        let answer = refused("evil", "1");
        assert!(answer.contains("outside the model repository"), "{answer}");
        assert_eq!(refused("ghost", "1"), answer);
        assert_eq!(refused("evil", "no-such-version"), answer);
        assert_eq!(refused("m", "9"), answer);
        assert_eq!(refused("m", "8"), answer);
        let canonical = repo.join("m/1").canonicalize().expect("canonical");
        assert_eq!(
            jail.version_dir("m", "1").expect("ok"),
            Some(canonical.clone())
        );
        assert_eq!(
            jail.version_dir("alias", "1").expect("ok"),
            Some(canonical.clone())
        );
        assert_eq!(jail.version_dir("m", "7").expect("ok"), Some(canonical));
        assert_eq!(jail.version_dir("m", "404").expect("ok"), None);
        assert_eq!(jail.version_dir("nobody", "1").expect("ok"), None);
        assert_eq!(
            jail.scan(),
            [("alias", "1"), ("alias", "7"), ("m", "1"), ("m", "7")]
                .map(|(m, v)| (m.to_string(), v.to_string()))
                .to_vec()
        );
        let strict = Jail::open(&repo, Symlinks::None).expect("jail");
        for (model, version) in [("alias", "1"), ("m", "7"), ("evil", "1")] {
            let err = strict.version_dir(model, version).unwrap_err().to_string();
            assert!(err.contains("repository.symlinks = \"none\""), "{err}");
        }
        assert_eq!(strict.scan(), vec![("m".to_string(), "1".to_string())]);
        // The root itself may be a link.
        symlink(&repo, base.join("root-link")).expect("root link");
        let linked = Jail::open(&base.join("root-link"), Symlinks::None).expect("jail");
        assert_eq!(linked.scan(), strict.scan());
        std::fs::remove_dir_all(base).expect("clean up");
    }
}
