//! The executor through the handles: dynamic batches answered with their own rows, abandoned
//! jobs never computed, a panicking batch failing alone, a fatal error restarting the version.

mod common;

use std::time::Duration;

use burnserve_actors::{InferError, VersionPhase};
use common::{write_fake, Harness};
use futures_util::future::join_all;

#[actix::test]
async fn concurrent_requests_share_batches_and_get_their_own_rows() {
    let h = Harness::new();
    write_fake(
        h.root(),
        "echo",
        "1",
        "fake-echo",
        "[batching]\nmax_batch_size = 64\nmax_batch_delay_ms = 50\nadaptive_delay = false",
    );
    h.load("echo", "1").await;
    let results = join_all((0..16).map(|i| h.infer("echo", None, [i as f32, -(i as f32)]))).await;
    for (i, result) in results.into_iter().enumerate() {
        let response = result.expect("served");
        assert_eq!(
            response.output.values().expect("FP32").to_vec(),
            vec![i as f32, -(i as f32)]
        );
    }
    let echo = [("model", "echo"), ("version", "1")];
    let batches = h.metric("inference_batch_size_count", &echo);
    assert_eq!(h.metric("inference_batch_size_sum", &echo), 16.0);
    assert!(
        (1.0..16.0).contains(&batches),
        "16 requests in {batches} batches"
    );
}

#[actix::test]
async fn an_abandoned_request_is_never_computed() {
    let h = Harness::new();
    h.load_slow("slow", 300).await;
    let busy = h.infer("slow", None, [1.0, 1.0]);
    // The second caller gives up while its job waits behind the first.
    let gave_up = actix::clock::timeout(
        Duration::from_millis(100),
        h.infer("slow", None, [2.0, 2.0]),
    );
    let (busy, gave_up) = futures_util::future::join(busy, gave_up).await;
    assert!(busy.is_ok());
    assert!(gave_up.is_err(), "the caller left");
    let third = h.infer("slow", None, [3.0, 3.0]).await.expect("served");
    assert_eq!(
        third.output.values().expect("FP32").to_vec(),
        vec![3.0, 3.0]
    );
    let slow = [("model", "slow"), ("version", "1")];
    assert_eq!(
        h.metric("inference_batch_size_count", &slow),
        2.0,
        "the abandoned job cost nothing"
    );
}

#[actix::test]
async fn a_panicking_batch_fails_alone() {
    let h = Harness::new();
    write_fake(
        h.root(),
        "panic",
        "1",
        "fake-panic",
        "[batching]\nmax_batch_delay_ms = 0",
    );
    h.load("panic", "1").await;
    let err = h.infer("panic", None, [-1.0, 0.0]).await.unwrap_err();
    assert!(
        matches!(&err, InferError::Inference(m) if m.contains("panicked")),
        "{err}"
    );
    let ok = h
        .infer("panic", None, [1.0, 0.0])
        .await
        .expect("keeps serving");
    assert_eq!(ok.output.values().expect("FP32").to_vec(), vec![1.0, 0.0]);
    assert_eq!(h.metric("actor_restarts_total", &[("model", "panic")]), 0.0);
}

#[actix::test]
async fn a_fatal_error_restarts_the_version_through_its_supervisor() {
    let h = Harness::new();
    write_fake(
        h.root(),
        "fail",
        "1",
        "fake-fail",
        "[batching]\nmax_batch_delay_ms = 0",
    );
    h.load("fail", "1").await;
    let err = h.infer("fail", None, [-1.0, 0.0]).await.unwrap_err();
    assert!(matches!(err, InferError::Inference(_)), "{err}");
    // Restarting (503 not_ready), then back after the backoff.
    let phase = || async { h.runtime.control.list().await.expect("list").routed[0].phase };
    let mut waited = 0;
    while phase().await == VersionPhase::Ready && waited < 100 {
        actix::clock::sleep(Duration::from_millis(5)).await;
        waited += 1;
    }
    assert_eq!(
        phase().await,
        VersionPhase::Restarting,
        "the listing shows the restart"
    );
    let refused = h.infer("fail", None, [2.0, 0.0]).await.unwrap_err();
    assert!(matches!(refused, InferError::NotReady(_)), "{refused}");
    let mut waited = 0;
    while phase().await != VersionPhase::Ready && waited < 200 {
        actix::clock::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let back = h
        .infer("fail", None, [3.0, 0.0])
        .await
        .expect("serves again");
    assert_eq!(back.output.values().expect("FP32").to_vec(), vec![3.0, 0.0]);
    let labels = [("model", "fail"), ("version", "1")];
    assert_eq!(h.metric("actor_restarts_total", &labels), 1.0);
    assert_eq!(h.metric("model_loaded", &labels), 1.0);
}
