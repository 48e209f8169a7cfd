//! `batching.instances`: several executor threads take batches from one version's queue, each
//! with the model's weights shared; the listing, the metrics and the v2 configuration show them;
//! a fatal error on one restarts the version whole, which then serves with all of them again.

mod common;

use common::*;
use futures_util::future::join_all;
use serde_json::json;

/// `name`: a fake that sleeps 300 ms a pass, one request a pass, with `instances`.
fn slow_fake(fixture: &Fixture, name: &str, architecture: &str, instances: &str) {
    fixture.add_fake(
        name,
        architecture,
        2,
        &format!(
            "params = {{ delay_ms = 300, warm_up_delay_ms = 0 }}\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\ninstances = {instances}"
        ),
    );
}

/// The `x-queue-time` (ms) of two requests sent at once.
async fn two_at_once(server: &TestServer, model: &str) -> Vec<f64> {
    let path = format!("/v1/models/{model}/predict");
    let replies = join_all(
        (0..2).map(|i| server.post_raw(&path, json!({ "inputs": [i as f64, 0.5] }).to_string())),
    )
    .await;
    replies
        .into_iter()
        .map(|(status, body, headers)| {
            assert_eq!(status, 200, "{body}");
            headers
                .get("x-queue-time")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("x-queue-time")
        })
        .collect()
}

#[actix_web::test]
async fn instances_take_batches_side_by_side_and_show_everywhere() {
    let fixture = Fixture::new();
    slow_fake(&fixture, "pair", "fake-slow", "2");
    slow_fake(&fixture, "single", "fake-slow", "1");
    let toml = fixture.settings_toml(&format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[[models]]\nname = \"pair\"\nversions = [\"1\"]\n[[models]]\nname = \"single\"\nversions = [\"1\"]\n"
    ));
    let server = TestServer::start(burnserve::Settings::from_toml(&toml).unwrap()).await;
    // One instance: the second request waits for the first's 300 ms pass.
    let single = two_at_once(&server, "single").await;
    assert!(
        single.iter().cloned().fold(0.0, f64::max) >= 250.0,
        "{single:?}"
    );
    // Two: both passes run at once, neither waits in the queue.
    let pair = two_at_once(&server, "pair").await;
    assert!(pair.iter().all(|&q| q < 150.0), "{pair:?}");
    // The listing, the metrics and the model configuration show them.
    let (status, listing) = server.admin("GET", "/admin/models", "").await;
    assert_eq!(status, 200);
    let instances = |model: &str| {
        listing["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["model"] == model)
            .map(|v| v["instances"].clone())
    };
    assert_eq!(instances("pair"), Some(json!(2)));
    assert_eq!(instances("single"), Some(json!(1)));
    let text = server.metrics().await;
    for (model, count) in [("pair", 2.0), ("single", 1.0)] {
        assert_eq!(
            metric(
                &text,
                "model_instances",
                &[("model", model), ("version", "1")]
            ),
            count
        );
    }
    // The admission margin, one series per version, between its floor and its ceiling: two
    // requests admitted at the same instant may both be priced before either is counted, so the
    // second one's 300 ms wait can raise it by a step (its steps are unit-tested in cost.rs).
    for model in ["pair", "single"] {
        let margin = metric(
            &text,
            "inference_admission_margin",
            &[("model", model), ("version", "1")],
        );
        assert!((1.25..=1.35).contains(&margin), "{model}: {margin}");
    }
    let (status, config) = server.get("/v2/models/pair/config").await;
    assert_eq!(status, 200);
    assert_eq!(config["instance_group"][0]["count"], 2);
    // An unload takes every instance's series with it.
    let (status, _) = server
        .admin("DELETE", "/admin/models/pair/versions/1", "")
        .await;
    assert_eq!(status, 200);
    let text = server.metrics().await;
    for name in ["model_instances", "inference_admission_margin"] {
        assert_eq!(
            sample(&text, name, &[("model", "pair"), ("version", "1")]),
            None,
            "{name}"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn a_fatal_error_on_one_instance_restarts_the_version_with_all_of_them() {
    let fixture = Fixture::new();
    fixture.add_fake(
        "fragile",
        "fake-fail",
        2,
        "[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\ninstances = 3",
    );
    let toml = fixture.settings_toml(&format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[[models]]\nname = \"fragile\"\nversions = [\"1\"]\n"
    ));
    let server = TestServer::start(burnserve::Settings::from_toml(&toml).unwrap()).await;
    // The marker (-1) fails its instance fatally: the job fails, the version restarts.
    let (status, body, _) = server
        .post(
            "/v1/models/fragile/predict",
            &json!({ "inputs": [-1.0, 0.5] }),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error_type"], "inference_error");
    // It comes back with its three instances and serves.
    let mut listed = json!(null);
    for _ in 0..100 {
        let (_, listing) = server.admin("GET", "/admin/models", "").await;
        listed = listing["versions"]
            .as_array()
            .and_then(|versions| versions.iter().find(|v| v["model"] == "fragile"))
            .cloned()
            .unwrap_or_default();
        if listed["state"] == "ready" && listed["restarts"] == 1 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed["restarts"], 1, "{listed}");
    assert_eq!(listed["instances"], 3, "{listed}");
    for i in 0..6 {
        let (status, body, _) = server
            .post(
                "/v1/models/fragile/predict",
                &json!({ "inputs": [i as f64, 0.5] }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(floats(&body["outputs"][0]), vec![i as f32, 0.5]);
    }
    server.stop().await;
}

#[actix_web::test]
async fn each_instance_runs_its_passes_on_the_threads_it_was_given() {
    let fixture = Fixture::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The process's shared pool: rayon's global one, sized by RAYON_NUM_THREADS or the cores.
    let shared = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(cores);
    let half = (cores / 2).max(1);
    let cases = [
        // (model, [batching] lines, threads a pass sees beside another instance at work, and
        // alone with an empty queue, the configuration's parameter)
        (
            "shared",
            String::new(),
            shared,
            shared,
            "shared".to_string(),
        ),
        (
            "split",
            "instances = 2".to_string(),
            half,
            cores,
            half.to_string(),
        ),
        (
            "three",
            "threads_per_instance = 3".to_string(),
            3,
            3,
            "3".to_string(),
        ),
        (
            "ones",
            "instances = 2\nthreads_per_instance = 1".to_string(),
            1,
            cores,
            "1".to_string(),
        ),
    ];
    let mut models = String::new();
    for (name, lines, _, _, _) in &cases {
        fixture.add_fake(
            name,
            "fake-threads",
            2,
            &format!(
                "params = {{ delay_ms = 150, warm_up_delay_ms = 0 }}\n[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\n{lines}"
            ),
        );
        models.push_str(&format!(
            "[[models]]\nname = \"{name}\"\nversions = [\"1\"]\n"
        ));
    }
    let toml = fixture.settings_toml(&models);
    let server = TestServer::start(burnserve::Settings::from_toml(&toml).unwrap()).await;
    let threads_seen = |body: &serde_json::Value| {
        let seen = floats(&body["outputs"][0]);
        assert_eq!(seen.len(), 2, "{body}");
        assert_eq!(seen[0], seen[1], "{body}");
        seen[0] as usize
    };
    for (name, _, beside, alone, parameter) in &cases {
        let path = format!("/v1/models/{name}/predict");
        // One request at a time: its instance is alone at work with an empty queue.
        for i in 0..2 {
            let (status, body, _) = server
                .post_raw(&path, json!({ "inputs": [i as f64, 0.5] }).to_string())
                .await;
            assert_eq!(status, 200, "{name}: {body}");
            assert_eq!(threads_seen(&body), *alone, "{name}, a lone request");
        }
        // Four at once: passes overlap (150 ms each). Every pass that had company ran on its
        // own instance's threads; only one that started alone with an empty queue may have
        // taken every core.
        let replies = join_all(
            (0..4)
                .map(|i| server.post_raw(&path, json!({ "inputs": [i as f64, 0.5] }).to_string())),
        )
        .await;
        let seen: Vec<usize> = replies
            .iter()
            .map(|(status, body, _)| {
                assert_eq!(*status, 200, "{name}: {body}");
                threads_seen(body)
            })
            .collect();
        assert!(
            seen.iter().all(|n| n == beside || n == alone),
            "{name}: {seen:?}"
        );
        assert!(
            seen.iter().filter(|&n| n == beside).count() >= 3,
            "{name}: four requests at once, yet passes ran alone: {seen:?}"
        );
        let (status, config) = server.get(&format!("/v2/models/{name}/config")).await;
        assert_eq!(status, 200);
        assert_eq!(
            config["parameters"]["threads_per_instance"]["string_value"], *parameter,
            "{name}: {config}"
        );
    }
    server.stop().await;
}
