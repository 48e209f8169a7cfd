//! all-MiniLM-L6-v2 as `--config config/minilm.toml` serves it: the simple API, v2 BYTES and
//! `/v1/embeddings` answer the same vectors as the model run in-process, concurrent requests
//! batch without mixing rows up, and wrong inputs get clear errors. Fails naming
//! `scripts/fetch-minilm.sh` when its files are absent.

mod common;

use std::path::Path;

use burnserve::Settings;
use burnserve_models::arch::bert::TextEmbedder;
use burnserve_models::arch::CpuBackend;
use burnserve_models::ModelSpec;
use common::{floats, metric, TestServer};
use serde_json::json;

const DIM: usize = 384;
const HELLO_WORLD_HEAD: [f32; 3] = [-0.034_477, 0.031_023, 0.006_735];

fn minilm_dir() -> Option<&'static Path> {
    let dir = Path::new("models/repository/minilm/1");
    burnserve_models::testdata::require_minilm(dir).then_some(dir)
}

fn assert_close(served: &[f32], expected: &[f32], what: &str) {
    assert_eq!(served.len(), expected.len(), "{what}");
    let worst = served
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: differs by {worst}");
}

#[actix_web::test]
async fn serves_minilm_embeddings_over_every_api() {
    let Some(dir) = minilm_dir() else { return };
    let texts: Vec<String> = [
        "Hello world",
        "A man is playing a guitar.",
        "The new movie is awesome, I loved every minute of it and would watch it again.",
        "",
    ]
    .map(String::from)
    .to_vec();
    let spec = ModelSpec::from_dir(dir).unwrap();
    let mut model = TextEmbedder::<CpuBackend>::load(&spec, dir, Default::default()).unwrap();
    let reference: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| model.embed(vec![t.clone()]).unwrap().0)
        .collect();
    let tokens: usize = texts
        .iter()
        .map(|t| model.token_ids(t).unwrap().len())
        .sum();

    let mut settings = Settings::load(Some(Path::new("config/minilm.toml"))).unwrap();
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.log.level = "warn".into();
    assert_eq!(settings.models[1].name, "minilm");
    let server = TestServer::start(settings).await;

    let (status, meta) = server.get("/v2/models/minilm").await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["inputs"][0],
        json!({ "name": "text", "datatype": "BYTES", "shape": [-1, 1] })
    );
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, DIM]));

    // Simple API: a list of strings, and a lone string.
    let (status, body, headers) = server
        .post("/v1/models/minilm/predict", &json!({ "inputs": texts }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("x-inference-time"));
    assert!(body.get("predictions").is_none(), "no labels, no top-k");
    let outputs = body["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), texts.len());
    for (i, row) in outputs.iter().enumerate() {
        assert_close(&floats(row), &reference[i], &format!("simple API text {i}"));
    }
    let first = floats(&outputs[0]);
    for (got, want) in first.iter().zip(HELLO_WORLD_HEAD) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
    let (status, body, _) = server
        .post(
            "/v1/models/minilm/predict",
            &json!({ "inputs": "Hello world" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_close(&floats(&body["outputs"][0]), &reference[0], "lone string");

    // KServe v2 with a BYTES tensor.
    let request = json!({ "inputs": [{ "name": "text", "shape": [2], "datatype": "BYTES", "data": [texts[1], texts[2]] }] });
    let (status, body, _) = server.post("/v2/models/minilm/infer", &request).await;
    assert_eq!(status, 200, "{body}");
    let output = &body["outputs"][0];
    assert_eq!(
        (&output["name"], &output["shape"]),
        (&json!("embedding"), &json!([2, DIM]))
    );
    let data = floats(&output["data"]);
    assert_close(&data[..DIM], &reference[1], "v2 row 0");
    assert_close(&data[DIM..], &reference[2], "v2 row 1");

    // OpenAI-style embeddings, with token usage.
    let (status, body, _) = server
        .post(
            "/v1/embeddings",
            &json!({ "model": "minilm", "input": texts }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "minilm/1");
    assert_eq!(body["usage"]["prompt_tokens"], json!(tokens));
    assert_eq!(body["usage"]["total_tokens"], json!(tokens));
    for (i, item) in body["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            (item["object"].as_str(), item["index"].as_u64()),
            (Some("embedding"), Some(i as u64))
        );
        assert_close(&floats(&item["embedding"]), &reference[i], "embeddings API");
    }
    // The same body as an async job: the same answer, once it has run.
    let (status, job, _) = server
        .post(
            "/v1/embeddings/jobs",
            &json!({ "model": "minilm", "input": texts }),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        (job["kind"].as_str(), job["version"].as_str()),
        (Some("embeddings"), Some("1"))
    );
    let path = format!("/v1/jobs/{}", job["job_id"].as_str().unwrap());
    let done = loop {
        let (status, job) = server.get(&path).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] != "PENDING" && job["status"] != "RUNNING" {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["model"], "minilm/1");
    assert_eq!(done["result"]["usage"]["prompt_tokens"], json!(tokens));
    for (i, item) in done["result"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_close(&floats(&item["embedding"]), &reference[i], "embeddings job");
    }
    let (status, body, _) = server
        .post(
            "/v1/embeddings",
            &json!({ "model": "minilm/1", "input": "Hello world", "encoding_format": "float" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 4);

    // Wrong inputs: each with its status, error_type and a message that says what to fix.
    let cases = [
        (
            "/v1/models/minilm/predict",
            json!({ "inputs": [0.5, 0.25] }),
            422,
            "takes BYTES",
        ),
        (
            "/v1/embeddings",
            json!({ "model": "fashion", "input": "x" }),
            422,
            "takes FP32",
        ),
        (
            "/v1/embeddings",
            json!({ "model": "minilm", "input": "x", "encoding_format": "base64" }),
            400,
            "float only",
        ),
        (
            "/v1/embeddings",
            json!({ "model": "minilm", "input": [1, 2] }),
            400,
            "list of strings",
        ),
        (
            "/v1/embeddings",
            json!({ "model": "minilm", "input": "x", "dimensions": 128 }),
            400,
            "returns 384",
        ),
        (
            "/v1/embeddings",
            json!({ "model": "nope", "input": "x" }),
            404,
            "nope",
        ),
        (
            "/v2/models/minilm/infer",
            json!({ "inputs": [{ "name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"] }] }),
            422,
            "this model takes [n, 1]",
        ),
        (
            "/v1/models/minilm/predict",
            json!({ "inputs": vec!["a"; 33] }),
            422,
            "max_batch_size",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (got, reply, _) = server.post(path, &body).await;
        assert_eq!(got, status, "{path} {body}: {reply}");
        assert!(reply["error_type"].is_string(), "{reply}");
        assert!(
            reply["error"].as_str().unwrap_or("").contains(needle),
            "{path} {body}: {reply}"
        );
    }

    // A wrong `dimensions` is refused before the model runs: no batch is executed for it.
    let minilm = [("model", "minilm"), ("version", "1")];
    let batches_before = metric(
        &server.metrics().await,
        "inference_batch_size_count",
        &minilm,
    );
    let (status, reply, _) = server
        .post(
            "/v1/embeddings",
            &json!({ "model": "minilm", "input": ["x", "y"], "dimensions": 768 }),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let after = server.metrics().await;
    assert_eq!(
        metric(&after, "inference_batch_size_count", &minilm),
        batches_before,
        "the model never ran"
    );
    assert!(batches_before >= 1.0, "earlier requests did run batches");

    // Concurrent single-text requests batch together, and each gets its own row back.
    let before = server.metrics().await;
    let labels = [("model", "minilm"), ("version", "1")];
    let batches_before = metric(&before, "inference_batch_size_count", &labels);
    let requests = 16;
    let replies = futures_util::future::join_all((0..requests).map(|i| {
        let text = texts[i % texts.len()].clone();
        let server = &server;
        async move {
            let (status, body, _) = server
                .post("/v1/models/minilm/predict", &json!({ "inputs": [text] }))
                .await;
            (i, status, body)
        }
    }))
    .await;
    for (i, status, body) in replies {
        assert_eq!(status, 200, "{body}");
        assert_close(
            &floats(&body["outputs"][0]),
            &reference[i % texts.len()],
            &format!("concurrent request {i}"),
        );
    }
    let after = server.metrics().await;
    let batches = metric(&after, "inference_batch_size_count", &labels) - batches_before;
    assert!(
        batches < requests as f64,
        "{requests} concurrent requests ran in {batches} batches"
    );
    server.running_handle.stop(true).await;
}
