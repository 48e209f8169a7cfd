//! SHA-256 digests of a version's files and the pinning rule: `sha256` in `model.toml` pins the
//! weights file, `[files]` pins any file by the name `model.toml` gives it; a version that pins
//! anything must pin every file it reads, and every pinned file is checked at every load.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::spec::ModelSpec;

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of some bytes, as lowercase hex.
pub fn sha256_of_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of a file, as lowercase hex, read in 1 MiB pieces.
pub fn sha256_of(path: &Path) -> Result<String, ModelError> {
    sha256_of_checked(path, &mut || Ok(()))
}

/// [`sha256_of`], calling `between` before each piece (a load's deadline check: hashing a
/// large file stops when the load is cancelled).
pub fn sha256_of_checked(
    path: &Path,
    between: &mut dyn FnMut() -> Result<(), ModelError>,
) -> Result<String, ModelError> {
    let unreadable =
        |e: std::io::Error| ModelError::Load(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        between()?;
        let read = file.read(&mut buffer).map_err(unreadable)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Whether `text` is a SHA-256 in hex (64 digits, either case).
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ModelSpec {
    /// Whether `model.toml` pins any file (`sha256`, or an entry of `[files]`): then every file
    /// the version reads must be pinned.
    pub fn is_pinned(&self) -> bool {
        self.sha256.is_some() || !self.files.is_empty()
    }

    /// The digest `model.toml` pins for the file it names `name`: `[files]`, or `sha256` for
    /// the weights file.
    pub fn pin_of(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str).or_else(|| {
            (self.weights.as_deref() == Some(name))
                .then_some(self.sha256.as_deref())
                .flatten()
        })
    }

    /// Checks the digest of the file `name` (field `field`), computed by `actual`, against its
    /// pin; a pinned version without a pin for it fails, naming the file and the fix.
    pub fn verify_pin(
        &self,
        field: &str,
        name: &str,
        actual: impl FnOnce() -> Result<String, ModelError>,
    ) -> Result<(), ModelError> {
        match self.pin_of(name) {
            Some(expected) => {
                let actual = actual()?;
                if actual.eq_ignore_ascii_case(expected) {
                    Ok(())
                } else {
                    Err(ModelError::Load(format!(
                        "`{field}` file '{name}' has sha256 {actual}; model.toml expects {}",
                        expected.to_ascii_lowercase()
                    )))
                }
            }
            None if self.is_pinned() => Err(ModelError::Load(format!(
                "`{field}` file '{name}' has no pinned digest: model.toml pins files (sha256 or \
                 [files]), so every file the version reads needs one; add \
                 \"{name}\" = \"<its sha256>\" under [files]"
            ))),
            None => Ok(()),
        }
    }

    /// The `sha256` and `[files]` keys, checked at validation: 64 hex digits each.
    pub(crate) fn validate_pins(&self) -> Result<(), ModelError> {
        if let Some(sha256) = &self.sha256 {
            if !is_sha256(sha256) {
                return Err(ModelError::Load(
                    "sha256 must be 64 hexadecimal digits".into(),
                ));
            }
            if self.weights.is_none() {
                return Err(ModelError::Load("sha256 needs a weights file".into()));
            }
        }
        for (name, digest) in &self.files {
            if !is_sha256(digest) {
                return Err(ModelError::Load(format!(
                    "files.\"{name}\" must be a sha256 of 64 hexadecimal digits"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn spec(extra: &str) -> Result<ModelSpec, ModelError> {
        ModelSpec::from_toml(&format!(
            "architecture = \"mlp\"\nweights = \"w.safetensors\"\n{extra}\n\
             [input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [2]"
        ))
    }

    #[test]
    fn pinned_versions_pin_every_file_they_read() {
        assert_eq!(sha256_of_bytes(b"abc"), ABC);
        let ok = || Ok(ABC.to_string());
        // Unpinned: nothing is checked.
        let open = spec("").expect("spec");
        assert!(!open.is_pinned());
        assert!(open.verify_pin("params.config", "config.json", ok).is_ok());
        // The weights pinned: a match passes (either case), a mismatch names both digests.
        let pinned = spec(&format!("sha256 = \"{}\"", ABC.to_uppercase())).expect("spec");
        assert!(pinned.verify_pin("weights", "w.safetensors", ok).is_ok());
        let err = pinned
            .verify_pin("weights", "w.safetensors", || Ok("0".repeat(64)))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&"0".repeat(64)) && err.contains(ABC), "{err}");
        // ... and every other file read needs a pin of its own.
        let err = pinned
            .verify_pin("params.config", "config.json", ok)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no pinned digest") && err.contains("[files]"),
            "{err}"
        );
        let all = spec(&format!(
            "sha256 = \"{ABC}\"\n[files]\n\"config.json\" = \"{ABC}\""
        ))
        .expect("spec");
        assert!(all.verify_pin("params.config", "config.json", ok).is_ok());
        let err = all
            .verify_pin("params.config", "config.json", || Ok("1".repeat(64)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("params.config") && err.contains(ABC), "{err}");
        // [files] alone pins the version too.
        let files_only = spec(&format!("[files]\n\"config.json\" = \"{ABC}\"")).expect("spec");
        assert!(files_only.is_pinned());
        assert!(files_only
            .verify_pin("weights", "w.safetensors", ok)
            .is_err());
        for bad in ["sha256 = \"abc\"", "[files]\n\"config.json\" = \"zz\""] {
            let err = spec(bad).unwrap_err().to_string();
            assert!(err.contains("64 hexadecimal"), "{bad}: {err}");
        }
    }

    #[test]
    fn hashing_a_file_stops_when_asked() {
        let path = std::env::temp_dir().join(format!("burnserve-digest-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 3 << 20]).expect("file");
        let mut pieces = 0;
        let err = sha256_of_checked(&path, &mut || {
            pieces += 1;
            if pieces > 2 {
                Err(ModelError::Load("cancelled".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            ModelError::Load("cancelled".into()).to_string()
        );
        assert_eq!(pieces, 3);
        std::fs::write(&path, b"abc").expect("file");
        assert_eq!(sha256_of(&path).expect("hash"), ABC);
        std::fs::remove_file(&path).expect("clean up");
    }
}
