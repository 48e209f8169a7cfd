//! Hostile model files and `model.toml`s against the real server binary (a child process on
//! loopback), each defect of issue #29 items 4, 8 and 12 reproduced and measured: a MiniLM
//! `config.json` asking for 20,000 or 1,000,000 layers is refused at once without the memory it
//! asks for; tampered or unpinned files are refused naming the digest; a version over
//! `repository.max_model_bytes` is refused before it is built; a load past
//! `repository.load_timeout_ms` answers on time, ends failed and leaves no memory behind;
//! symlinked model and version directories leading out of the repository are refused with one
//! answer (links inside follow `repository.symlinks`); and input ranges no value satisfies are
//! refused at load. Fails naming `scripts/fetch-minilm.sh` when MiniLM's files are absent.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burnserve_models::digest::sha256_of_bytes;
use common::process::{burnserve, free_port, http, Killed};
use serde_json::Value;

const TOKEN: &str = "hostile-models-admin-token-0123";
const MINILM: &str = "models/repository/minilm/1";
const FASHION_MLP: &str = "models/repository/fashion/1";
const FASHION_CNN: &str = "models/repository/fashion/2";
const MIB: f64 = (1u64 << 20) as f64;

/// Tests that measure time or memory run one at a time (the machine may have two cores).
static MEASURED: Mutex<()> = Mutex::new(());

fn measured() -> std::sync::MutexGuard<'static, ()> {
    MEASURED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn minilm_present() -> bool {
    burnserve_models::testdata::require_minilm(Path::new(MINILM))
}

/// Copies the version directory `from` to `to`: small files copied (tests edit them), weights
/// hard-linked when possible (never written).
fn copy_version(from: &str, to: &Path) {
    std::fs::create_dir_all(to).expect("version dir");
    for entry in std::fs::read_dir(from).expect("source version") {
        let entry = entry.expect("entry");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        // Never copy onto a link to the source: that would empty the bundled file.
        let _ = std::fs::remove_file(&target);
        let big = source.extension().is_some_and(|e| e == "safetensors");
        if !(big && std::fs::hard_link(&source, &target).is_ok()) {
            std::fs::copy(&source, &target).expect("copy");
        }
    }
}

/// A repository in a temp dir holding `fashion/1` (served at start-up).
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repository");
    copy_version(FASHION_MLP, &dir.path().join("fashion/1"));
    dir
}

/// One answer of the server.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    took: Duration,
}

impl Reply {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    fn error_type(&self) -> &str {
        self.body["error_type"].as_str().unwrap_or_default()
    }
}

/// Memory of the server process (kB, from `/proc/<pid>/status`).
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    peak: u64,
}

/// The binary serving `repository` with `settings` added to its `[repository]` section.
struct Server {
    port: u16,
    child: Killed,
    _config: tempfile::TempDir,
}

impl Server {
    fn start(repository: &Path, settings: &str) -> Self {
        let port = free_port();
        let config_dir = tempfile::tempdir().expect("config dir");
        let config = config_dir.path().join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nport = {port}\nworkers = 2\n[log]\nlevel = \"warn\"\n\
                 [admin]\ntoken = \"{TOKEN}\"\n\
                 [repository]\npath = \"{}\"\n{settings}\n\
                 [[models]]\nname = \"fashion\"\nversions = [\"1\"]\n",
                repository.display()
            ),
        )
        .expect("config");
        let log = config_dir.path().join("server.log");
        let child = burnserve()
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("server starts");
        let mut server = Self {
            port,
            child: Killed(child),
            _config: config_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        while !http(port, probe).is_ok_and(|reply| reply.starts_with("HTTP/1.1 200")) {
            let exited = server.child.0.try_wait().expect("child status");
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the server did not start ({exited:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// One request (JSON when `body` starts with `{`, else text) with the admin token.
    fn send(&self, method: &str, path: &str, body: &str) -> Reply {
        let content_type = if body.starts_with('{') {
            "application/json"
        } else {
            "text/plain"
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n\
             {body}",
            body.len()
        );
        let started = Instant::now();
        let reply = http(self.port, &request).expect("answer");
        let took = started.elapsed();
        let (head, text) = reply.split_once("\r\n\r\n").expect("headers end");
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        Reply {
            status,
            body: serde_json::from_str(text).unwrap_or(Value::Null),
            took,
        }
    }

    /// `POST /admin/models/{model}/versions/{version}`, with a `model.toml` override or none.
    fn load(&self, model: &str, version: &str, toml: &str) -> Reply {
        self.send(
            "POST",
            &format!("/admin/models/{model}/versions/{version}"),
            toml,
        )
    }

    fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("memory field")
        };
        Memory {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }

    /// Resets the process's peak RSS (VmHWM) to its RSS now, so the next peak is a load's.
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").expect("clear_refs");
    }

    /// Threads of the server named `name` (the executor of a version is `exec-<m>-<v>`).
    fn threads_named(&self, name: &str) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("tasks")
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    /// The `pending` row of `model`/`version` in `GET /admin/models`.
    fn pending(&self, model: &str, version: &str) -> Option<Value> {
        let listing = self.send("GET", "/admin/models", "");
        listing.body["pending"]
            .as_array()?
            .iter()
            .find(|row| row["model"] == model && row["version"] == version)
            .cloned()
    }

    /// `(model, version)` of every entry of the v2 repository index.
    fn index(&self) -> Vec<(String, String)> {
        let reply = self.send("POST", "/v2/repository/index", "");
        assert_eq!(reply.status, 200, "{reply:?}");
        let mut entries: Vec<(String, String)> = reply
            .body
            .as_array()
            .expect("index")
            .iter()
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (text("name"), text("version"))
            })
            .collect();
        entries.sort();
        entries
    }
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Rewrites `model.toml`'s `[files]` pin of `name` to the digest of `bytes` (what an operator,
/// or an attacker who can write both files, would do).
fn pin(version_dir: &Path, name: &str, bytes: &[u8]) {
    let path = version_dir.join("model.toml");
    let mut spec: toml::Table = std::fs::read_to_string(&path)
        .expect("model.toml")
        .parse()
        .expect("toml");
    let files = spec
        .entry("files")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[files]");
    files.insert(name.into(), sha256_of_bytes(bytes).into());
    std::fs::write(&path, toml::to_string(&spec).expect("toml")).expect("write");
}

#[test]
fn config_json_layer_counts_the_weights_do_not_hold_are_refused_at_once() {
    if !minilm_present() {
        return;
    }
    let _serial = measured();
    let repo = repository();
    let version = repo.path().join("minilm/1");
    copy_version(MINILM, &version);
    let original_config = std::fs::read(version.join("config.json")).expect("config.json");
    let original_toml = std::fs::read(version.join("model.toml")).expect("model.toml");
    let server = Server::start(repo.path(), "");
    for layers in [20_000u64, 1_000_000] {
        let mut config: Value = serde_json::from_slice(&original_config).expect("json");
        config["num_hidden_layers"] = layers.into();
        let bytes = serde_json::to_vec_pretty(&config).expect("json");
        std::fs::write(version.join("config.json"), &bytes).expect("write");
        pin(&version, "config.json", &bytes);
        std::thread::sleep(Duration::from_millis(300));
        server.reset_peak();
        let before = server.memory();
        let reply = server.load("minilm", "1", "");
        let after = server.memory();
        let growth = after.peak.saturating_sub(before.rss);
        println!(
            "num_hidden_layers = {layers}: {} {} in {:?}; RSS {:.1} MiB before, peak {:.1} MiB \
             during (+{:.1} MiB); {}",
            reply.status,
            reply.error_type(),
            reply.took,
            kib_to_mib(before.rss),
            kib_to_mib(after.peak),
            kib_to_mib(growth),
            reply.error()
        );
        assert_eq!(
            (reply.status, reply.error_type()),
            (422, "load_failed"),
            "{reply:?}"
        );
        assert!(
            reply.error().contains(&format!(
                "num_hidden_layers = {layers}, but the weights hold 6"
            )),
            "{reply:?}"
        );
        assert!(
            reply.error().contains("encoder.layer.0 … encoder.layer.5"),
            "{reply:?}"
        );
        assert!(reply.took < Duration::from_secs(1), "{:?}", reply.took);
        assert!(growth < 50 * 1024, "{:.1} MiB", kib_to_mib(growth));
    }
    // hidden_size is read from the word embeddings' shape.
    let mut config: Value = serde_json::from_slice(&original_config).expect("json");
    config["hidden_size"] = 4096.into();
    config["num_attention_heads"] = 16.into();
    let bytes = serde_json::to_vec(&config).expect("json");
    std::fs::write(version.join("config.json"), &bytes).expect("write");
    pin(&version, "config.json", &bytes);
    let reply = server.load("minilm", "1", "");
    println!("hidden_size = 4096: {} {}", reply.status, reply.error());
    assert_eq!(reply.status, 422, "{reply:?}");
    assert!(
        reply.error().contains(
            "hidden_size = 4096, but the weights hold 'embeddings.word_embeddings.weight' of \
             shape [30522, 384]"
        ),
        "{reply:?}"
    );

    // Tampered files whose pins were not updated: refused naming both digests.
    std::fs::write(version.join("model.toml"), &original_toml).expect("restore toml");
    let mut tampered = original_config.clone();
    tampered.extend_from_slice(b"\n");
    std::fs::write(version.join("config.json"), &tampered).expect("tamper");
    let reply = server.load("minilm", "1", "");
    println!("tampered config.json: {} {}", reply.status, reply.error());
    assert_eq!((reply.status, reply.error_type()), (422, "load_failed"));
    assert!(
        reply.error().contains(&format!(
            "`params.config` file 'config.json' has sha256 {}; model.toml expects \
             953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            sha256_of_bytes(&tampered)
        )),
        "{reply:?}"
    );
    std::fs::write(version.join("config.json"), &original_config).expect("restore config");
    let tokenizer = std::fs::read(version.join("tokenizer.json")).expect("tokenizer");
    let mut tampered = tokenizer.clone();
    tampered.extend_from_slice(b" ");
    std::fs::write(version.join("tokenizer.json"), &tampered).expect("tamper");
    let reply = server.load("minilm", "1", "");
    println!(
        "tampered tokenizer.json: {} {}",
        reply.status,
        reply.error()
    );
    assert_eq!((reply.status, reply.error_type()), (422, "load_failed"));
    assert!(
        reply.error().contains(&format!(
            "`params.tokenizer` file 'tokenizer.json' has sha256 {}; model.toml expects \
             be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            sha256_of_bytes(&tampered)
        )),
        "{reply:?}"
    );
    std::fs::write(version.join("tokenizer.json"), &tokenizer).expect("restore tokenizer");
    // A version that pins its weights must pin every file it reads.
    let unpinned = String::from_utf8(original_toml.clone())
        .expect("utf-8")
        .lines()
        .filter(|line| !line.starts_with("\"tokenizer.json\""))
        .collect::<Vec<_>>()
        .join("\n");
    let reply = server.load("minilm", "1", &unpinned);
    println!(
        "tokenizer.json unpinned: {} {}",
        reply.status,
        reply.error()
    );
    assert_eq!(reply.status, 422, "{reply:?}");
    assert!(
        reply
            .error()
            .contains("`params.tokenizer` file 'tokenizer.json' has no pinned digest"),
        "{reply:?}"
    );
    // The shipped files, all three pinned, load.
    let reply = server.load("minilm", "1", "");
    println!("shipped MiniLM: {} in {:?}", reply.status, reply.took);
    assert_eq!(
        (reply.status, reply.body["state"].as_str()),
        (200, Some("ready")),
        "{reply:?}"
    );
}

#[test]
fn a_version_over_the_memory_cap_is_refused_before_it_is_built() {
    if !minilm_present() {
        return;
    }
    let _serial = measured();
    let repo = repository();
    copy_version(MINILM, &repo.path().join("minilm/1"));
    copy_version(FASHION_CNN, &repo.path().join("fashion/2"));
    let cap = 100u64 << 20;
    let server = Server::start(repo.path(), &format!("max_model_bytes = {cap}"));
    std::thread::sleep(Duration::from_millis(300));
    server.reset_peak();
    let before = server.memory();
    let reply = server.load("minilm", "1", "");
    let after = server.memory();
    let growth = after.peak.saturating_sub(before.rss);
    println!(
        "MiniLM under a {:.0} MiB cap: {} in {:?}, peak +{:.1} MiB; {}",
        cap as f64 / MIB,
        reply.status,
        reply.took,
        kib_to_mib(growth),
        reply.error()
    );
    assert_eq!(
        (reply.status, reply.error_type()),
        (422, "load_failed"),
        "{reply:?}"
    );
    assert!(
        reply
            .error()
            .contains("the version would need an estimated")
            && reply
                .error()
                .contains("over repository.max_model_bytes = 104857600 bytes (100.0 MiB)"),
        "{reply:?}"
    );
    // The estimate is a number of bytes above the cap.
    let estimate: u64 = reply
        .error()
        .split("estimated ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("estimate in bytes");
    println!("MiniLM's estimate: {:.1} MiB", estimate as f64 / MIB);
    assert!(estimate > cap && estimate < 1 << 30, "{estimate}");
    assert!(growth < 50 * 1024, "{:.1} MiB", kib_to_mib(growth));
    // A version under the cap loads.
    let reply = server.load("fashion", "2", "");
    assert_eq!(
        (reply.status, reply.body["state"].as_str()),
        (200, Some("ready")),
        "{reply:?}"
    );
}

/// Waits (at most 10 s) until the server has no thread named `name`; how long it took.
fn until_no_thread(server: &Server, name: &str) -> Duration {
    let started = Instant::now();
    while server.threads_named(name) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn a_load_past_its_deadline_answers_on_time_and_leaves_no_memory_behind() {
    if !minilm_present() {
        return;
    }
    let _serial = measured();
    let repo = repository();
    copy_version(MINILM, &repo.path().join("minilm/1"));
    // MiniLM takes longer than this to build (hashing and copying 87 MiB, warming up).
    let deadline_ms = 150;
    let server = Server::start(repo.path(), &format!("load_timeout_ms = {deadline_ms}"));
    std::thread::sleep(Duration::from_millis(2500));
    let before = server.memory();
    let reply = server.load("minilm", "1", "");
    let second = server.load("minilm", "1", "");
    let stopped_after = until_no_thread(&server, "exec-minilm-1");
    // The heap is trimmed every second: give it two.
    std::thread::sleep(Duration::from_millis(2500));
    let after = server.memory();
    let left = after.rss as i64 - before.rss as i64;
    println!(
        "load_timeout_ms = {deadline_ms}: {} {} after {:?} ({}); a second load at once: {} {}; \
         the build's thread ended {stopped_after:?} later; RSS {:.1} MiB before, {:.1} MiB \
         after ({:+.1} MiB), peak {:.1} MiB",
        reply.status,
        reply.error_type(),
        reply.took,
        reply.error(),
        second.status,
        second.error(),
        kib_to_mib(before.rss),
        kib_to_mib(after.rss),
        left as f64 / 1024.0,
        kib_to_mib(after.peak)
    );
    assert_eq!(
        (reply.status, reply.error_type()),
        (422, "load_failed"),
        "{reply:?}"
    );
    assert!(
        reply
            .error()
            .contains(&format!("load did not finish within {deadline_ms} ms")),
        "{reply:?}"
    );
    assert!(
        reply.took >= Duration::from_millis(deadline_ms)
            && reply.took < Duration::from_millis(deadline_ms + 500),
        "{:?}",
        reply.took
    );
    // The second load did not build beside the first: refused while it stops, or (the first
    // already gone) past its own deadline.
    match second.status {
        503 => assert!(second.error().contains("still stopping"), "{second:?}"),
        _ => assert!(
            second.status == 422 && second.error().contains("did not finish within"),
            "{second:?}"
        ),
    }
    assert!(
        left < 30 * 1024,
        "{:+.1} MiB left behind",
        left as f64 / 1024.0
    );
    let failed = server.pending("minilm", "1").expect("listed");
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within")),
        "{failed}"
    );

    // A client that leaves at once: the load goes on and still obeys the deadline.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        stream,
        "POST /admin/models/minilm/versions/1 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let sent = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    drop(stream);
    std::thread::sleep(Duration::from_millis(deadline_ms + 300));
    let row = server.pending("minilm", "1").expect("listed");
    let ended = until_no_thread(&server, "exec-minilm-1");
    println!(
        "a load whose client left: {} after {:?} ({}); its build ended {ended:?} later",
        row["state"],
        sent.elapsed(),
        row["error"]
    );
    assert_eq!(row["state"], "failed", "{row}");
    assert!(
        row["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within")),
        "{row}"
    );
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_repository_are_refused_with_one_answer() {
    use std::os::unix::fs::symlink;
    let repo = repository();
    let root = repo.path();
    let outside = tempfile::tempdir().expect("outside");
    // A loadable version outside the repository: what an escaped path would serve.
    copy_version(FASHION_MLP, &outside.path().join("x/1"));
    let there = |path: &str| outside.path().join(path);
    let relink = |target: PathBuf, link: PathBuf| {
        let _ = std::fs::remove_file(&link);
        symlink(target, link).expect("link");
    };
    // Inside the root: a version linked to another, and weights shared with version 1.
    symlink("1", root.join("fashion/7")).expect("version link inside");
    std::fs::create_dir_all(root.join("fashion/8")).expect("dir");
    std::fs::copy(
        root.join("fashion/1/model.toml"),
        root.join("fashion/8/model.toml"),
    )
    .expect("toml");
    symlink(
        "../1/model.safetensors",
        root.join("fashion/8/model.safetensors"),
    )
    .expect("weights link inside");
    // A version whose model.toml leads out.
    std::fs::create_dir_all(root.join("fashion/5")).expect("dir");

    let server = Server::start(root, "");
    let mut answers = Vec::new();
    for (link, targets) in [
        (root.join("evil"), [there("x"), there("no-such-dir")]),
        (root.join("fashion/9"), [there("x/1"), there("x/404")]),
    ] {
        for target in targets {
            relink(target, link.clone());
            let version = if link.ends_with("evil") {
                ("evil", "1")
            } else {
                ("fashion", "9")
            };
            let reply = server.load(version.0, version.1, "");
            println!(
                "{version:?} -> {}: {} {}",
                link.display(),
                reply.status,
                reply.error()
            );
            assert_eq!(
                (reply.status, reply.error_type()),
                (422, "load_failed"),
                "{reply:?}"
            );
            assert!(!reply
                .error()
                .contains(&outside.path().display().to_string()));
            answers.push(
                reply
                    .error()
                    .replace("model 'evil' version '1'", "V")
                    .replace("model 'fashion' version '9'", "V"),
            );
        }
    }
    assert!(
        answers[0].contains("leads outside the model repository"),
        "{}",
        answers[0]
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let mut toml_answers = Vec::new();
    for target in [there("x/1/model.toml"), there("x/1/absent.toml")] {
        relink(target, root.join("fashion/5/model.toml"));
        let reply = server.load("fashion", "5", "");
        println!("model.toml link out: {} {}", reply.status, reply.error());
        assert_eq!(reply.status, 422, "{reply:?}");
        toml_answers.push(reply.error().to_string());
    }
    assert!(
        toml_answers[0].contains("`model.toml` must name a file inside the version directory"),
        "{toml_answers:?}"
    );
    assert_eq!(toml_answers[0], toml_answers[1]);
    // Links inside the root are followed (repository.symlinks = "inside", the default).
    for version in ["7", "8"] {
        let reply = server.load("fashion", version, "");
        assert_eq!(
            (reply.status, reply.body["state"].as_str()),
            (200, Some("ready")),
            "fashion/{version}: {reply:?}"
        );
    }
    let listed = server.index();
    println!("index with symlinks = \"inside\": {listed:?}");
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(m, v)| (m.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        listed,
        pairs(&[("fashion", "1"), ("fashion", "7"), ("fashion", "8")])
    );
    drop(server);

    // repository.symlinks = "none": no link below the root, wherever it leads.
    let strict = Server::start(root, "symlinks = \"none\"");
    for version in ["7", "8", "9"] {
        let reply = strict.load("fashion", version, "");
        println!(
            "fashion/{version} with symlinks = \"none\": {} {}",
            reply.status,
            reply.error()
        );
        assert_eq!((reply.status, reply.error_type()), (422, "load_failed"));
        assert!(
            reply
                .error()
                .contains("repository.symlinks = \"none\" refuses"),
            "{reply:?}"
        );
    }
    // fashion/8's directory and model.toml are no links: it is listed, its load refused.
    let listed = strict.index();
    println!("index with symlinks = \"none\": {listed:?}");
    assert_eq!(listed, pairs(&[("fashion", "1"), ("fashion", "8")]));
}

#[test]
fn input_ranges_no_value_satisfies_are_refused_at_load() {
    let repo = repository();
    let toml =
        std::fs::read_to_string(repo.path().join("fashion/1/model.toml")).expect("model.toml");
    assert!(toml.contains("min = 0.0\nmax = 1.0"), "{toml}");
    let server = Server::start(repo.path(), "");
    let dir = repo.path().join("fashion/6");
    copy_version(FASHION_MLP, &dir);
    for (range, key) in [
        ("min = nan\nmax = 1.0", "input 'pixels': min is NaN"),
        ("min = 0.0\nmax = nan", "input 'pixels': max is NaN"),
        (
            "min = 2.0\nmax = 1.0",
            "input 'pixels': min (2) is greater than max (1)",
        ),
        ("min = inf\nmax = inf", "input 'pixels': min is +inf"),
        ("min = -inf\nmax = -inf", "input 'pixels': max is -inf"),
    ] {
        let body = toml.replace("min = 0.0\nmax = 1.0", range);
        // Over the admin API (a model.toml override): 400.
        let reply = server.load("fashion", "1", &body);
        println!("override {range:?}: {} {}", reply.status, reply.error());
        assert_eq!(
            (reply.status, reply.error_type()),
            (400, "invalid_input"),
            "{reply:?}"
        );
        assert!(reply.error().contains(key), "{key}: {reply:?}");
        // From the repository: 422 load_failed, the version failed, never ready.
        std::fs::write(dir.join("model.toml"), &body).expect("write");
        let reply = server.load("fashion", "6", "");
        assert_eq!(
            (reply.status, reply.error_type()),
            (422, "load_failed"),
            "{reply:?}"
        );
        assert!(reply.error().contains(key), "{key}: {reply:?}");
    }
    let bytes = toml
        .replace(
            "datatype = \"FP32\"\nshape = [28, 28]",
            "datatype = \"BYTES\"\nshape = [1]",
        )
        .replace("accept_uint8 = true\n", "");
    let reply = server.load("fashion", "1", &bytes);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        reply
            .error()
            .contains("finite, min and max apply to numeric data; its datatype is BYTES"),
        "{reply:?}"
    );
    // What served before still serves, with its own range.
    let pixels = vec![0.5f32; 784];
    let reply = server.send(
        "POST",
        "/v1/models/fashion/versions/1/predict",
        &serde_json::json!({ "inputs": [pixels] }).to_string(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["outputs"][0].as_array().map(Vec::len), Some(10));
}
