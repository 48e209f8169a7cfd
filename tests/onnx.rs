//! The user's own ONNX files, in process and served: our bundled Fashion models exported to
//! ONNX (scripts/install-onnx-testdata.sh) give the native architectures' probabilities within
//! 1e-5 and the same accuracy on all 10,000 test images; a directory holding only
//! `model.onnx` loads through the admin API with its signature from the graph and answers the
//! v2 API; hostile files are refused with 422 naming what is wrong, and the server serves on.

mod common;

use std::path::{Path, PathBuf};

use burnserve::Settings;
use burnserve_models::onnx::{complete_spec, default_spec};
use burnserve_models::{
    forward_f32, load_model, Device, Jail, ModelSpec, NamedTensor, Symlinks, TensorData,
};
use burnserve_train::datasets::{fashion_mnist_available, FashionMnist, Split};
use common::{floats, Fixture, TestServer};
use serde_json::json;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnx-testdata")
}

fn require_testdata() -> bool {
    burnserve_models::testdata::require(
        "the ONNX test data",
        testdata().join("fashion-cnn/model.onnx").is_file(),
        "bash scripts/install-onnx-testdata.sh",
    )
}

fn onnx_spec(dir: &Path) -> ModelSpec {
    let mut spec = default_spec().expect("default onnx spec");
    let jail = Jail::open(dir, Symlinks::Inside).expect("jail");
    complete_spec(&mut spec, &jail, dir).expect("signature from the graph");
    spec
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

#[test]
fn fashion_onnx_files_equal_the_native_models_on_all_10000_test_images() {
    if !require_testdata()
        || !burnserve_models::testdata::require_fashion_mnist(fashion_mnist_available())
    {
        return;
    }
    let test = FashionMnist::load(Split::Test).expect("Fashion-MNIST test set");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/repository/fashion");
    for (version, onnx, accuracy) in [("1", "fashion-mlp", 0.8786), ("2", "fashion-cnn", 0.8960)] {
        let native_dir = repository.join(version);
        let native_spec = ModelSpec::from_dir(&native_dir).unwrap();
        let mut native = load_model(&native_spec, &native_dir, Device::Cpu).unwrap();
        let onnx_dir = testdata().join(onnx);
        let spec = onnx_spec(&onnx_dir);
        assert_eq!(
            spec.inputs[0].shape,
            vec![28, 28],
            "the batch dimension is the graph's symbolic first one"
        );
        assert!(spec.batching.max_batch_size > 0);
        let mut model = load_model(&spec, &onnx_dir, Device::Cpu).unwrap();
        println!(
            "{onnx}: weight bytes {} (native {})",
            model.weight_bytes(),
            native.weight_bytes()
        );
        // Exactly the parameters (the MLP's 235,146 FP32 values, the CNN's 206,922), nothing
        // else held: constants onnx-ir read into node settings are not kept.
        assert_eq!(model.weight_bytes(), native.weight_bytes());
        let (mut worst, mut same, mut right_native, mut right_onnx) = (0f32, 0, 0, 0);
        let batch = 64;
        let mut start = 0;
        while start < test.len() {
            let rows = batch.min(test.len() - start);
            let pixels: Vec<f32> = (start..start + rows)
                .flat_map(|i| test.normalised(i))
                .collect();
            let expected =
                forward_f32(native.as_mut(), &native_spec, pixels.clone(), rows).unwrap();
            let input = NamedTensor::new("pixels", vec![rows, 28, 28], TensorData::F32(pixels));
            let out = model.forward(vec![input], rows).unwrap();
            let got = out.tensors[0].data.clone();
            let TensorData::F32(got) = got else {
                panic!("FP32 output")
            };
            assert_eq!(out.tensors[0].shape, vec![rows, 10]);
            for r in 0..rows {
                let (g, e) = (&got[r * 10..r * 10 + 10], &expected[r * 10..r * 10 + 10]);
                for (a, b) in g.iter().zip(e) {
                    worst = worst.max((a - b).abs());
                }
                let label = usize::from(test.labels[start + r]);
                same += usize::from(argmax(g) == argmax(e));
                right_native += usize::from(argmax(e) == label);
                right_onnx += usize::from(argmax(g) == label);
            }
            start += rows;
        }
        println!(
            "{onnx}: max |onnx - native| = {worst:e}; accuracy {right_onnx} / {right_native} of {}",
            test.len()
        );
        assert!(worst <= 1e-5, "{onnx}: max difference {worst}");
        assert_eq!(right_onnx, right_native, "{onnx}: accuracy differs");
        assert_eq!(same, test.len());
        assert!(((right_onnx as f64 / test.len() as f64) - accuracy).abs() < 1e-9);
    }
}

/// A repository version holding only `model.onnx` (a copy of the Fashion CNN's export).
fn add_onnx_version(fixture: &Fixture, model: &str, version: &str, file: &Path) -> PathBuf {
    let dir = fixture.version_dir(model, version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(file, dir.join("model.onnx")).unwrap();
    dir
}

fn settings(fixture: &Fixture) -> Settings {
    fixture.admin_settings()
}

#[actix_web::test]
async fn a_lone_model_onnx_loads_through_the_admin_api_and_serves_v2() {
    if !require_testdata() {
        return;
    }
    let fixture = Fixture::new();
    let source = testdata().join("fashion-cnn/model.onnx");
    let dir = add_onnx_version(&fixture, "cnn-onnx", "1", &source);
    let server = TestServer::start(settings(&fixture)).await;

    let (status, body) = server
        .admin("POST", "/admin/models/cnn-onnx/versions/1", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, meta) = server.get("/v2/models/cnn-onnx/versions/1").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["inputs"][0]["name"], "pixels");
    assert_eq!(meta["inputs"][0]["datatype"], "FP32");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 28, 28]));
    assert_eq!(meta["outputs"][0]["name"], "probabilities");

    // The served answer equals the in-process run of the same file.
    let spec = onnx_spec(&dir);
    let mut model = load_model(&spec, &dir, Device::Cpu).unwrap();
    let pixels: Vec<f32> = (0..2 * 784)
        .map(|i| ((i * 37) % 255) as f32 / 255.0)
        .collect();
    let expected = model
        .forward(
            vec![NamedTensor::new(
                "pixels",
                vec![2, 28, 28],
                TensorData::F32(pixels.clone()),
            )],
            2,
        )
        .unwrap();
    let TensorData::F32(expected) = &expected.tensors[0].data else {
        panic!()
    };
    let request = json!({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [2, 28, 28], "data": pixels}]});
    let (status, body, _) = server
        .post("/v2/models/cnn-onnx/versions/1/infer", &request)
        .await;
    assert_eq!(status, 200, "{body}");
    let served = floats(&body["outputs"][0]["data"]);
    assert_eq!(body["outputs"][0]["shape"], json!([2, 10]));
    assert_eq!(served.len(), 20);
    for (s, e) in served.iter().zip(expected) {
        assert!((s - e).abs() <= 1e-6, "served {s} vs in-process {e}");
    }

    // A request the graph cannot take is refused before any kernel runs.
    let bad = json!({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 27, 28], "data": vec![0.0; 27 * 28]}]});
    let (status, body, _) = server
        .post("/v2/models/cnn-onnx/versions/1/infer", &bad)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("pixels"), "{body}");
    server.stop().await;
}

#[actix_web::test]
async fn hostile_onnx_files_are_refused_with_422_and_the_server_serves_on() {
    if !require_testdata() {
        return;
    }
    let fixture = Fixture::new();
    let hostile = testdata().join("hostile");
    let cases: &[(&str, &str)] = &[
        ("truncated.onnx", "is not an ONNX model"),
        ("unknown-op.onnx", "operator 'FooBar'"),
        ("custom-domain.onnx", "domain 'com.example'"),
        ("lying-initializer.onnx", "holds 16 bytes"),
        ("cyclic.onnx", "cycle"),
        ("external-missing.onnx", "weights.bin"),
        ("external-escape.onnx", "inside the version directory"),
        ("opset-too-new.onnx", "opset 99"),
        ("too-many-nodes.onnx", "100001 nodes"),
        ("not-onnx.onnx", "is not an ONNX model"),
    ];
    for (i, (file, _)) in cases.iter().enumerate() {
        add_onnx_version(
            &fixture,
            "hostile",
            &(i + 1).to_string(),
            &hostile.join(file),
        );
    }
    let truncated_dir = fixture.version_dir("hostile", "99");
    std::fs::create_dir_all(&truncated_dir).unwrap();
    for f in ["model.onnx", "weights.bin"] {
        std::fs::copy(
            hostile.join("external-truncated").join(f),
            truncated_dir.join(f),
        )
        .unwrap();
    }
    let server = TestServer::start(settings(&fixture)).await;
    let mut all: Vec<(String, &str)> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, msg))| ((i + 1).to_string(), *msg))
        .collect();
    all.push(("99".into(), "truncated"));
    for (version, needle) in all {
        let (status, body) = server
            .admin(
                "POST",
                &format!("/admin/models/hostile/versions/{version}"),
                "",
            )
            .await;
        assert_eq!(status, 422, "version {version}: {body}");
        assert_eq!(body["error_type"], "load_failed", "{body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "version {version}: '{needle}' not in {msg}"
        );
        // Healthy after each: a bundled model still answers.
        let (status, _) = server.get("/v2/health/ready").await;
        assert_eq!(status, 200);
    }

    // A 10,000-deep chain is a valid graph: it loads (on the loader's own large stack) and
    // answers relu(x).
    add_onnx_version(&fixture, "chain", "1", &hostile.join("deep-chain.onnx"));
    let (status, body) = server
        .admin("POST", "/admin/models/chain/versions/1", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let request = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [-1.5, 0.0, 2.0, -0.25]}]});
    let (status, body, _) = server
        .post("/v2/models/chain/versions/1/infer", &request)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        floats(&body["outputs"][0]["data"]),
        vec![0.0, 0.0, 2.0, 0.0]
    );

    // A reload whose file turned bad is refused, and the loaded version keeps serving.
    std::fs::copy(
        hostile.join("truncated.onnx"),
        fixture.version_dir("chain", "1").join("model.onnx"),
    )
    .unwrap();
    let (status, body) = server
        .admin("POST", "/admin/models/chain/versions/1/reload", "")
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body, _) = server
        .post("/v2/models/chain/versions/1/infer", &request)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        floats(&body["outputs"][0]["data"]),
        vec![0.0, 0.0, 2.0, 0.0]
    );
    server.stop().await;
}

/// MiniLM exported to ONNX (our safetensors, scripts/onnx_testdata.py) behind its tokenizer:
/// the same embeddings as the native `bert-embedding` architecture and as onnxruntime (the
/// installer's reference.json), within 1e-4.
#[test]
fn minilm_as_onnx_with_a_tokenizer_embeds_like_the_native_model_and_onnxruntime() {
    let dir = testdata().join("minilm");
    if !burnserve_models::testdata::require(
        "the MiniLM ONNX export",
        dir.join("model.onnx").is_file() && dir.join("reference.json").is_file(),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    let mut spec = ModelSpec::from_toml(
        "architecture = \"onnx\"\nweights = \"model.onnx\"\n[params]\ntokenizer = \"tokenizer.json\"\n\
         max_tokens = 256\npooling = \"mean\"\nnormalize = true\n[batching]\nmax_batch_size = 32\n",
    )
    .unwrap();
    let jail = Jail::open(&dir, Symlinks::Inside).unwrap();
    complete_spec(&mut spec, &jail, &dir).unwrap();
    assert_eq!(spec.inputs[0].name, "text");
    assert_eq!(spec.outputs[0].shape, vec![384]);
    let mut onnx = load_model(&spec, &dir, Device::Cpu).unwrap();

    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let texts: Vec<String> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = burnserve_models::forward_texts(onnx.as_mut(), &spec, &text_refs).unwrap();
    assert_eq!(got.len(), texts.len() * 384);

    let native_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/repository/minilm/1");
    let native_spec = ModelSpec::from_dir(&native_dir).unwrap();
    let mut native = load_model(&native_spec, &native_dir, Device::Cpu).unwrap();
    let expected =
        burnserve_models::forward_texts(native.as_mut(), &native_spec, &text_refs).unwrap();
    let worst_native = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);

    let ort: Vec<f32> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let worst_ort = got
        .iter()
        .zip(&ort)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("MiniLM ONNX: max |onnx - native| = {worst_native:e}, max |onnx - onnxruntime| = {worst_ort:e}");
    assert!(worst_native <= 1e-4, "{worst_native}");
    assert!(worst_ort <= 1e-4, "{worst_ort}");
}

/// The same MiniLM graph and tokenizer served: `/v1/embeddings` and v2 BYTES infer answer the
/// in-process embeddings, with the tokens counted.
#[actix_web::test]
async fn minilm_onnx_serves_the_embeddings_route() {
    let source = testdata().join("minilm");
    if !burnserve_models::testdata::require(
        "the MiniLM ONNX export",
        source.join("model.onnx").is_file(),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    let fixture = Fixture::new();
    let dir = fixture.version_dir("minilm-onnx", "1");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.onnx", "tokenizer.json"] {
        std::fs::copy(source.join(f), dir.join(f)).unwrap();
    }
    let toml =
        "architecture = \"onnx\"\n[params]\ntokenizer = \"tokenizer.json\"\nnormalize = true\n\
                [batching]\nmax_batch_size = 8\n";
    std::fs::write(dir.join("model.toml"), toml).unwrap();
    let spec = {
        let mut spec = ModelSpec::from_toml(toml).unwrap();
        let jail = Jail::open(&dir, Symlinks::Inside).unwrap();
        complete_spec(&mut spec, &jail, &dir).unwrap();
        spec
    };
    let mut model = load_model(&spec, &dir, Device::Cpu).unwrap();
    let texts = ["A man is eating food.", "Ein Mann isst."];
    let expected = burnserve_models::forward_texts(model.as_mut(), &spec, &texts).unwrap();

    let server = TestServer::start(settings(&fixture)).await;
    let (status, body) = server
        .admin("POST", "/admin/models/minilm-onnx/versions/1", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = server
        .post(
            "/v1/embeddings",
            &json!({"model": "minilm-onnx", "input": texts}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut served = floats(&body["data"][0]["embedding"]);
    served.extend(floats(&body["data"][1]["embedding"]));
    assert_eq!(served.len(), 768);
    for (s, e) in served.iter().zip(&expected) {
        assert!((s - e).abs() <= 1e-6, "served {s} vs in-process {e}");
    }
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() >= 8,
        "{body}"
    );
    // v2 infer with a BYTES tensor gives the pooled vector per text.
    let bad =
        json!({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": ["ok"]}]});
    let (status, body, _) = server
        .post("/v2/models/minilm-onnx/versions/1/infer", &bad)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([1, 384]));
    server.stop().await;
}
