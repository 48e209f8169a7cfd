//! The KServe v2 binary tensor data extension over real HTTP (inputs and outputs, against JSON
//! infer and the network run in-process), its framing errors, requested outputs, `id`, the
//! server metadata's extensions, and compressed bodies both ways.

mod common;

use std::io::{Read, Write};

use burnserve_models::{forward_f32, load_model, Device, ModelSpec};
use common::*;
use serde_json::{json, Value};

fn in_process(fixture: &Fixture, version: &str, items: &[Vec<f32>]) -> Vec<f32> {
    let dir = fixture.version_dir("mlp", version);
    let spec = ModelSpec::from_dir(&dir).unwrap();
    let mut model = load_model(&spec, &dir, Device::Cpu).unwrap();
    items
        .iter()
        .flat_map(|item| forward_f32(model.as_mut(), &spec, item.clone(), 1).unwrap())
        .collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A framed request: the JSON header, then `binary`.
fn framed(header: &Value, binary: &[u8]) -> (Vec<u8>, usize) {
    let mut body = serde_json::to_vec(header).unwrap();
    let length = body.len();
    body.extend_from_slice(binary);
    (body, length)
}

struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(server: &TestServer, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Reply {
    let mut request = server.client.post(server.url(path));
    for (name, value) in headers {
        request = request.insert_header((*name, value.as_str()));
    }
    let mut response = request.send_body(body).await.unwrap();
    let bytes = response.body().limit(16 << 20).await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: bytes.to_vec(),
    }
}

async fn binary_infer(server: &TestServer, header: &Value, binary: &[u8]) -> Reply {
    let (body, length) = framed(header, binary);
    send(
        server,
        "/v2/models/mlp/infer",
        body,
        &[
            ("content-type", "application/octet-stream".into()),
            ("inference-header-content-length", length.to_string()),
        ],
    )
    .await
}

#[actix_web::test]
async fn binary_inputs_and_outputs_answer_what_json_does() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let items = mlp_items(3);
    let flat: Vec<f32> = items.concat();
    let reference = in_process(&fixture, "2", &items);
    let input = |params: Value| json!({ "name": "features", "shape": [3, MLP_INPUT], "datatype": "FP32", "parameters": params });

    // Binary in, JSON out.
    let header =
        json!({ "id": "b-1", "inputs": [input(json!({ "binary_data_size": flat.len() * 4 }))] });
    let reply = binary_infer(&server, &header, &le_bytes(&flat)).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let answer = reply.json();
    assert_eq!(answer["id"], "b-1");
    assert_eq!(answer["outputs"][0]["shape"], json!([3, MLP_CLASSES]));
    let json_out = floats(&answer["outputs"][0]["data"]);
    for (a, b) in json_out.iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-6, "{json_out:?} vs {reference:?}");
    }

    // Binary in, binary out (asked per output), and JSON in, binary out (asked for all).
    let header = json!({
        "inputs": [input(json!({ "binary_data_size": flat.len() * 4 }))],
        "outputs": [{ "name": "probabilities", "parameters": { "binary_data": true } }],
    });
    let json_in = json!({
        "inputs": [{ "name": "features", "shape": [3, MLP_INPUT], "datatype": "FP32", "data": flat }],
        "parameters": { "binary_data_output": true },
    });
    let replies = [
        binary_infer(&server, &header, &le_bytes(&flat)).await,
        send(
            &server,
            "/v2/models/mlp/infer",
            serde_json::to_vec(&json_in).unwrap(),
            &[],
        )
        .await,
    ];
    for reply in replies {
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("application/octet-stream")
        );
        let length: usize = reply
            .header("inference-header-content-length")
            .unwrap()
            .parse()
            .unwrap();
        let head: Value = serde_json::from_slice(&reply.body[..length]).unwrap();
        let output = &head["outputs"][0];
        assert_eq!(output["name"], "probabilities");
        assert_eq!(output["datatype"], "FP32");
        assert_eq!(output["shape"], json!([3, MLP_CLASSES]));
        assert!(output.get("data").is_none(), "{head}");
        assert_eq!(
            output["parameters"]["binary_data_size"],
            json!(3 * MLP_CLASSES * 4)
        );
        assert!(
            head.get("id").is_none(),
            "no id asked, none answered: {head}"
        );
        assert_eq!(reply.body.len(), length + 3 * MLP_CLASSES * 4);
        assert_eq!(
            from_le(&reply.body[length..]),
            json_out,
            "bit-identical to the JSON answer"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn broken_framing_is_a_400_that_names_the_input_and_why() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let data = le_bytes(&mlp_items(1).concat());
    let input = |params: Value, shape: Value| json!({ "inputs": [{ "name": "features", "shape": shape, "datatype": "FP32", "parameters": params }] });
    let one = json!([1, MLP_INPUT]);
    let cases: Vec<(Value, Vec<u8>, Option<String>, &str)> = vec![
        // Sizes that do not add up.
        (
            input(json!({ "binary_data_size": 48 }), one.clone()),
            [data.clone(), vec![0; 8]].concat(),
            None,
            "add up to 48 bytes but 56",
        ),
        (
            input(json!({ "binary_data_size": 96 }), one.clone()),
            data.clone(),
            None,
            "input 'features': binary_data_size is past the body",
        ),
        (
            input(json!({ "binary_data_size": u64::MAX }), one.clone()),
            data.clone(),
            None,
            "past the body",
        ),
        // The element count does not fit the shape.
        (
            input(json!({ "binary_data_size": 48 }), json!([2, MLP_INPUT])),
            data.clone(),
            None,
            "input 'features': 48 bytes of FP32 data do not hold 24 elements of 4 byte(s) (shape [2, 12])",
        ),
        // A header length past the body, or not a number.
        (
            input(json!({ "binary_data_size": 48 }), one.clone()),
            data.clone(),
            Some("100000".into()),
            "inference-header-content-length is 100000 but the body has",
        ),
        (
            input(json!({ "binary_data_size": 48 }), one.clone()),
            data.clone(),
            Some("-4".into()),
            "must be a byte count",
        ),
        // Data both ways, or none.
        (
            json!({ "inputs": [{ "name": "features", "shape": one, "datatype": "FP32", "data": [1.0], "parameters": { "binary_data_size": 48 } }] }),
            data.clone(),
            None,
            "both data and parameters.binary_data_size",
        ),
        (
            json!({ "inputs": [{ "name": "features", "shape": one, "datatype": "FP32" }] }),
            Vec::new(),
            None,
            "has no data",
        ),
        (
            json!({ "inputs": [{ "name": "features", "shape": [1], "datatype": "FP8", "parameters": { "binary_data_size": 1 } }] }),
            vec![0],
            None,
            "datatype 'FP8' is not a KServe v2 datatype",
        ),
    ];
    for (header, binary, length, expected) in cases {
        let (body, header_length) = framed(&header, &binary);
        let length = length.unwrap_or_else(|| header_length.to_string());
        let reply = send(
            &server,
            "/v2/models/mlp/infer",
            body,
            &[("inference-header-content-length", length)],
        )
        .await;
        let answer = reply.json();
        assert_eq!(
            (reply.status, answer["error_type"].as_str()),
            (400, Some("invalid_input")),
            "{expected}: {answer}"
        );
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{expected}: {answer}"
        );
    }
    // Nothing of these reached a model.
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "inference_batch_size_count",
            &[("model", "mlp"), ("version", "2")]
        ),
        0.0
    );
    server.stop().await;
}

#[actix_web::test]
async fn requested_outputs_must_exist_and_ids_echo_only_when_given() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let items = mlp_items(1);
    let request = |outputs: Value| json!({ "inputs": [{ "name": "features", "shape": [1, MLP_INPUT], "datatype": "FP32", "data": items }], "outputs": outputs });
    let (status, answer, _) = server
        .post(
            "/v2/models/mlp/infer",
            &request(json!([{ "name": "logits" }])),
        )
        .await;
    assert_eq!(
        (status, answer["error_type"].as_str()),
        (400, Some("invalid_input")),
        "{answer}"
    );
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown output 'logits'"),
        "{answer}"
    );
    let (status, answer, _) = server
        .post(
            "/v2/models/mlp/infer",
            &request(json!([{ "name": "probabilities", "parameters": { "classification": -1 } }])),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("classification must be within"),
        "{answer}"
    );
    let (status, answer, _) = server
        .post(
            "/v2/models/mlp/infer",
            &request(json!([{ "name": "probabilities" }])),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.as_object().unwrap().get("id").is_none(), "{answer}");
    assert_eq!(answer["outputs"][0]["name"], "probabilities");
    // The unknown output cost no compute: one batch ran, for the one good request.
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "inference_batch_size_count",
            &[("model", "mlp"), ("version", "2")]
        ),
        1.0
    );
    for path in ["/v2", "/v2/"] {
        let (status, meta) = server.get(path).await;
        assert_eq!(status, 200);
        assert_eq!(meta["name"], "burnserve");
        let extensions = meta["extensions"].as_array().unwrap();
        assert!(extensions.contains(&json!("binary_tensor_data")), "{meta}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn gzip_and_deflate_bodies_are_read_and_answers_compressed_when_asked() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let body = json!({ "inputs": mlp_items(2) }).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let gzipped = gz.finish().unwrap();
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zl.write_all(body.as_bytes()).unwrap();
    let deflated = zl.finish().unwrap();
    let plain = send(
        &server,
        "/v1/models/mlp/predict",
        body.clone().into_bytes(),
        &[("content-type", "application/json".into())],
    )
    .await;
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none());
    for (encoding, bytes) in [("gzip", gzipped), ("deflate", deflated)] {
        for path in ["/v1/models/mlp/predict", "/v2/models/mlp/infer"] {
            let body = if path.starts_with("/v2") {
                let json = json!({ "inputs": [{ "name": "features", "shape": [2, MLP_INPUT], "datatype": "FP32", "data": mlp_items(2) }] }).to_string();
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(json.as_bytes()).unwrap();
                if encoding == "gzip" {
                    gz.finish().unwrap()
                } else {
                    let mut zl =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                    zl.write_all(json.as_bytes()).unwrap();
                    zl.finish().unwrap()
                }
            } else {
                bytes.clone()
            };
            let reply = send(
                &server,
                path,
                body,
                &[
                    ("content-type", "application/json".into()),
                    ("content-encoding", encoding.into()),
                    ("accept-encoding", encoding.into()),
                ],
            )
            .await;
            assert_eq!(
                reply.status,
                200,
                "{path} {encoding}: {}",
                String::from_utf8_lossy(&reply.body)
            );
            assert_eq!(reply.header("content-encoding"), Some(encoding), "{path}");
            let mut text = String::new();
            if encoding == "gzip" {
                flate2::read::GzDecoder::new(&reply.body[..])
                    .read_to_string(&mut text)
                    .unwrap();
            } else {
                flate2::read::ZlibDecoder::new(&reply.body[..])
                    .read_to_string(&mut text)
                    .unwrap();
            }
            let answer: Value = serde_json::from_str(&text).unwrap();
            if path.starts_with("/v1") {
                assert_eq!(answer, plain.json(), "the same answer, compressed");
            } else {
                assert_eq!(answer["outputs"][0]["shape"], json!([2, MLP_CLASSES]));
            }
        }
    }
    // /metrics too (Prometheus asks for gzip): the text it decodes to is the exposition.
    let mut response = server
        .client
        .get(server.url("/metrics"))
        .insert_header(("accept-encoding", "gzip"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let bytes = response.body().limit(16 << 20).await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert!(
        text.contains("# TYPE inference_requests_total counter"),
        "{text}"
    );
    // A compressed body that decodes past the body limit is refused, not inflated.
    let huge = vec![b' '; 9 << 20];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&huge).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 64 << 10);
    for path in ["/v1/models/mlp/predict", "/v2/models/mlp/infer"] {
        let reply = send(
            &server,
            path,
            bomb.clone(),
            &[
                ("content-type", "application/json".into()),
                ("content-encoding", "gzip".into()),
            ],
        )
        .await;
        assert_eq!(
            (reply.status, reply.json()["error_type"].as_str()),
            (413, Some("payload_too_large")),
            "{path}"
        );
    }
    // Not gzip at all: a clear 400.
    let reply = send(
        &server,
        "/v1/models/mlp/predict",
        b"not gzip".to_vec(),
        &[
            ("content-type", "application/json".into()),
            ("content-encoding", "gzip".into()),
        ],
    )
    .await;
    assert_eq!(
        reply.status,
        400,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    server.stop().await;
}

#[actix_web::test]
async fn statistics_count_the_traffic_sent_and_config_describes_the_model() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let infer = |n: usize, output: &str| {
        json!({
            "inputs": [{ "name": "features", "shape": [n, MLP_INPUT], "datatype": "FP32", "data": mlp_items(n) }],
            "outputs": [{ "name": output }],
        })
    };
    // One after another: a pass each, of 1, 2 and 3 rows; then one refused before the queue.
    for n in 1..=3 {
        let (status, body, _) = server
            .post("/v2/models/mlp/infer", &infer(n, "probabilities"))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = server
        .post("/v2/models/mlp/infer", &infer(1, "logits"))
        .await;
    assert_eq!(status, 400);
    let (status, stats) = server.get("/v2/models/mlp/versions/2/stats").await;
    assert_eq!(status, 200, "{stats}");
    let s = &stats["model_stats"][0];
    assert_eq!(
        (s["name"].as_str(), s["version"].as_str()),
        (Some("mlp"), Some("2"))
    );
    assert_eq!(
        (s["inference_count"].as_u64(), s["execution_count"].as_u64()),
        (Some(6), Some(3))
    );
    let i = &s["inference_stats"];
    assert_eq!(i["success"]["count"], 3);
    assert!(i["success"]["ns"].as_u64().unwrap() > 0);
    assert_eq!(i["fail"]["count"], 1);
    assert_eq!(
        (
            i["queue"]["count"].as_u64(),
            i["compute_infer"]["count"].as_u64()
        ),
        (Some(3), Some(3))
    );
    assert!(i["compute_infer"]["ns"].as_u64().unwrap() > 0);
    let sizes: Vec<(u64, u64)> = s["batch_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["batch_size"].as_u64().unwrap(),
                b["compute_infer"]["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes, [(1, 1), (2, 1), (3, 1)]);
    assert!(s["last_inference"].as_u64().unwrap() > 1_700_000_000_000);
    // The model's stats: both versions; all: every loaded version.
    let (_, model) = server.get("/v2/models/mlp/stats").await;
    let versions: Vec<&str> = model["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1", "2"]);
    assert_eq!(model["model_stats"][0]["inference_count"], 0);
    let (_, all) = server.get("/v2/models/stats").await;
    assert_eq!(all["model_stats"].as_array().unwrap().len(), 7, "{all}");
    for path in [
        "/v2/models/nope/stats",
        "/v2/models/mlp/versions/9/stats",
        "/v2/models/nope/config",
    ] {
        let (status, err) = server.get(path).await;
        assert_eq!(
            (status, err["error_type"].as_str()),
            (404, Some("model_not_found")),
            "{path}"
        );
    }

    let (status, config) = server.get("/v2/models/mlp/config").await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        (config["name"].as_str(), config["version"].as_str()),
        (Some("mlp"), Some("2"))
    );
    assert_eq!(config["max_batch_size"], 16);
    let input = &config["input"][0];
    assert_eq!(
        json!([
            input["name"],
            input["data_type"],
            input["dims"],
            input["optional"]
        ]),
        json!(["features", "TYPE_FP32", [MLP_INPUT], false]),
        "{config}"
    );
    assert_eq!(config["output"][0]["dims"], json!([MLP_CLASSES]));
    assert_eq!(config["output"][0]["labels"], json!(LABELS));
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"],
        1000
    );
    assert_eq!(config["instance_group"][0]["kind"], "KIND_CPU");
    let (_, pinned) = server.get("/v2/models/mlp/versions/1/config").await;
    assert_eq!(pinned["version"], "1");
    let (_, meta) = server.get("/v2").await;
    for extension in ["statistics", "model_configuration"] {
        assert!(
            meta["extensions"]
                .as_array()
                .unwrap()
                .contains(&json!(extension)),
            "{meta}"
        );
    }
    server.stop().await;
}
