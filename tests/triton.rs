//! A Triton model repository served unchanged (`repository.control_mode`, `config.pbtxt`):
//! each honoured field shows its effect on what is served (version policy, instances, labels
//! and classification, reshape, the model file's name, queue policies that reject, warm-up,
//! no batch dimension, auto-complete); a bad configuration makes its model UNAVAILABLE with the
//! file, line and field while the rest serves; the repository API follows the control mode;
//! the poll mode follows added, replaced, broken and removed versions without failing a
//! request. The ONNX files are the test data of scripts/install-onnx-testdata.sh.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burnserve::Settings;
use common::{floats, metric, TestServer, TOKEN};
use serde_json::{json, Value};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/onnx-testdata")
        .join(name)
}

fn require_testdata() -> bool {
    burnserve_models::testdata::require(
        "the ONNX test data",
        testdata("fashion-mlp/model.onnx").is_file()
            && testdata("node/test_relu/model.onnx").is_file(),
        "bash scripts/install-onnx-testdata.sh",
    )
}

/// `<repo>/<model>/config.pbtxt` (when given) and each `(version, graph, file name)`.
fn add_model(repo: &Path, model: &str, config: Option<&str>, versions: &[(&str, &str, &str)]) {
    let dir = repo.join(model);
    std::fs::create_dir_all(&dir).expect("model dir");
    if let Some(config) = config {
        std::fs::write(dir.join("config.pbtxt"), config).expect("config.pbtxt");
    }
    for (version, graph, file) in versions {
        std::fs::create_dir_all(dir.join(version)).expect("version dir");
        std::fs::copy(testdata(graph), dir.join(version).join(file)).expect("graph");
    }
}

const MLP: &str = "fashion-mlp/model.onnx";
const CNN: &str = "fashion-cnn/model.onnx";
/// Fashion-MNIST's classes, as the label file lists them.
const LABELS: [&str; 10] = burnserve_train::datasets::FASHION_CLASSES;

const OUTPUT: &str = r#"output [{ name: "probabilities" data_type: TYPE_FP32 dims: [10] }]"#;

fn settings(repo: &Path, mode: &str, extra: &str) -> Settings {
    Settings::from_toml(&format!(
        "models = []\n[server]\nport = 0\nworkers = 2\nstart_on_load_failure = \"serve\"\n\
         [repository]\npath = \"{}\"\ncontrol_mode = \"{mode}\"\n{extra}\n[log]\nlevel = \"warn\"\n\
         [admin]\ntoken = \"{TOKEN}\"\n",
        repo.display()
    ))
    .expect("settings")
}

/// `n` images of deterministic pixels in [0, 1), as `[n, 28, 28]` rows.
fn images(n: usize) -> Vec<f32> {
    (0..n * 784)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect()
}

fn infer_body(shape: &[usize], data: &[f32], outputs: Value, parameters: Value) -> Value {
    json!({
        "inputs": [{ "name": "pixels", "datatype": "FP32", "shape": shape, "data": data }],
        "outputs": outputs,
        "parameters": parameters,
    })
}

async fn repository_index(server: &TestServer) -> Vec<(String, String, String, String)> {
    let (status, index) = server.admin("POST", "/v2/repository/index", "{}").await;
    assert_eq!(status, 200, "{index}");
    index
        .as_array()
        .expect("index list")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("version"), s("state"), s("reason"))
        })
        .collect()
}

fn state_of(
    index: &[(String, String, String, String)],
    model: &str,
    version: &str,
) -> (String, String) {
    index
        .iter()
        .find(|(m, v, _, _)| m == model && v == version)
        .map(|(_, _, state, reason)| (state.clone(), reason.clone()))
        .unwrap_or_else(|| ("ABSENT".into(), String::new()))
}

#[actix_web::test]
async fn each_config_field_shows_its_effect() {
    if !require_testdata() {
        return;
    }
    let repo = tempfile::tempdir().expect("repo");
    let repo = repo.path();
    let platform = "platform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n";
    add_model(
        repo,
        "latest2",
        Some(&format!(
            "{platform}version_policy: {{ latest: {{ num_versions: 2 }} }}"
        )),
        &[
            ("1", MLP, "model.onnx"),
            ("2", MLP, "model.onnx"),
            ("3", MLP, "model.onnx"),
        ],
    );
    add_model(
        repo,
        "specific",
        Some(&format!(
            "{platform}version_policy: {{ specific: {{ versions: [1, 3] }} }}"
        )),
        &[
            ("1", MLP, "model.onnx"),
            ("2", MLP, "model.onnx"),
            ("3", MLP, "model.onnx"),
        ],
    );
    add_model(
        repo,
        "labelled",
        Some(
            "name: \"labelled\"\nbackend: \"onnxruntime\"\nmax_batch_size: 8\n\
             default_model_filename: \"net.onnx\"\n\
             input [{ name: \"pixels\" data_type: TYPE_FP32 dims: [784] reshape: { shape: [28, 28] } }]\n\
             output [{ name: \"probabilities\" data_type: TYPE_FP32 dims: [10] label_filename: \"labels.txt\" }]\n\
             instance_group [{ count: 2 kind: KIND_CPU }]\n\
             parameters { key: \"intra_op_thread_count\" value: { string_value: \"1\" } }\n",
        ),
        &[("1", MLP, "net.onnx")],
    );
    std::fs::write(repo.join("labelled/labels.txt"), LABELS.join("\n")).expect("labels");
    let queue = |allow: bool, timeout_us: u64| {
        format!(
            "{platform}{OUTPUT}\ndynamic_batching {{ max_queue_delay_microseconds: 500 \
             preferred_batch_size: [2, 4] default_queue_policy {{ default_timeout_microseconds: \
             {timeout_us} allow_timeout_override: {allow} max_queue_size: 16 }} }}"
        )
    };
    add_model(
        repo,
        "override",
        Some(&queue(true, 10_000_000)),
        &[("1", MLP, "model.onnx")],
    );
    add_model(
        repo,
        "no_override",
        Some(&queue(false, 10_000_000)),
        &[("1", MLP, "model.onnx")],
    );
    add_model(
        repo,
        "rejecting",
        Some(&queue(false, 1)),
        &[("1", CNN, "model.onnx")],
    );
    let warmup = |dims: &str| {
        format!(
            "{platform}model_warmup [{{ name: \"zeros\" batch_size: 2 count: 3 inputs {{ key: \
             \"pixels\" value: {{ data_type: TYPE_FP32 dims: {dims} zero_data: true }} }} }}]"
        )
    };
    add_model(
        repo,
        "warm",
        Some(&warmup("[28, 28]")),
        &[("1", MLP, "model.onnx")],
    );
    add_model(
        repo,
        "warm_bad",
        Some(&warmup("[3, 3]")),
        &[("1", MLP, "model.onnx")],
    );
    let from_file = |file: &str| {
        format!(
            "{platform}model_warmup [{{ name: \"file\" batch_size: 2 inputs {{ key: \"pixels\" \
             value: {{ data_type: TYPE_FP32 dims: [28, 28] input_data_file: \"{file}\" }} }} }}, \
             {{ name: \"random\" inputs {{ key: \"pixels\" value: {{ data_type: TYPE_FP32 \
             dims: [28, 28] random_data: true }} }} }}]"
        )
    };
    add_model(
        repo,
        "warm_file",
        Some(&from_file("pixels.bin")),
        &[("1", MLP, "model.onnx")],
    );
    std::fs::create_dir_all(repo.join("warm_file/warmup")).expect("warmup dir");
    let raw: Vec<u8> = images(2).iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(repo.join("warm_file/warmup/pixels.bin"), raw).expect("warmup data");
    add_model(
        repo,
        "warm_escape",
        Some(&from_file("../config.pbtxt")),
        &[("1", MLP, "model.onnx")],
    );
    add_model(
        repo,
        "nobatch",
        Some(
            "platform: \"onnxruntime_onnx\"\nmax_batch_size: 0\n\
             input [{ name: \"pixels\" data_type: TYPE_FP32 dims: [-1, 28, 28] }]\n\
             output [{ name: \"probabilities\" data_type: TYPE_FP32 dims: [-1, 10] }]",
        ),
        &[("1", MLP, "model.onnx")],
    );
    add_model(
        repo,
        "auto",
        None,
        &[("1", CNN, "model.onnx"), ("2", MLP, "model.onnx")],
    );
    // Our own layout beside Triton's: a model.toml per version, every version served.
    add_model(
        repo,
        "own",
        None,
        &[("1", MLP, "graph.onnx"), ("2", MLP, "graph.onnx")],
    );
    for version in ["1", "2"] {
        std::fs::write(
            repo.join("own").join(version).join("model.toml"),
            "architecture = \"onnx\"\nweights = \"graph.onnx\"\ntimeout_ms = 4321\n",
        )
        .expect("model.toml");
    }

    let server = TestServer::start(settings(repo, "none", "")).await;
    let index = repository_index(&server).await;
    for (model, version, state) in [
        ("latest2", "1", "UNAVAILABLE"),
        ("latest2", "2", "READY"),
        ("latest2", "3", "READY"),
        ("specific", "1", "READY"),
        ("specific", "2", "UNAVAILABLE"),
        ("specific", "3", "READY"),
        ("labelled", "1", "READY"),
        ("warm", "1", "READY"),
        ("warm_bad", "1", "UNAVAILABLE"),
        ("warm_file", "1", "READY"),
        ("warm_escape", "1", "UNAVAILABLE"),
        ("nobatch", "1", "READY"),
        ("auto", "1", "UNAVAILABLE"),
        ("auto", "2", "READY"),
        ("own", "1", "READY"),
        ("own", "2", "READY"),
    ] {
        assert_eq!(
            state_of(&index, model, version).0,
            state,
            "{model}/{version}: {index:?}"
        );
    }
    // The warm-up ran at load, with the configuration's sample: a sample that does not fit the
    // graph failed the load, naming it.
    let (_, why) = state_of(&index, "warm_bad", "1");
    assert!(why.contains("model_warmup 'zeros'"), "{why}");
    let (_, why) = state_of(&index, "warm_escape", "1");
    assert!(
        why.contains("model_warmup[0].inputs") && why.contains("warmup directory"),
        "{why}"
    );

    // Without a version, the latest the policy serves answers.
    let pixels = images(2);
    let body = infer_body(&[2, 28, 28], &pixels, json!([]), json!({}));
    let (status, plain, _) = server.post("/v2/models/latest2/infer", &body).await;
    assert_eq!(
        (status, plain["model_version"].as_str()),
        (200, Some("3")),
        "{plain}"
    );
    let expected = floats(&plain["outputs"][0]["data"]);
    let (status, answer, _) = server
        .post("/v2/models/latest2/versions/1/infer", &body)
        .await;
    assert_eq!(status, 404, "{answer}");

    // Reshape: clients send [n, 784], the graph gets [n, 28, 28]; the same probabilities. The
    // file is the configuration's `default_model_filename`.
    let flat = infer_body(&[2, 784], &pixels, json!([]), json!({}));
    let (status, answer, _) = server.post("/v2/models/labelled/infer", &flat).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(floats(&answer["outputs"][0]["data"]), expected);
    assert_eq!(answer["outputs"][0]["shape"], json!([2, 10]));
    let (status, answer, _) = server.post("/v2/models/labelled/infer", &body).await;
    assert_eq!(
        status, 422,
        "[2, 28, 28] is not the declared [784]: {answer}"
    );
    // Labels: the classification extension names each class from labels.txt.
    let classify = infer_body(
        &[2, 784],
        &pixels,
        json!([{ "name": "probabilities", "parameters": { "classification": 3 } }]),
        json!({}),
    );
    let (status, answer, _) = server.post("/v2/models/labelled/infer", &classify).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["datatype"], "BYTES");
    assert_eq!(answer["outputs"][0]["shape"], json!([2, 3]));
    for row in 0..2 {
        let probabilities = &expected[row * 10..row * 10 + 10];
        let best = (0..10)
            .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
            .unwrap();
        let first = answer["outputs"][0]["data"][row * 3]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            first,
            format!("{:.6}:{best}:{}", probabilities[best], LABELS[best]),
            "{answer}"
        );
    }
    // Two instances, on one thread each.
    let (_, config) = server.get("/v2/models/labelled/config").await;
    assert_eq!(config["instance_group"][0]["count"], 2, "{config}");
    assert_eq!(
        config["parameters"]["threads_per_instance"]["string_value"],
        "1"
    );
    assert_eq!(config["default_model_filename"], "net.onnx");
    assert_eq!(config["input"][0]["reshape"]["shape"], json!([28, 28]));
    assert_eq!(config["output"][0]["label_filename"], "labels.txt");
    assert_eq!(config["output"][0]["labels"][8], "Bag");
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "model_instances",
            &[("model", "labelled"), ("version", "1")]
        ),
        2.0
    );

    // Queue policies: a request's own timeout of 1 µs is refused only where the model allows
    // an override; a default timeout of 1 µs refuses every request.
    let hurried = infer_body(&[2, 28, 28], &pixels, json!([]), json!({ "timeout": 1 }));
    let (status, answer, _) = server.post("/v2/models/override/infer", &hurried).await;
    assert!(
        status >= 400,
        "allowed override of 1 µs answered {status}: {answer}"
    );
    let (status, answer, _) = server.post("/v2/models/no_override/infer", &hurried).await;
    assert_eq!(
        status, 200,
        "the override is not allowed, the 10 s default holds: {answer}"
    );
    assert_eq!(floats(&answer["outputs"][0]["data"]), expected);
    for _ in 0..3 {
        let (status, answer, _) = server.post("/v2/models/rejecting/infer", &body).await;
        assert!(
            status >= 400,
            "a 1 µs queue timeout answered {status}: {answer}"
        );
    }
    let (_, config) = server.get("/v2/models/no_override/config").await;
    let policy = &config["dynamic_batching"]["default_queue_policy"];
    assert_eq!(
        (
            policy["max_queue_size"].clone(),
            policy["allow_timeout_override"].clone()
        ),
        (json!(16), json!(false)),
        "{config}"
    );
    assert_eq!(
        config["dynamic_batching"]["preferred_batch_size"],
        json!([2, 4])
    );
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"],
        500
    );

    // No batch dimension: the whole tensor is the request's, metadata has no batch -1 added.
    let (_, meta) = server.get("/v2/models/nobatch").await;
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 28, 28]), "{meta}");
    let (status, answer, _) = server.post("/v2/models/nobatch/infer", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(floats(&answer["outputs"][0]["data"]), expected);

    // Auto-complete: the latest version, its signature from the graph.
    let (_, config) = server.get("/v2/models/auto/config").await;
    assert_eq!(
        (
            config["platform"].as_str(),
            config["input"][0]["dims"].clone()
        ),
        (Some("onnxruntime_onnx"), json!([28, 28])),
        "{config}"
    );
    let (status, answer, _) = server.post("/v2/models/auto/infer", &body).await;
    assert_eq!(
        (status, answer["model_version"].as_str()),
        (200, Some("2")),
        "{answer}"
    );

    let (status, answer, _) = server.post("/v2/models/own/versions/1/infer", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(floats(&answer["outputs"][0]["data"]), expected);
    let (_, config) = server.get("/v2/models/own/config").await;
    assert_eq!(
        config["parameters"]["timeout_ms"]["string_value"], "4321",
        "{config}"
    );

    // Mode none: the repository decides; its API may not load or unload.
    for action in ["load", "unload"] {
        let (status, answer) = server
            .admin(
                "POST",
                &format!("/v2/repository/models/auto/{action}"),
                "{}",
            )
            .await;
        assert_eq!(
            (status, answer["error_type"].as_str()),
            (403, Some("forbidden")),
            "{answer}"
        );
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("control mode is none"),
            "{answer}"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn bad_configurations_are_unavailable_naming_file_line_and_field() {
    if !require_testdata() {
        return;
    }
    let repo = tempfile::tempdir().expect("repo");
    let repo = repo.path();
    let input = r#"input [{ name: "pixels" data_type: TYPE_FP32 dims: [28, 28] }]"#;
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("unparsable", "max_batch_size: 8\n\nmax_batch_size: \"eight\"".into(), MLP, "config.pbtxt line 3, max_batch_size"),
        (
            "no_such_tensor",
            format!("max_batch_size: 8\ninput [{{ name: \"image\" data_type: TYPE_FP32 dims: [28, 28] }}]\n{OUTPUT}"),
            MLP,
            "config.pbtxt line 2, input[0].name: the graph has no input 'image'",
        ),
        (
            "wrong_dims",
            format!("max_batch_size: 8\n{input}\noutput [{{ name: \"probabilities\" data_type: TYPE_FP32 dims: [12] }}]"),
            MLP,
            "config.pbtxt line 3, output[0].dims",
        ),
        (
            "wrong_type",
            "max_batch_size: 8\ninput [{ name: \"pixels\" data_type: TYPE_INT64 dims: [28, 28] }]".into(),
            MLP,
            "input[0].data_type: TYPE_INT64 is declared",
        ),
        ("fixed_batch", "max_batch_size: 8".into(), "node/test_relu/model.onnx", "max_batch_size: 8 is above what the graph takes"),
        ("gpu", "instance_group [{ kind: KIND_GPU gpus: [0] }]".into(), MLP, "instance_group[0]"),
        ("escape", "default_model_filename: \"../../x.onnx\"".into(), MLP, "default_model_filename"),
        (
            "labels_outside",
            format!("max_batch_size: 8\n{input}\noutput [{{ name: \"probabilities\" data_type: TYPE_FP32 dims: [10] label_filename: \"up.txt\" }}]"),
            MLP,
            "output[0].label_filename",
        ),
        ("python", "backend: \"python\"".into(), MLP, "config.pbtxt line 1, backend: 'python' is not run"),
        ("stateful", "sequence_batching { }".into(), MLP, "sequence_batching: sequence batching"),
    ];
    for (model, config, graph, _) in &cases {
        add_model(repo, model, Some(config), &[("1", graph, "model.onnx")]);
    }
    // A label file that is a link out of the repository.
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("labels.txt"), LABELS.join("\n")).expect("labels");
    std::os::unix::fs::symlink(
        outside.path().join("labels.txt"),
        repo.join("labels_outside/up.txt"),
    )
    .expect("link");
    add_model(repo, "good", None, &[("1", MLP, "model.onnx")]);
    // A config.pbtxt that is a link out of the repository.
    std::fs::write(outside.path().join("config.pbtxt"), "max_batch_size: 8").expect("config");
    add_model(repo, "linked_config", None, &[("1", MLP, "model.onnx")]);
    std::os::unix::fs::symlink(
        outside.path().join("config.pbtxt"),
        repo.join("linked_config/config.pbtxt"),
    )
    .expect("link");

    let server = TestServer::start(settings(repo, "none", "")).await;
    let index = repository_index(&server).await;
    for (model, _, _, needle) in &cases {
        let (state, reason) = state_of(&index, model, "1");
        assert_eq!(state, "UNAVAILABLE", "{model}: {index:?}");
        assert!(
            reason.contains(needle),
            "{model}: '{needle}' not in '{reason}'"
        );
    }
    #[cfg(not(feature = "cuda"))]
    assert!(state_of(&index, "gpu", "1").1.contains("--features cuda"));
    assert_eq!(state_of(&index, "good", "1").0, "READY");
    let (state, why) = state_of(&index, "linked_config", "1");
    assert!(
        state == "UNAVAILABLE" && why.contains("only inside the model repository"),
        "{why}"
    );
    let body = infer_body(&[1, 28, 28], &images(1), json!([]), json!({}));
    let (status, answer, _) = server.post("/v2/models/good/infer", &body).await;
    assert_eq!(status, 200, "the rest serves: {answer}");
    let (status, answer, _) = server.post("/v2/models/unparsable/infer", &body).await;
    assert_eq!(status, 404, "{answer}");
    server.stop().await;
}

#[actix_web::test]
async fn explicit_mode_loads_what_is_named_and_the_repository_api_the_rest() {
    if !require_testdata() {
        return;
    }
    let repo = tempfile::tempdir().expect("repo");
    let repo = repo.path();
    add_model(repo, "named", None, &[("1", MLP, "model.onnx")]);
    add_model(
        repo,
        "later",
        Some("version_policy: { all: {} }"),
        &[("1", MLP, "model.onnx"), ("2", MLP, "model.onnx")],
    );
    let server = TestServer::start(settings(repo, "explicit", "load_models = [\"named\"]")).await;
    let index = repository_index(&server).await;
    assert_eq!(state_of(&index, "named", "1").0, "READY", "{index:?}");
    assert_eq!(state_of(&index, "later", "1").0, "UNAVAILABLE", "{index:?}");
    let (status, answer) = server
        .admin("POST", "/v2/repository/models/later/load", "{}")
        .await;
    assert_eq!(status, 200, "{answer}");
    let index = repository_index(&server).await;
    assert_eq!(
        (
            state_of(&index, "later", "1").0,
            state_of(&index, "later", "2").0
        ),
        ("READY".to_string(), "READY".to_string())
    );
    let (_, meta) = server.get("/v2/models/later").await;
    assert_eq!(meta["versions"], json!(["1", "2"]), "{meta}");
    server.stop().await;
}

/// Waits until `check(index)` holds, at most `limit`; answers how long it took.
async fn until(
    server: &TestServer,
    limit: Duration,
    what: &str,
    check: impl Fn(&[(String, String, String, String)]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let index = repository_index(server).await;
        if check(&index) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what} not within {limit:?}: {index:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn poll_mode_follows_the_repository_without_failing_a_request() {
    if !require_testdata() {
        return;
    }
    const POLL_MS: u64 = 500;
    let repo_dir = tempfile::tempdir().expect("repo");
    let repo = repo_dir.path().to_path_buf();
    add_model(
        &repo,
        "m",
        Some("platform: \"onnxruntime_onnx\"\nmax_batch_size: 8\nversion_policy: { all: {} }"),
        &[("1", MLP, "model.onnx")],
    );
    let server = TestServer::start(settings(
        &repo,
        "poll",
        &format!("poll_interval_ms = {POLL_MS}"),
    ))
    .await;
    let two_polls = Duration::from_millis(2 * POLL_MS);

    // A client sending without pause to the model's default version for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (base, stop) = (server.base.clone(), stop.clone());
        actix_web::rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish();
            let body = infer_body(&[1, 28, 28], &images(1), json!([]), json!({})).to_string();
            let (mut sent, mut failed, mut versions) =
                (0usize, Vec::new(), std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut response = client
                    .post(format!("{base}/v2/models/m/infer"))
                    .insert_header(("content-type", "application/json"))
                    .send_body(body.clone())
                    .await
                    .expect("sent");
                let bytes = response.body().await.expect("body");
                let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                sent += 1;
                if response.status().as_u16() == 200 {
                    versions.insert(answer["model_version"].as_str().unwrap_or("").to_string());
                } else {
                    failed.push(answer.to_string());
                }
            }
            (sent, failed, versions)
        })
    };

    // Added: version 2 loads and becomes the default (the latest).
    add_model(&repo, "m", None, &[("2", CNN, "model.onnx")]);
    let took = until(
        &server,
        two_polls + Duration::from_secs(10),
        "version 2 READY",
        |i| state_of(i, "m", "2").0 == "READY",
    )
    .await;
    eprintln!("version 2 served {took:?} after it was added (poll every {POLL_MS} ms)");
    let body = infer_body(&[1, 28, 28], &images(1), json!([]), json!({}));
    let (_, cnn) = {
        let (s, a, _) = server.post("/v2/models/m/infer", &body).await;
        (s, a)
    };
    assert_eq!(cnn["model_version"], "2", "{cnn}");

    // Replaced: version 2's file becomes the MLP; the new one serves once warm.
    let (_, mlp) = {
        let (s, a, _) = server.post("/v2/models/m/versions/1/infer", &body).await;
        (s, a)
    };
    std::fs::copy(testdata(MLP), repo.join("m/2/model.onnx.tmp")).expect("copy");
    std::fs::rename(repo.join("m/2/model.onnx.tmp"), repo.join("m/2/model.onnx")).expect("rename");
    let start = Instant::now();
    loop {
        let (_, answer, _) = server.post("/v2/models/m/infer", &body).await;
        if answer["outputs"] == mlp["outputs"] {
            break;
        }
        assert!(
            start.elapsed() < two_polls + Duration::from_secs(10),
            "version 2 not replaced"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }

    // Broken: a torn file leaves the serving version alone.
    std::fs::write(repo.join("m/2/model.onnx"), b"not an onnx file").expect("write");
    actix_web::rt::time::sleep(two_polls + Duration::from_millis(200)).await;
    let (status, answer, _) = server.post("/v2/models/m/infer", &body).await;
    assert_eq!(
        (status, answer["outputs"].clone()),
        (200, mlp["outputs"].clone()),
        "{answer}"
    );
    std::fs::copy(testdata(MLP), repo.join("m/2/model.onnx")).expect("restore");

    // Removed: version 1 unloads and leaves the index.
    std::fs::remove_dir_all(repo.join("m/1")).expect("remove");
    let took = until(
        &server,
        two_polls + Duration::from_secs(10),
        "version 1 gone",
        |i| state_of(i, "m", "1").0 == "ABSENT",
    )
    .await;
    eprintln!("version 1 left the index {took:?} after it was removed");
    assert!(
        took <= two_polls + Duration::from_millis(500),
        "index followed in {took:?}"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed, versions) = client.await.expect("client");
    eprintln!("the client sent {sent} requests while the repository changed");
    assert!(sent > 50, "{sent}");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(
        versions.contains("1") && versions.contains("2"),
        "{versions:?}"
    );
    server.stop().await;
}

/// `n` single-image requests to `model` at once; their statuses and error types.
async fn burst(server: &TestServer, model: &str, n: usize) -> Vec<(u16, String)> {
    let body = infer_body(&[1, 28, 28], &images(1), json!([]), json!({}));
    let path = format!("/v2/models/{model}/infer");
    let answers = futures_util::future::join_all((0..n).map(|_| server.post(&path, &body))).await;
    answers
        .into_iter()
        .map(|(status, answer, _)| {
            (
                status,
                answer["error_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn queue_size_preferred_batches_and_optional_inputs_under_a_burst() {
    if !require_testdata() {
        return;
    }
    let repo = tempfile::tempdir().expect("repo");
    let repo = repo.path();
    let config = |batching: &str, optional: bool| {
        format!(
            "platform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n\
             input [{{ name: \"pixels\" data_type: TYPE_FP32 dims: [28, 28] optional: {optional} }}]\n\
             {OUTPUT}\n{batching}"
        )
    };
    let queue = |size: u32| {
        format!(
            "dynamic_batching {{ max_queue_delay_microseconds: 0 default_queue_policy {{ \
             max_queue_size: {size} }} }}"
        )
    };
    add_model(
        repo,
        "small_queue",
        Some(&config(&queue(1), false)),
        &[("1", CNN, "model.onnx")],
    );
    add_model(
        repo,
        "large_queue",
        Some(&config(&queue(64), false)),
        &[("1", CNN, "model.onnx")],
    );
    let preferred =
        "dynamic_batching { max_queue_delay_microseconds: 200000 preferred_batch_size: [2] }";
    add_model(
        repo,
        "preferred",
        Some(&config(preferred, false)),
        &[("1", MLP, "model.onnx")],
    );
    add_model(
        repo,
        "optional",
        Some(&config("", true)),
        &[("1", MLP, "model.onnx")],
    );
    let server = TestServer::start(settings(repo, "none", "")).await;

    // A queue of one refuses what it cannot hold (429 overloaded); one of 64 holds the burst.
    let answers = burst(&server, "small_queue", 48).await;
    let refused = answers
        .iter()
        .filter(|(s, e)| *s == 429 && e == "overloaded")
        .count();
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    assert!(refused > 0 && refused + served == 48, "{answers:?}");
    let answers = burst(&server, "large_queue", 48).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let metrics = server.metrics().await;
    let overloaded = metric(
        &metrics,
        "inference_errors_total",
        &[("model", "small_queue"), ("error_type", "overloaded")],
    );
    assert_eq!(overloaded as usize, refused, "each refusal counted once");

    // Preferred batch size 2: no pass runs more than 2 rows, though 8 would fit.
    let answers = burst(&server, "preferred", 12).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let (_, stats) = server.get("/v2/models/preferred/stats").await;
    let stats = &stats["model_stats"][0];
    assert_eq!(stats["inference_count"], 12, "{stats}");
    let sizes: Vec<u64> = stats["batch_stats"]
        .as_array()
        .expect("batch stats")
        .iter()
        .map(|b| b["batch_size"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        !sizes.is_empty() && sizes.iter().all(|&s| s <= 2),
        "{sizes:?}"
    );

    // An optional input may be left out of a request: the load's warm-up runs the model
    // without it, and this graph needs it, so the model is UNAVAILABLE saying so.
    let index = repository_index(&server).await;
    let (state, why) = state_of(&index, "optional", "1");
    assert_eq!(state, "UNAVAILABLE", "{index:?}");
    assert!(why.contains("warm-up failed"), "{why}");
    server.stop().await;
}
