//! Test data that the project's scripts install (Fashion-MNIST, the MiniLM files): a test whose
//! data is missing fails and names the command that installs it. Offline, set
//! `BURNSERVE_ALLOW_MISSING_DATA=1` to skip such tests instead; each skip is printed and, when
//! `BURNSERVE_SKIP_LOG` names a file, appended to it, so `scripts/test.sh` reports the count.

use std::io::Write;

/// Set to `1` to skip (not fail) tests whose data is not installed.
pub const ALLOW_MISSING: &str = "BURNSERVE_ALLOW_MISSING_DATA";
/// A file each skipped test appends one line to.
pub const SKIP_LOG: &str = "BURNSERVE_SKIP_LOG";

/// `true` when `present`; otherwise panics with `install` (the command that installs `what`),
/// or, with [`ALLOW_MISSING`] set, records the skip and returns `false`.
pub fn require(what: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    if std::env::var(ALLOW_MISSING).as_deref() != Ok("1") {
        panic!(
            "{what} is not installed: run `{install}` (scripts/test.sh runs it for you), \
             or set {ALLOW_MISSING}=1 to skip this test"
        );
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    eprintln!("SKIPPED {test}: {what} is not installed; run `{install}`");
    if let Some(path) = std::env::var_os(SKIP_LOG) {
        let line = format!("{test}: {what}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = written {
            eprintln!("cannot append to {}: {err}", path.to_string_lossy());
        }
    }
    false
}

/// The Fashion-MNIST files of `scripts/install-datasets.sh`.
pub fn require_fashion_mnist(present: bool) -> bool {
    require("Fashion-MNIST", present, "bash scripts/install-datasets.sh")
}

/// The all-MiniLM-L6-v2 weights and tokenizer of `scripts/fetch-minilm.sh`.
pub fn require_minilm(dir: &std::path::Path) -> bool {
    require(
        "all-MiniLM-L6-v2",
        dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file(),
        "bash scripts/fetch-minilm.sh",
    )
}
