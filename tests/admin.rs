//! Hot reload and the admin API over real HTTP: token protection, load / reload / unload
//! semantics (load before unload, drain, failed loads change nothing), zero failed requests
//! while reloading under steady traffic, the canary share, reload-config and the v2 repository
//! extension.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};

fn item() -> Value {
    json!(mlp_items(1)[0])
}

#[actix_web::test]
async fn admin_routes_are_off_without_a_token_and_need_the_right_one() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let (status, body) = server.admin("GET", "/admin/models", "").await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (403, Some("forbidden"))
    );
    assert!(body["error"].as_str().unwrap().contains("admin.token"));
    let (status, _) = server.admin("POST", "/v2/repository/index", "").await;
    assert_eq!(status, 403);
    server.stop().await;

    let server = TestServer::start(fixture.admin_settings()).await;
    let (status, body) = server.admin_as("GET", "/admin/models", "", None).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = server
        .admin_as("GET", "/admin/models", "", Some("wrong-token-wrong-token"))
        .await;
    assert_eq!(status, 401);
    let (status, body) = server.admin("GET", "/admin/models", "").await;
    assert_eq!(status, 200, "{body}");
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 7);
    let mlp2 = versions
        .iter()
        .find(|v| v["model"] == "mlp" && v["version"] == "2")
        .unwrap();
    assert_eq!(mlp2["state"], "ready");
    assert_eq!(mlp2["device"], "cpu");
    assert_eq!(mlp2["default"], true);
    assert_eq!(mlp2["queue_depth"], 0);
    assert_eq!(mlp2["inflight"], 0);
    assert_eq!(mlp2["restarts"], 0);
    // 12*16+16 + 16*4+4 parameters of 4 bytes.
    assert_eq!(mlp2["weight_bytes"], (12 * 16 + 16 + 16 * 4 + 4) * 4);
    assert!(mlp2["load_time_ms"].as_f64().unwrap() > 0.0);
    server.stop().await;
}

#[actix_web::test]
async fn load_reload_and_unload_versions() {
    let fixture = Fixture::new();
    fixture.copy_version("mlp", "2", "3");
    let server = TestServer::start(fixture.admin_settings()).await;

    // Load a version that is in the repository but not configured.
    let (status, body) = server
        .admin("POST", "/admin/models/mlp/versions/3", "")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["state"].as_str(), body["replaced"].as_bool()),
        (Some("ready"), Some(false))
    );
    let (_, from3, _) = server
        .post(
            "/v1/models/mlp/versions/3/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    let (_, from2, _) = server
        .post(
            "/v1/models/mlp/versions/2/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    assert_eq!(
        from3["outputs"], from2["outputs"],
        "version 3 carries version 2's weights"
    );

    // Reload it with a model.toml override: the new settings are live.
    let override_toml = std::fs::read_to_string(fixture.version_dir("mlp", "3").join("model.toml"))
        .unwrap()
        .replace("max_batch_size = 16", "max_batch_size = 5");
    let (status, body) = server
        .admin("POST", "/admin/models/mlp/versions/3", &override_toml)
        .await;
    assert_eq!(
        (status, body["replaced"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (_, list) = server.admin("GET", "/admin/models", "").await;
    let v3 = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "3" && v["model"] == "mlp")
        .unwrap()
        .clone();
    assert_eq!(v3["max_batch_size"], 5);
    let (status, _) = server
        .admin("POST", "/admin/models/mlp/versions/3", "architecture = 1")
        .await;
    assert_eq!(status, 400, "a bad override is refused");

    // A failed load leaves the serving version untouched.
    std::fs::write(
        fixture.version_dir("mlp", "3").join("model.safetensors"),
        b"not safetensors",
    )
    .unwrap();
    let (status, body) = server
        .admin("POST", "/admin/models/mlp/versions/3/reload", "")
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (422, Some("load_failed")),
        "{body}"
    );
    let (status, still, _) = server
        .post(
            "/v1/models/mlp/versions/3/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(still["outputs"], from2["outputs"]);
    let (status, _) = server
        .admin("POST", "/admin/models/mlp/versions/9", "")
        .await;
    assert_eq!(status, 404, "no such version in the repository");
    let (status, _) = server
        .admin("POST", "/admin/models/mlp/versions/9/reload", "")
        .await;
    assert_eq!(status, 404, "reload needs a loaded version");

    // The lifecycle so far: two loads, one failed reload.
    let text = server.metrics().await;
    let v3 = |text: &str, action: &str, outcome: &str| {
        sample(
            text,
            "model_lifecycle_total",
            &[
                ("model", "mlp"),
                ("version", "3"),
                ("action", action),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(
        (v3(&text, "load", "success"), v3(&text, "reload", "failure")),
        (Some(2.0), Some(1.0))
    );

    // Unload: gone at once, and its series with it.
    let (status, body) = server
        .admin("DELETE", "/admin/models/mlp/versions/3", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = server
        .post(
            "/v1/models/mlp/versions/3/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, _) = server
        .admin("DELETE", "/admin/models/mlp/versions/3", "")
        .await;
    assert_eq!(status, 404);

    let text = server.metrics().await;
    assert_eq!(v3(&text, "load", "success"), None);
    assert!(
        !text.contains("version=\"3\""),
        "an unloaded version leaves no series"
    );
    assert!(
        !text.contains("version=\"9\""),
        "a version absent from the repository gets no label"
    );
    server.stop().await;
}

#[actix_web::test]
async fn unloading_the_last_version_answers_404_at_once_and_finishes_accepted_requests() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    // `slow` runs one request at a time for 300 ms: three accepted requests take ~900 ms.
    let accepted = join_all((0..3).map(|i| {
        server.post(
            "/v1/models/slow/predict",
            &json!({ "inputs": [i as f32, 0.0] }),
        )
    }));
    let unload = async {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let unloading = server.admin("DELETE", "/admin/models/slow/versions/1", "");
        let after = async {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            server
                .post("/v1/models/slow/predict", &json!({ "inputs": [9.0, 9.0] }))
                .await
        };
        let ((status, _), (late_status, late, _)) =
            futures_util::future::join(unloading, after).await;
        (status, started.elapsed(), late_status, late)
    };
    let (replies, (status, took, late_status, late)) =
        futures_util::future::join(accepted, unload).await;
    for (i, (s, body, _)) in replies.iter().enumerate() {
        assert_eq!(*s, 200, "accepted request {i} was lost: {body}");
    }
    assert_eq!(status, 200);
    assert!(
        took >= Duration::from_millis(400),
        "unload returned after {took:?}, before the queue drained"
    );
    assert_eq!(
        (late_status, late["error_type"].as_str()),
        (404, Some("model_not_found"))
    );
    server.stop().await;
}

#[actix_web::test]
async fn twenty_reloads_and_a_canary_flip_under_steady_traffic_fail_no_request() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let stop = AtomicBool::new(false);
    // (sent, received, status, version)
    let log: Mutex<Vec<(Instant, Instant, u16, String)>> = Mutex::new(Vec::new());
    let client = |_: usize| async {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && sent < 2_000 {
            let start = Instant::now();
            let (status, body, _) = server
                .post("/v1/models/mlp/predict", &json!({ "inputs": item() }))
                .await;
            let version = body["version"].as_str().unwrap_or("").to_string();
            log.lock()
                .unwrap()
                .push((start, Instant::now(), status, version));
            sent += 1;
        }
    };
    // (when, what): the routing changes the checker must respect.
    let changes: Mutex<Vec<(Instant, Instant, &str)>> = Mutex::new(Vec::new());
    let admin = async {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        for i in 0..20 {
            let (status, body) = server
                .admin("POST", "/admin/models/mlp/versions/2/reload", "")
                .await;
            assert_eq!(status, 200, "reload {i}: {body}");
            if i == 9 {
                let t0 = Instant::now();
                let (status, _) = server
                    .admin(
                        "PUT",
                        "/admin/models/mlp/routing",
                        r#"{"weights": {"1": 50, "2": 50}}"#,
                    )
                    .await;
                assert_eq!(status, 200);
                changes
                    .lock()
                    .unwrap()
                    .push((t0, Instant::now(), "split on"));
                // The split stays on for a while under traffic (reloads go on meanwhile): a
                // few reloads alone took 2-3 ms, a window a pass or two of requests could miss.
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            if i == 14 {
                let t0 = Instant::now();
                let (status, _) = server
                    .admin("PUT", "/admin/models/mlp/routing", r#"{"weights": {}}"#)
                    .await;
                assert_eq!(status, 200);
                changes
                    .lock()
                    .unwrap()
                    .push((t0, Instant::now(), "split off"));
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::Relaxed);
    };
    futures_util::future::join(join_all((0..6).map(client)), admin).await;

    let log = log.into_inner().unwrap();
    let changes = changes.into_inner().unwrap();
    let (on_start, on_done) = (changes[0].0, changes[0].1);
    let (off_start, off_done) = (changes[1].0, changes[1].1);
    assert!(log.len() > 100, "only {} requests ran", log.len());
    let failed: Vec<_> = log
        .iter()
        .filter(|(_, _, status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        log.len(),
        &failed[..failed.len().min(5)]
    );
    let mut canary_seen = 0;
    for (sent, received, _, version) in &log {
        // Before the split and after it was removed only version 2 is routable.
        let only_default = *received < on_start || *sent > off_done;
        if only_default {
            assert_eq!(
                version, "2",
                "a request outside the split window was served by {version}"
            );
        } else {
            assert!(version == "1" || version == "2");
        }
        if version == "1" && *sent > on_done && *received < off_start {
            canary_seen += 1;
        }
    }
    assert!(canary_seen > 0, "the split sent nothing to version 1");
    let text = server.metrics().await;
    let reloads = metric(
        &text,
        "model_lifecycle_total",
        &[
            ("model", "mlp"),
            ("version", "2"),
            ("action", "reload"),
            ("outcome", "success"),
        ],
    );
    assert_eq!(reloads, 20.0);
    server.stop().await;
}

#[actix_web::test]
async fn the_canary_share_matches_its_weight() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let (status, body) = server
        .admin(
            "PUT",
            "/admin/models/mlp/routing",
            r#"{"weights": {"1": 10, "2": 90}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "default_version": "2", "weights": { "1": 10, "2": 90 } })
    );
    let mut canary = 0;
    for chunk in 0..250 {
        let replies = join_all(
            (0..8).map(|_| server.post("/v1/models/mlp/predict", &json!({ "inputs": item() }))),
        )
        .await;
        for (status, body, _) in replies {
            assert_eq!(status, 200, "chunk {chunk}: {body}");
            canary += usize::from(body["version"] == "1");
        }
    }
    let share = canary as f64 / 2000.0 * 100.0;
    assert!(
        (share - 10.0).abs() <= 3.0,
        "canary share {share}% for weight 10"
    );
    // Pinned requests ignore the split; bad routing is refused.
    let (_, pinned, _) = server
        .post(
            "/v1/models/mlp/versions/2/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    assert_eq!(pinned["version"], "2");
    let (status, _) = server
        .admin(
            "PUT",
            "/admin/models/mlp/routing",
            r#"{"weights": {"7": 10}}"#,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .admin(
            "PUT",
            "/admin/models/mlp/routing",
            r#"{"weights": {"1": 0}}"#,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .admin("PUT", "/admin/models/mlp/routing", r#"{}"#)
        .await;
    assert_eq!(status, 400);
    let (status, body) = server
        .admin(
            "PUT",
            "/admin/models/mlp/routing",
            r#"{"default_version": "1", "weights": {}}"#,
        )
        .await;
    assert_eq!((status, body["default_version"].as_str()), (200, Some("1")));
    let (_, after, _) = server
        .post("/v1/models/mlp/predict", &json!({ "inputs": item() }))
        .await;
    assert_eq!(after["version"], "1");
    server.stop().await;
}

#[actix_web::test]
async fn reload_config_reconciles_with_the_settings_file() {
    let fixture = Fixture::new();
    fixture.copy_version("mlp", "2", "3");
    let file = fixture.path().join("serve.toml");
    let toml = fixture.settings_toml(&format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    std::fs::write(&file, &toml).unwrap();
    let settings = burnserve::Settings::load(Some(&file)).unwrap();
    let server = TestServer::start(settings).await;
    // Drop `echo`, add mlp/3 as the new default.
    let edited = toml
        .replace("[[models]]\nname = \"echo\"\nversions = [\"1\"]\n", "")
        .replace(
            "versions = [\"1\", \"2\"]\ndefault_version = \"2\"",
            "versions = [\"1\", \"2\", \"3\"]\ndefault_version = \"3\"",
        );
    assert_ne!(edited, toml);
    std::fs::write(&file, edited).unwrap();
    let (status, body) = server.admin("POST", "/admin/reload-config", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], json!([{ "model": "mlp", "version": "3" }]));
    assert_eq!(
        body["unloaded"],
        json!([{ "model": "echo", "version": "1" }])
    );
    assert_eq!(body["failed"], json!([]));
    assert_eq!(body["unchanged"].as_array().unwrap().len(), 6);
    let (_, served, _) = server
        .post("/v1/models/mlp/predict", &json!({ "inputs": item() }))
        .await;
    assert_eq!(served["version"], "3");
    let (status, _, _) = server
        .post(
            "/v1/models/echo/predict",
            &json!({ "inputs": [1, 2, 3, 4] }),
        )
        .await;
    assert_eq!(status, 404);
    // A broken file changes nothing.
    std::fs::write(&file, "[server]\nport = \"x\"").unwrap();
    let (status, body) = server.admin("POST", "/admin/reload-config", "").await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (400, Some("invalid_input"))
    );
    let (status, _, _) = server
        .post(
            "/v1/models/mlp/versions/3/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[actix_web::test]
async fn the_v2_repository_extension_lists_loads_and_unloads() {
    let fixture = Fixture::new();
    fixture.copy_version("mlp", "2", "3");
    let server = TestServer::start(fixture.admin_settings()).await;
    let (status, index) = server.admin("POST", "/v2/repository/index", "").await;
    assert_eq!(status, 200);
    let state_of = |index: &Value, model: &str, version: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == model && e["version"] == version)
            .map(|e| e["state"].clone())
    };
    assert_eq!(state_of(&index, "mlp", "2"), Some(json!("READY")));
    assert_eq!(state_of(&index, "mlp", "3"), Some(json!("UNAVAILABLE")));
    let (status, body) = server
        .admin("POST", "/v2/repository/models/mlp/load", "")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"].as_array().unwrap().len(), 3);
    let (_, index) = server.admin("POST", "/v2/repository/index", "").await;
    assert_eq!(state_of(&index, "mlp", "3"), Some(json!("READY")));
    let (status, body) = server
        .admin("POST", "/v2/repository/models/mlp/unload", "")
        .await;
    assert_eq!(
        (status, body["unloaded"].clone()),
        (200, json!(["1", "2", "3"]))
    );
    let (status, _, _) = server
        .post("/v1/models/mlp/predict", &json!({ "inputs": item() }))
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .admin("POST", "/v2/repository/models/nope/load", "")
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// What Triton's client does to restart a model: a repository unload then load. Unpinned
/// traffic must go where it went before: the settings' default, or the routing an operator set.
#[actix_web::test]
async fn a_repository_unload_and_load_keeps_the_models_routing() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let default_of = |meta: &Value| meta["parameters"]["default_version"].clone();
    let (_, meta) = server.get("/v2/models/mlp").await;
    assert_eq!(default_of(&meta), json!("2"), "the settings' default");
    let restart = || async {
        let (status, body) = server
            .admin("POST", "/v2/repository/models/mlp/unload", "")
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = server
            .admin("POST", "/v2/repository/models/mlp/load", "")
            .await;
        assert_eq!(status, 200, "{body}");
    };
    restart().await;
    let (_, meta) = server.get("/v2/models/mlp").await;
    assert_eq!(
        default_of(&meta),
        json!("2"),
        "not the first version loaded"
    );
    let (_, served, _) = server
        .post("/v1/models/mlp/predict", &json!({ "inputs": item() }))
        .await;
    assert_eq!(served["version"], "2");

    // Routing set through the admin API survives the same restart.
    let (status, body) = server
        .admin(
            "PUT",
            "/admin/models/mlp/routing",
            r#"{"default_version": "1", "weights": {"1": 3, "2": 1}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    restart().await;
    let (_, meta) = server.get("/v2/models/mlp").await;
    assert_eq!(default_of(&meta), json!("1"));
    assert_eq!(meta["parameters"]["weights"], json!({"1": 3, "2": 1}));
    let mut served_by = std::collections::BTreeMap::new();
    for _ in 0..8 {
        let (_, served, _) = server
            .post("/v1/models/mlp/predict", &json!({ "inputs": item() }))
            .await;
        *served_by
            .entry(served["version"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        served_by,
        [("1".to_string(), 6), ("2".to_string(), 2)].into()
    );
    server.stop().await;
}

/// The repository is a jail: names that climb out of it are refused before the disk is touched,
/// and a `model.toml` cannot point at a file outside its version directory; the answer is the
/// same whether or not the outside file exists.
#[actix_web::test]
async fn admin_loads_cannot_leave_the_repository() {
    let fixture = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    // A loadable version outside the repository: what an escaped path would serve.
    let escaped = outside.path().join("x").join("1");
    std::fs::create_dir_all(&escaped).unwrap();
    for file in ["model.toml", "model.safetensors"] {
        std::fs::copy(
            fixture.version_dir("mlp", "1").join(file),
            escaped.join(file),
        )
        .unwrap();
    }
    let server = TestServer::start(fixture.admin_settings()).await;
    let encoded_outside = outside.path().to_str().unwrap().replace('/', "%2F");
    for path in [
        format!("/admin/models/{encoded_outside}%2Fx/versions/1"),
        "/admin/models/..%2F..%2Fetc/versions/1".to_string(),
        "/admin/models/mlp/versions/%2E%2E".to_string(),
        "/admin/models/mlp/versions/1%2F..%2F2".to_string(),
        "/admin/models/.hidden/versions/1".to_string(),
    ] {
        let (status, body) = server.admin("POST", &path, "").await;
        assert_eq!(
            (status, body["error_type"].as_str()),
            (400, Some("invalid_input")),
            "{path}: {body}"
        );
    }
    let (status, _) = server
        .admin("POST", "/v2/repository/models/..%2F..%2Ftmp/load", "")
        .await;
    assert_eq!(status, 400);

    // A model.toml override naming files outside: one answer, existing target or not.
    let toml = std::fs::read_to_string(fixture.version_dir("mlp", "1").join("model.toml")).unwrap();
    let secret = outside.path().join("x/1/model.safetensors");
    // Symlinks inside the version directory that lead out, to a file that exists and one that
    // does not.
    let version_dir = fixture.version_dir("mlp", "1");
    std::os::unix::fs::symlink(&secret, version_dir.join("link-out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("absent"), version_dir.join("link-gone"))
        .unwrap();
    let mut answers = Vec::new();
    for weights in [
        secret.to_str().unwrap().to_string(),
        outside.path().join("absent").to_str().unwrap().to_string(),
        "../2/model.safetensors".to_string(),
        "../../../../no/such/file".to_string(),
        "link-out".to_string(),
        "link-gone".to_string(),
    ] {
        let body = toml.replace(
            "weights = \"model.safetensors\"",
            &format!("weights = {weights:?}"),
        );
        assert_ne!(body, toml);
        let (status, reply) = server
            .admin("POST", "/admin/models/mlp/versions/1", &body)
            .await;
        assert_eq!(status, 422, "{weights}: {reply}");
        answers.push(reply["error"].as_str().unwrap().to_string());
    }
    assert!(
        answers[0].contains("inside the version directory"),
        "{}",
        answers[0]
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");

    // A sha256 in model.toml is checked against the weights at load.
    let actual = burnserve_models::spec::sha256_of(&version_dir.join("model.safetensors")).unwrap();
    let with_sha = |sha: &str| {
        toml.replace(
            "weights = \"model.safetensors\"",
            &format!("weights = \"model.safetensors\"\nsha256 = \"{sha}\""),
        )
    };
    let (status, reply) = server
        .admin(
            "POST",
            "/admin/models/mlp/versions/1",
            &with_sha(&"0".repeat(64)),
        )
        .await;
    assert_eq!(
        (status, reply["error_type"].as_str()),
        (422, Some("load_failed")),
        "{reply}"
    );
    assert!(
        reply["error"].as_str().unwrap().contains(&actual),
        "{reply}"
    );
    let (status, reply) = server
        .admin("POST", "/admin/models/mlp/versions/1", &with_sha(&actual))
        .await;
    assert_eq!(status, 200, "{reply}");
    // What served before still serves.
    let (status, _, _) = server
        .post(
            "/v1/models/mlp/versions/1/predict",
            &json!({ "inputs": item() }),
        )
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// Values that size memory or time are bounded: a model.toml past a bound is refused naming its
/// key, over the admin API (400) and at start-up, and the control plane keeps working.
#[actix_web::test]
async fn model_toml_values_past_their_bounds_are_refused_naming_the_key() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.admin_settings()).await;
    let toml =
        std::fs::read_to_string(fixture.version_dir("echo", "1").join("model.toml")).unwrap();
    let with = |line: &str| {
        toml.replace(
            "max_batch_size = 64",
            &format!("max_batch_size = 64\n{line}"),
        )
    };
    for (body, key) in [
        (
            with("queue_capacity = 4611686018427387904"),
            "batching.queue_capacity",
        ),
        (
            with("queue_capacity = 1000000000"),
            "batching.queue_capacity",
        ),
        (
            toml.replace("max_batch_size = 64", "max_batch_size = 1000000"),
            "batching.max_batch_size",
        ),
        (
            toml.replace("max_batch_delay_ms = 20", "max_batch_delay_ms = 1e12"),
            "batching.max_batch_delay_ms",
        ),
        (format!("timeout_ms = 100000000000\n{toml}"), "timeout_ms"),
    ] {
        assert_ne!(body, toml);
        let (status, reply) = server
            .admin("POST", "/admin/models/echo/versions/1", &body)
            .await;
        assert_eq!(
            (status, reply["error_type"].as_str()),
            (400, Some("invalid_input")),
            "{reply}"
        );
        assert!(
            reply["error"].as_str().unwrap().contains(key),
            "{key}: {reply}"
        );
    }
    let (status, reply) = server.admin("GET", "/admin/models", "").await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = server
        .admin("POST", "/admin/models/echo/versions/1/reload", "")
        .await;
    assert_eq!(status, 200);
    server.stop().await;

    // At start-up the same value stops the server with the key named.
    let path = fixture.version_dir("echo", "1").join("model.toml");
    std::fs::write(
        &path,
        toml.replace(
            "max_batch_size = 64",
            "max_batch_size = 64\nqueue_capacity = 4611686018427387904",
        ),
    )
    .unwrap();
    let err = burnserve::start(fixture.settings())
        .await
        .err()
        .expect("start-up refused");
    assert!(err.to_string().contains("batching.queue_capacity"), "{err}");
}

/// `server.start_on_load_failure = "serve"`: a configured version that cannot load is reported
/// failed, with why, and the others serve; strict readiness says so, lenient readiness does not.
#[actix_web::test]
async fn start_up_can_degrade_and_readiness_follows_strictness() {
    let fixture = Fixture::new();
    // A configured version whose weights are missing.
    let broken = fixture.path().join("broken").join("1");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(
        fixture.version_dir("mlp", "1").join("model.toml"),
        broken.join("model.toml"),
    )
    .unwrap();
    let models = "[[models]]\nname = \"broken\"\nversions = [\"1\"]\n";
    let toml = |server: &str| {
        fixture
            .settings_toml(&format!("[admin]\ntoken = \"{TOKEN}\"\n{models}"))
            .replace("workers = 2\n", &format!("workers = 2\n{server}"))
    };
    // The default refuses to start, naming the version.
    let err = burnserve::start(burnserve::Settings::from_toml(&toml("")).unwrap())
        .await
        .err()
        .expect("start-up refused");
    assert!(err.to_string().contains("'broken' version '1'"), "{err}");

    for strict in [true, false] {
        let settings = burnserve::Settings::from_toml(&toml(&format!(
            "start_on_load_failure = \"serve\"\nstrict_readiness = {strict}\n"
        )))
        .unwrap();
        let server = TestServer::start(settings).await;
        let (status, body, _) = server
            .post(
                "/v1/models/echo/predict",
                &json!({ "inputs": [1.0, 2.0, 3.0, 4.0] }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = server.get("/ready").await;
        if strict {
            assert_eq!(
                (status, body["error_type"].as_str()),
                (503, Some("not_ready")),
                "{body}"
            );
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("broken/1 (failed:"),
                "{body}"
            );
        } else {
            assert_eq!(status, 200, "{body}");
        }
        let (status, body) = server.get("/v2/models/broken/ready").await;
        assert_eq!(
            (status, body["error_type"].as_str()),
            (503, Some("not_ready")),
            "{body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains("failed to load"),
            "{body}"
        );
        let (status, list) = server.admin("GET", "/admin/models", "").await;
        assert_eq!(status, 200);
        let failed: Vec<&Value> = list["pending"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["model"] == "broken")
            .collect();
        assert_eq!(failed.len(), 1, "{list}");
        assert_eq!(failed[0]["state"], "failed");
        assert!(
            failed[0]["error"].as_str().unwrap().contains("missing"),
            "{list}"
        );
        server.stop().await;
    }
}
