//! The router through `InferenceService`: version resolution, the canary split, deadlines and
//! a full queue, with fake models.

mod common;

use std::time::{Duration, Instant};

use burnserve_actors::{InferError, RoutingChange};
use common::{write_fake, Harness};
use futures_util::future::join_all;

#[actix::test]
async fn resolves_pinned_default_and_unknown_versions() {
    let h = Harness::new();
    for version in ["1", "2"] {
        write_fake(h.root(), "echo", version, "fake-echo", "");
    }
    h.load("echo", "1").await;
    h.load("echo", "2").await;
    let unpinned = h.infer("echo", None, [1.0, 2.0]).await.expect("default");
    assert_eq!(
        unpinned.key.version, "1",
        "the first version loaded is the default"
    );
    assert_eq!(
        unpinned.output.values().expect("FP32").to_vec(),
        vec![1.0, 2.0]
    );
    let pinned = h
        .infer("echo", Some("2"), [3.0, 4.0])
        .await
        .expect("pinned");
    assert_eq!(
        (
            pinned.key.version.as_str(),
            pinned.output.values().expect("FP32").to_vec()
        ),
        ("2", vec![3.0, 4.0])
    );
    assert_eq!(
        h.infer("nope", None, [0.0, 0.0]).await.unwrap_err(),
        InferError::ModelNotFound("nope".into())
    );
    assert!(matches!(
        h.infer("echo", Some("9"), [0.0, 0.0]).await,
        Err(InferError::VersionNotFound { .. })
    ));
    // Unknown names are counted under `unknown`, never as labels of their own.
    // A missing version of a known model is an unknown label pair too.
    let unknown = [("model", "unknown"), ("version", "unknown")];
    assert_eq!(h.metric("inference_requests_total", &unknown), 2.0);
    let not_found = [("model", "unknown"), ("error_type", "model_not_found")];
    assert_eq!(h.metric("inference_errors_total", &not_found), 2.0);
    assert_eq!(
        h.metric(
            "inference_requests_total",
            &[("model", "echo"), ("version", "9")]
        ),
        0.0
    );
}

#[actix::test]
async fn the_split_sends_each_version_its_share_and_pins_ignore_it() {
    let h = Harness::new();
    for version in ["1", "2"] {
        write_fake(h.root(), "echo", version, "fake-echo", "");
        h.load("echo", version).await;
    }
    let change = RoutingChange {
        default_version: None,
        weights: Some([("1".to_string(), 1), ("2".to_string(), 3)].into()),
    };
    let routing = h
        .runtime
        .control
        .set_routing("echo", change)
        .await
        .expect("split");
    assert_eq!(routing.weights.len(), 2);
    let mut to_two = 0;
    for _ in 0..40 {
        let served = h.infer("echo", None, [0.0, 0.0]).await.expect("served");
        to_two += usize::from(served.key.version == "2");
    }
    assert_eq!(to_two, 30, "3 of every 4 unpinned requests");
    for _ in 0..5 {
        let served = h
            .infer("echo", Some("1"), [0.0, 0.0])
            .await
            .expect("served");
        assert_eq!(served.key.version, "1");
    }
    let bad = RoutingChange {
        default_version: None,
        weights: Some([("7".to_string(), 1)].into()),
    };
    assert!(h.runtime.control.set_routing("echo", bad).await.is_err());
}

#[actix::test]
async fn a_request_times_out_at_its_deadline_while_the_executor_is_busy() {
    let h = Harness::new();
    // Warm-up passes take no time, so the cost estimate admits the late request: the deadline
    // itself must end it (the estimate refusing such requests is tested over HTTP).
    common::write_fake(
        h.root(),
        "slow",
        "1",
        "fake-slow",
        "params = { delay_ms = 400, warm_up_delay_ms = 0 }\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0",
    );
    h.load("slow", "1").await;
    let busy = h.infer("slow", None, [1.0, 1.0]);
    let mut late = common::request("slow", None, [2.0, 2.0]);
    late.timeout = Some(Duration::from_millis(100));
    let started = Instant::now();
    let (busy, late) = futures_util::future::join(busy, h.runtime.service.infer(late)).await;
    let waited = started.elapsed();
    assert_eq!(
        late.unwrap_err(),
        InferError::Timeout(Duration::from_millis(100))
    );
    assert!(busy.is_ok());
    assert!(
        waited >= Duration::from_millis(400),
        "the busy one finished: {waited:?}"
    );
    let slow = [("model", "slow"), ("version", "1")];
    assert_eq!(
        h.metric(
            "inference_errors_total",
            &[("model", "slow"), ("error_type", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        h.metric("inference_batch_size_count", &slow),
        1.0,
        "the expired job was never run"
    );
    assert_eq!(
        h.metric("executor_timeouts_total", &[("device", "cpu")]),
        1.0
    );
}

#[actix::test]
async fn a_full_queue_sheds_load_at_once_with_retry_after() {
    let h = Harness::new();
    write_fake(
        h.root(),
        "tiny",
        "1",
        "fake-slow",
        "params = { delay_ms = 300 }\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\nqueue_capacity = 2",
    );
    h.load("tiny", "1").await;
    let started = Instant::now();
    let results = join_all((0..6).map(|i| h.infer("tiny", None, [i as f32, 0.0]))).await;
    let shed: Vec<&InferError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    // Two wait in the queue of 2, plus the one the executor may already have taken off it:
    // the rest are refused at once.
    assert!((3..=4).contains(&shed.len()), "{results:?}");
    for err in &shed {
        assert!(
            matches!(err, InferError::Overloaded { capacity: 2, .. }),
            "{err}"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    }
    let tiny = [
        ("model", "tiny"),
        ("version", "1"),
        ("error_type", "overloaded"),
    ];
    assert_eq!(h.metric("inference_errors_total", &tiny), shed.len() as f64);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the accepted ones all ran"
    );
}
