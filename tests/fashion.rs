//! The bundled `fashion` model as `cargo run --release` serves it (default config): both
//! versions answer the simple and the v2 API with the same probabilities as the networks run
//! in-process, for the first 16 Fashion-MNIST test images.

mod common;

use std::path::Path;

use burnserve::Settings;
use burnserve_models::{forward_f32, load_model, Device, ModelSpec};
use burnserve_train::datasets::{fashion_mnist_available, FashionMnist, Split, FASHION_CLASSES};
use common::TestServer;
use serde_json::{json, Value};

const IMAGES: usize = 16;

fn in_process(version: &str, test: &FashionMnist) -> Vec<Vec<f32>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/repository/fashion")
        .join(version);
    let spec = ModelSpec::from_dir(&dir).unwrap();
    let mut model = load_model(&spec, &dir, Device::Cpu).unwrap();
    (0..IMAGES)
        .map(|i| forward_f32(model.as_mut(), &spec, test.normalised(i), 1).unwrap())
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

fn check(served: &[Value], reference: &[Vec<f32>]) {
    assert_eq!(served.len(), reference.len());
    for (row, expected) in served.iter().zip(reference) {
        let row: Vec<f32> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(argmax(&row), argmax(expected));
        for (s, e) in row.iter().zip(expected) {
            assert!((s - e).abs() <= 1e-5, "served {s} vs in-process {e}");
        }
    }
}

#[actix_web::test]
async fn served_fashion_predictions_equal_in_process_ones() {
    if !burnserve_models::testdata::require_fashion_mnist(fashion_mnist_available()) {
        return;
    }
    let test = FashionMnist::load(Split::Test).unwrap();
    let settings =
        Settings::from_toml("[server]\nport = 0\nworkers = 2\n[log]\nlevel = \"warn\"").unwrap();
    assert_eq!(
        settings.models[0].name, "fashion",
        "the default config serves fashion"
    );
    let server = TestServer::start(settings).await;

    let (status, meta) = server.get("/v2/models/fashion").await;
    assert_eq!(status, 200);
    assert_eq!(meta["versions"], json!(["1", "2"]));
    assert_eq!(meta["parameters"]["default_version"], "2");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 28, 28]));
    assert_eq!(meta["parameters"]["labels"], json!(FASHION_CLASSES));

    for version in ["1", "2"] {
        let reference = in_process(version, &test);
        // Simple API: normalised floats, nested [16, 28, 28].
        let images: Vec<Vec<Vec<f32>>> = (0..IMAGES)
            .map(|i| test.normalised(i).chunks(28).map(<[f32]>::to_vec).collect())
            .collect();
        let path = format!("/v1/models/fashion/versions/{version}/predict");
        let (status, body, _) = server
            .post(&path, &json!({ "inputs": images, "top_k": 1 }))
            .await;
        assert_eq!(status, 200, "{body}");
        check(body["outputs"].as_array().unwrap(), &reference);
        for (i, expected) in reference.iter().enumerate() {
            assert_eq!(
                body["predictions"][i][0]["label"],
                FASHION_CLASSES[argmax(expected)]
            );
        }
        // v2: raw UINT8 pixels, flat, scaled by the preprocess stage.
        let pixels: Vec<u8> = (0..IMAGES).flat_map(|i| test.image(i).to_vec()).collect();
        let request = json!({ "id": "fashion", "inputs": [{ "name": "pixels", "shape": [IMAGES, 28, 28], "datatype": "UINT8", "data": pixels }] });
        let path = format!("/v2/models/fashion/versions/{version}/infer");
        let (status, body, _) = server.post(&path, &request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outputs"][0]["shape"], json!([IMAGES, 10]));
        let data: Vec<Value> = body["outputs"][0]["data"].as_array().unwrap().clone();
        let rows: Vec<Value> = data.chunks(10).map(|c| Value::Array(c.to_vec())).collect();
        check(&rows, &reference);
    }
    // The default version is the CNN.
    let (status, body, _) = server
        .post(
            "/v1/models/fashion/predict",
            &json!({ "inputs": test.normalised(0) }),
        )
        .await;
    assert_eq!((status, body["version"].as_str()), (200, Some("2")));
    // The simple API takes raw 8-bit pixels too, scaled exactly like normalised ones.
    let reference = in_process("1", &test);
    let pixels: Vec<u8> = test.image(3).to_vec();
    let body = json!({ "inputs": pixels, "datatype": "UINT8" });
    let (status, body, _) = server
        .post("/v1/models/fashion/versions/1/predict", &body)
        .await;
    assert_eq!(status, 200, "{body}");
    check(body["outputs"].as_array().unwrap(), &reference[3..4]);
    let (status, body, _) = server
        .post(
            "/v1/models/fashion/predict",
            &json!({ "inputs": vec![256; 784], "datatype": "UINT8" }),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (400, Some("invalid_input")),
        "{body}"
    );
    // Pixels out of range are refused.
    let (status, body, _) = server
        .post(
            "/v1/models/fashion/predict",
            &json!({ "inputs": vec![2.0; 784] }),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (422, Some("invalid_input"))
    );
    server.stop().await;
}
