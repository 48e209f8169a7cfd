//! The supervisor's guards on a load: the repository jail for version directories, the load
//! deadline (an answer at the deadline, the instance `Failed`, the build's model dropped), and
//! one build of a version at a time.

use std::path::Path;
use std::time::{Duration, Instant};

use burnserve_models::{LoadLimits, ModelSpec, Symlinks};
use prometheus::Registry;

use crate::control::{LoadOptions, RepositoryConfig};
use crate::error::ControlError;
use crate::lifecycle::VersionPhase;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

/// `<root>/<model>/1/model.toml`: a `fake-echo` of two values, with `params`.
fn write_fake(root: &Path, model: &str, params: &str) {
    let dir = root.join(model).join("1");
    std::fs::create_dir_all(&dir).expect("version dir");
    let toml = format!(
        "architecture = \"fake-echo\"\nparams = {{ {params} }}\n\
         [input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [2]\n"
    );
    std::fs::write(dir.join("model.toml"), toml).expect("model.toml");
}

fn runtime(root: &Path, symlinks: Symlinks, load_timeout_ms: u64) -> Runtime {
    let metrics = Metrics::register(&Registry::new(), true).expect("metrics");
    Runtime::start(
        RepositoryConfig {
            path: root.to_path_buf(),
            symlinks,
            limits: LoadLimits::new(1 << 30, load_timeout_ms).expect("limits"),
            mode: Default::default(),
        },
        metrics,
    )
}

/// Threads of this process whose name is `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|comm| comm.trim_end() == name)
                .count()
        })
        .unwrap_or(0)
}

#[actix::test]
async fn a_load_past_its_deadline_answers_at_it_and_blocks_a_second_build() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Building sleeps 900 ms in one uninterruptible call: the loader must answer on its own.
    write_fake(dir.path(), "late", "load_delay_ms = 900");
    let runtime = runtime(dir.path(), Symlinks::Inside, 200);
    let control = &runtime.control;
    let started = Instant::now();
    let err = control
        .load("late", "1", LoadOptions::default())
        .await
        .expect_err("past its deadline");
    let took = started.elapsed();
    println!("the load answered after {took:?}");
    assert!(
        matches!(&err, ControlError::LoadFailed(m) if m.contains("did not finish within 200 ms")),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(450),
        "{took:?}"
    );
    let listing = control.list().await.expect("list");
    assert_eq!(listing.pending.len(), 1, "{listing:?}");
    assert_eq!(listing.pending[0].phase, VersionPhase::Failed);
    assert!(listing.pending[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("200 ms")));
    assert_eq!(
        threads_named("exec-late-1"),
        1,
        "the abandoned build still runs"
    );
    // A second load while that build runs is refused: no second copy piles up beside it.
    let err = control
        .load("late", "1", LoadOptions::default())
        .await
        .expect_err("refused while the first build runs");
    assert!(
        matches!(&err, ControlError::Interrupted(m) if m.contains("still stopping")),
        "{err:?}"
    );
    // Unloading the failed version does not forget the build still running.
    control
        .unload("late", "1")
        .await
        .expect("unloads the failed version");
    let err = control
        .load("late", "1", LoadOptions::default())
        .await
        .expect_err("still refused after an unload");
    assert!(
        matches!(&err, ControlError::Interrupted(m) if m.contains("still stopping")),
        "{err:?}"
    );
    // Once it ended, its thread is gone (the model it built was dropped, never served), and a
    // load that fits its deadline goes through.
    let ended = Instant::now() + Duration::from_secs(5);
    while threads_named("exec-late-1") > 0 && Instant::now() < ended {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(threads_named("exec-late-1"), 0);
    let quick = ModelSpec::from_toml(
        "architecture = \"fake-echo\"\n[input]\nname = \"x\"\nshape = [2]\n\
         [output]\nname = \"y\"\nshape = [2]",
    )
    .expect("spec");
    let options = LoadOptions {
        spec: Some(quick),
        ..LoadOptions::default()
    };
    control.load("late", "1", options).await.expect("loads");
    let listing = control.list().await.expect("list");
    assert_eq!(
        (listing.routed.len(), listing.pending.len()),
        (1, 0),
        "{listing:?}"
    );
}

#[cfg(unix)]
#[actix::test]
async fn version_directories_behind_links_out_of_the_repository_are_refused() {
    use std::os::unix::fs::symlink;
    let repo = tempfile::tempdir().expect("repository");
    let outside = tempfile::tempdir().expect("outside");
    write_fake(repo.path(), "m", "");
    write_fake(outside.path(), "x", "");
    symlink(outside.path().join("x"), repo.path().join("evil")).expect("link out");
    symlink(outside.path().join("gone"), repo.path().join("ghost")).expect("dangling link");
    symlink("m", repo.path().join("alias")).expect("link inside");
    for (symlinks, alias_loads) in [(Symlinks::Inside, true), (Symlinks::None, false)] {
        let runtime = runtime(repo.path(), symlinks, 10_000);
        let control = &runtime.control;
        let refusal = |model: &'static str| {
            let control = control.clone();
            async move {
                match control.load(model, "1", LoadOptions::default()).await {
                    Err(ControlError::LoadFailed(m)) => m.replace(model, "M"),
                    other => panic!("{model} with {symlinks}: {other:?}"),
                }
            }
        };
        let evil = refusal("evil").await;
        assert_eq!(refusal("ghost").await, evil, "one answer, target or not");
        let alias = control.load("alias", "1", LoadOptions::default()).await;
        assert_eq!(alias.is_ok(), alias_loads, "{symlinks}: {alias:?}");
        let listed: Vec<String> = control
            .repository_index()
            .await
            .expect("index")
            .into_iter()
            .map(|(key, _)| key.model)
            .collect();
        let expected: &[&str] = if alias_loads { &["alias", "m"] } else { &["m"] };
        assert_eq!(listed, expected, "{symlinks}");
        // No instance, no labels: the refused versions left nothing behind.
        let listing = control.list().await.expect("list");
        assert!(listing.pending.is_empty(), "{listing:?}");
    }
}
