//! The control plane through `ModelControl`: load, reload, unload and drain phases, failed
//! loads, an unload during a load, and reconcile with the settings as last given.

mod common;

use std::time::Duration;

use burnserve_actors::{ControlError, LoadOptions, ModelConfig, VersionKey, VersionPhase};
use burnserve_models::Device;
use common::{write_fake, Harness};

fn loaded(h: &Harness, model: &str, version: &str) -> f64 {
    h.metric("model_loaded", &[("model", model), ("version", version)])
}

#[actix::test]
async fn load_reload_unload_walk_the_phases() {
    let h = Harness::new();
    write_fake(h.root(), "echo", "1", "fake-echo", "");
    let report = h
        .runtime
        .control
        .load("echo", "1", LoadOptions::default())
        .await
        .expect("loads");
    assert_eq!((report.device, report.replaced), (Device::Cpu, false));
    let listing = h.runtime.control.list().await.expect("list");
    assert_eq!(listing.routed.len(), 1);
    assert_eq!(listing.routed[0].phase, VersionPhase::Ready);
    assert!(listing.pending.is_empty());
    assert_eq!(loaded(&h, "echo", "1"), 1.0);

    let reloaded = h
        .runtime
        .control
        .reload("echo", "1")
        .await
        .expect("reloads");
    assert!(reloaded.replaced);
    assert_eq!(
        loaded(&h, "echo", "1"),
        1.0,
        "the replacement keeps the gauge at 1"
    );
    let served = h
        .infer("echo", None, [5.0, 6.0])
        .await
        .expect("serves after a reload");
    assert_eq!(
        served.output.values().expect("FP32").to_vec(),
        vec![5.0, 6.0]
    );
    let lifecycle = |action: &str| {
        h.metric(
            "model_lifecycle_total",
            &[("version", "1"), ("action", action), ("outcome", "success")],
        )
    };
    assert_eq!((lifecycle("load"), lifecycle("reload")), (1.0, 1.0));

    h.runtime
        .control
        .unload("echo", "1")
        .await
        .expect("unloads");
    assert_eq!(loaded(&h, "echo", "1"), 0.0);
    let listing = h.runtime.control.list().await.expect("list");
    assert!(
        listing.routed.is_empty() && listing.pending.is_empty(),
        "{listing:?}"
    );
    assert!(matches!(
        h.runtime.control.unload("echo", "1").await,
        Err(ControlError::NotFound(_))
    ));
    assert!(matches!(
        h.runtime.control.reload("echo", "1").await,
        Err(ControlError::NotFound(_))
    ));
    // The unload took every series of the version with it, its lifecycle counts included.
    assert!(
        !h.samples()
            .iter()
            .any(|line| line.contains("model=\"echo\"")),
        "{:?}",
        h.samples()
    );
}

#[actix::test]
async fn a_failed_load_is_listed_and_leaves_what_serves_untouched() {
    let h = Harness::new();
    write_fake(h.root(), "echo", "1", "fake-echo", "");
    h.load("echo", "1").await;
    // A version whose architecture does not exist fails in its executor.
    write_fake(h.root(), "echo", "2", "fake-nonsense", "");
    let err = h
        .runtime
        .control
        .load("echo", "2", LoadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::LoadFailed(m) if m.contains("fake-nonsense")),
        "{err}"
    );
    let listing = h.runtime.control.list().await.expect("list");
    assert_eq!(listing.routed.len(), 1);
    assert_eq!(listing.pending.len(), 1);
    let failed = &listing.pending[0];
    assert_eq!(
        (failed.key.clone(), failed.phase),
        (VersionKey::new("echo", "2"), VersionPhase::Failed)
    );
    assert!(failed
        .error
        .as_deref()
        .unwrap_or("")
        .contains("fake-nonsense"));
    assert_eq!(loaded(&h, "echo", "2"), 0.0);
    let served = h
        .infer("echo", None, [1.0, 1.0])
        .await
        .expect("v1 still serves");
    assert_eq!(served.key.version, "1");
    // Unloading the failed version clears it.
    h.runtime
        .control
        .unload("echo", "2")
        .await
        .expect("clears the failure");
    assert!(h
        .runtime
        .control
        .list()
        .await
        .expect("list")
        .pending
        .is_empty());
    // Nothing outside the repository gets a label.
    assert!(matches!(
        h.runtime
            .control
            .load("ghost", "1", LoadOptions::default())
            .await,
        Err(ControlError::NotFound(_))
    ));
    assert_eq!(
        h.metric("model_lifecycle_total", &[("model", "ghost")]),
        0.0
    );
}

#[actix::test]
async fn an_unload_during_a_load_retires_the_instance_once_built() {
    let h = Harness::new();
    write_fake(
        h.root(),
        "late",
        "1",
        "fake-echo",
        "params = { load_delay_ms = 400 }",
    );
    let control = h.runtime.control.clone();
    let loading =
        actix::spawn(async move { control.load("late", "1", LoadOptions::default()).await });
    actix::clock::sleep(Duration::from_millis(100)).await;
    let listing = h.runtime.control.list().await.expect("list");
    assert_eq!(listing.pending.len(), 1);
    assert_eq!(listing.pending[0].phase, VersionPhase::Loading);
    h.runtime
        .control
        .unload("late", "1")
        .await
        .expect("unload accepted while loading");
    let load = loading.await.expect("load task");
    assert!(
        matches!(&load, Err(ControlError::NotFound(m)) if m.contains("unloaded while it loaded")),
        "{load:?}"
    );
    assert!(
        h.infer("late", None, [0.0, 0.0]).await.is_err(),
        "never routed"
    );
    assert_eq!(loaded(&h, "late", "1"), 0.0);
    let listing = h.runtime.control.list().await.expect("list");
    assert!(
        listing.routed.is_empty() && listing.pending.is_empty(),
        "{listing:?}"
    );
}

#[actix::test]
async fn a_reload_drains_the_old_instance_while_the_new_one_serves() {
    let h = Harness::new();
    h.load_slow("slow", 300).await;
    let busy = h.infer("slow", None, [1.0, 2.0]);
    let control = h.runtime.control.clone();
    let reload = async move {
        actix::clock::sleep(Duration::from_millis(50)).await;
        let report = control.reload("slow", "1").await;
        let listing = control.list().await;
        (report, listing)
    };
    let (busy, (report, listing)) = futures_util::future::join(busy, reload).await;
    assert_eq!(
        busy.expect("the accepted request is answered")
            .output
            .values()
            .expect("FP32")
            .to_vec(),
        vec![1.0, 2.0]
    );
    assert!(report.expect("reloads").replaced);
    let listing = listing.expect("list");
    assert_eq!(listing.routed[0].phase, VersionPhase::Ready);
    let draining: Vec<_> = listing
        .pending
        .iter()
        .filter(|p| p.phase == VersionPhase::Draining)
        .collect();
    assert!(draining.len() <= 1, "{listing:?}");
}

#[cfg(not(feature = "cuda"))]
#[actix::test]
async fn admin_loads_take_the_device_of_the_settings_as_last_reconciled() {
    let h = Harness::new();
    write_fake(h.root(), "echo", "1", "fake-echo", "");
    let on = |device: Device| ModelConfig {
        name: "echo".into(),
        versions: vec!["1".into()],
        default_version: None,
        device,
    };
    // Settings that place `echo` on cuda:0: a load without a device goes there (and this
    // build, without the `cuda` feature, refuses it by name).
    let report = h
        .runtime
        .control
        .reconcile(&[on(Device::Cuda(0))])
        .await
        .expect("reconcile");
    assert_eq!(report.failed.len(), 1);
    let err = h
        .runtime
        .control
        .load("echo", "1", LoadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::Invalid(m) if m.contains("cuda:0")),
        "{err}"
    );
    // Re-read settings move it to the CPU: the same load now lands there.
    let report = h
        .runtime
        .control
        .reconcile(&[on(Device::Cpu)])
        .await
        .expect("reconcile");
    assert_eq!((report.loaded.len(), report.failed.len()), (1, 0));
    h.runtime.control.unload("echo", "1").await.expect("unload");
    let loaded = h
        .runtime
        .control
        .load("echo", "1", LoadOptions::default())
        .await
        .expect("loads");
    assert_eq!(loaded.device, Device::Cpu);
    // Settings that no longer list it unload it.
    let report = h.runtime.control.reconcile(&[]).await.expect("reconcile");
    assert_eq!(report.unloaded, vec![VersionKey::new("echo", "1")]);
}

/// A version's series exist at 0 from its load on and go with its unload: 1,000 distinct
/// versions loaded, served once and unloaded leave the exposition as it was.
#[actix::test]
async fn a_thousand_versions_loaded_and_unloaded_leave_no_series_behind() {
    let h = Harness::new();
    write_fake(h.root(), "steady", "1", "fake-echo", "");
    h.load("steady", "1").await;
    h.infer("steady", None, [1.0, 2.0]).await.expect("served");
    let before = h.samples();
    let requests = |version: &str| {
        h.metric(
            "inference_requests_total",
            &[
                ("model", "churn"),
                ("version", version),
                ("tenant", "anonymous"),
            ],
        )
    };
    for i in 0..1000 {
        let version = format!("{i}");
        write_fake(h.root(), "churn", &version, "fake-echo", "");
        h.load("churn", &version).await;
        if i % 100 == 0 {
            // At 0 before traffic, as a series (not absent).
            assert!(h
                .samples()
                .iter()
                .any(|line| line.starts_with("inference_requests_total{")
                    && line.contains(&format!("version=\"{version}\""))
                    && line.ends_with(" 0")));
        }
        h.infer("churn", Some(&version), [1.0, 2.0])
            .await
            .expect("served");
        assert_eq!(requests(&version), 1.0);
        h.runtime
            .control
            .unload("churn", &version)
            .await
            .expect("unloads");
    }
    let after = h.samples();
    let residue: Vec<&String> = after
        .iter()
        .filter(|line| line.contains("model=\"churn\""))
        .collect();
    assert!(
        residue.is_empty(),
        "{} series left: {:?}",
        residue.len(),
        &residue[..residue.len().min(5)]
    );
    assert_eq!(after.len(), before.len(), "series count before and after");
}
