//! Any tensor signature through the one KServe core: an `identity` model of six inputs (BOOL
//! with a variable dimension, INT64, FP16, BYTES, FP32 and an optional INT8) echoes generated
//! requests byte for byte down HTTP JSON, HTTP binary and gRPC, with and without a batch
//! dimension, batched together and alone; outputs come as asked; random FP32 bit patterns are
//! data unless an input opts in to `finite`; and a generated corpus of invalid requests gets
//! the same `error_type` and message on HTTP and gRPC, none reaching the model. Helpers:
//! `signatures/wire.rs`. `SIGNATURES_SEED` replays a run.

mod common;
#[path = "signatures/wire.rs"]
mod wire;

use burnserve::app::settings::Settings;
use burnserve_models::{NamedTensor, TensorData};
use common::*;
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use wire::{Answer, Input, Logical};

#[path = "signatures/corpus.rs"]
mod corpus;

/// The signature: (name, datatype, per-item shape, optional).
const SIGNATURE: [(&str, &str, &str, bool); 6] = [
    ("mask", "BOOL", "[-1]", false),
    ("ids", "INT64", "[3]", false),
    ("half", "FP16", "[2]", false),
    ("text", "BYTES", "[1]", false),
    ("score", "FP32", "[2]", false),
    ("small", "INT8", "[1]", true),
];

fn identity_toml(max_batch_size: usize) -> String {
    let mut toml = format!(
        "architecture = \"identity\"\n[batching]\nmax_batch_size = {max_batch_size}\n\
         max_batch_delay_ms = 30\nadaptive_delay = false\n"
    );
    for (name, datatype, shape, optional) in SIGNATURE {
        toml += &format!(
            "[[inputs]]\nname = \"{name}\"\ndatatype = \"{datatype}\"\nshape = {shape}\n\
             optional = {optional}\n"
        );
    }
    for (name, datatype, shape, _) in SIGNATURE {
        toml += &format!(
            "[[outputs]]\nname = \"{name}_out\"\ndatatype = \"{datatype}\"\nshape = {shape}\n"
        );
    }
    toml
}

/// The fixture's models plus `sig` (batching, at most 8 rows), `sig0` (no batch dimension),
/// and the FP32 echoes `plain` and `guarded` (`finite = true`).
fn settings(fixture: &Fixture) -> Settings {
    let write = |model: &str, toml: &str| {
        let dir = fixture.version_dir(model, "1");
        std::fs::create_dir_all(&dir).expect("version dir");
        std::fs::write(dir.join("model.toml"), toml).expect("model.toml");
    };
    write("sig", &identity_toml(8));
    write("sig0", &identity_toml(0));
    let echo = |finite: bool| {
        format!(
            "architecture = \"identity\"\n[input]\nname = \"x\"\nshape = [4]\nfinite = {finite}\n\
             [output]\nname = \"y\"\nshape = [4]\n"
        )
    };
    write("plain", &echo(false));
    write("guarded", &echo(true));
    let mut toml = fixture.settings_toml("");
    for model in ["sig", "sig0", "plain", "guarded"] {
        toml += &format!("[[models]]\nname = \"{model}\"\nversions = [\"1\"]\n");
    }
    Settings::from_toml(&toml).expect("settings")
}

/// Random text of 0–11 characters, some of several bytes.
fn text(rng: &mut StdRng) -> Vec<u8> {
    const CHARS: [char; 8] = ['a', 'Z', ' ', 'é', '漢', '🦀', '"', '\\'];
    let len = rng.random_range(0..12);
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())])
        .collect::<String>()
        .into_bytes()
}

/// A request's tensors for `sig` (`batched`: with `rows` rows) or `sig0`, the variable
/// dimension `len`. `json_safe`: finite floats and UTF-8 text only (what JSON carries).
fn tensors(
    rng: &mut StdRng,
    batched: bool,
    rows: usize,
    len: usize,
    json_safe: bool,
    small: bool,
) -> Vec<NamedTensor> {
    let shape = |item: &[usize]| {
        let mut shape = if batched { vec![rows] } else { vec![] };
        shape.extend_from_slice(item);
        shape
    };
    let n = if batched { rows } else { 1 };
    let f16s = (0..n * 2)
        .map(|_| loop {
            let v = f16::from_bits(rng.random());
            if !json_safe || v.is_finite() {
                break v;
            }
        })
        .collect();
    let f32s = (0..n * 2)
        .map(|_| loop {
            let v = f32::from_bits(rng.random());
            if !json_safe || v.is_finite() {
                break v;
            }
        })
        .collect();
    let texts = (0..n)
        .map(|_| {
            if json_safe {
                text(rng)
            } else {
                (0..rng.random_range(0..9)).map(|_| rng.random()).collect()
            }
        })
        .collect();
    let mut out = vec![
        NamedTensor::new(
            "mask",
            shape(&[len]),
            TensorData::Bool((0..n * len).map(|_| rng.random()).collect()),
        ),
        NamedTensor::new(
            "ids",
            shape(&[3]),
            TensorData::I64((0..n * 3).map(|_| rng.random()).collect()),
        ),
        NamedTensor::new("half", shape(&[2]), TensorData::F16(f16s)),
        NamedTensor::new("text", shape(&[1]), TensorData::Bytes(texts)),
        NamedTensor::new("score", shape(&[2]), TensorData::F32(f32s)),
    ];
    if small {
        out.push(NamedTensor::new(
            "small",
            shape(&[1]),
            TensorData::I8((0..n).map(|_| rng.random()).collect()),
        ));
    }
    out
}

fn logical(model: &str, tensors: &[NamedTensor]) -> Logical {
    Logical {
        model: model.into(),
        inputs: tensors.iter().map(Input::of).collect(),
        ..Default::default()
    }
}

/// What the identity must answer: each input as `<name>_out`, in the signature's order.
fn echoed(tensors: &[NamedTensor]) -> Answer {
    Answer::Outputs(
        tensors
            .iter()
            .map(|t| {
                let input = Input::of(t);
                (
                    format!("{}_out", t.name),
                    input.datatype,
                    input.shape,
                    input.bytes,
                )
            })
            .collect(),
    )
}

async fn stats(server: &TestServer, model: &str) -> (u64, u64) {
    let (status, body) = server.get(&format!("/v2/models/{model}/stats")).await;
    assert_eq!(status, 200, "{body}");
    let s = &body["model_stats"][0];
    (
        s["inference_count"].as_u64().unwrap(),
        s["execution_count"].as_u64().unwrap(),
    )
}

#[actix_web::test]
async fn every_datatype_round_trips_byte_identically_down_every_path() {
    let fixture = Fixture::new();
    let server = TestServer::start(settings(&fixture)).await;
    let mut grpc = wire::client(&server).await;
    let mut rng = StdRng::seed_from_u64(seed("SIGNATURES_SEED"));
    let mut compared = 0;
    for (model, batched) in [("sig", true), ("sig0", false)] {
        for round in 0..30 {
            let (rows, len) = (rng.random_range(1..=3), rng.random_range(1..=4));
            // JSON carries finite numbers and text; the binary paths carry any bits too.
            let json_safe = round % 3 != 2;
            let small = rng.random();
            let tensors = tensors(&mut rng, batched, rows, len, json_safe, small);
            let request = logical(model, &tensors);
            let want = echoed(&tensors);
            if json_safe {
                assert_eq!(
                    wire::http_json(&server, &request).await,
                    want,
                    "{model} JSON"
                );
                compared += 1;
            }
            assert_eq!(
                wire::http_binary(&server, &request).await,
                want,
                "{model} binary"
            );
            assert_eq!(wire::grpc(&mut grpc, &request).await, want, "{model} gRPC");
            compared += 2;
        }
    }
    // Batched together: waves of 8 one-row requests of one shape, on each path at once.
    let before = stats(&server, "sig").await;
    let waves: Vec<Vec<NamedTensor>> = (0..8)
        .map(|_| tensors(&mut rng, true, 1, 3, true, false))
        .collect();
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(wire::client(&server).await);
    }
    let sends = waves
        .iter()
        .zip(clients.iter_mut())
        .enumerate()
        .map(|(i, (t, client))| {
            let request = logical("sig", t);
            let server = &server;
            async move {
                let answer = match i % 3 {
                    0 => wire::http_json(server, &request).await,
                    1 => wire::http_binary(server, &request).await,
                    _ => wire::grpc(client, &request).await,
                };
                (answer, echoed(t))
            }
        });
    for (answer, want) in futures_util::future::join_all(sends).await {
        assert_eq!(answer, want, "a batched request's own rows");
        compared += 1;
    }
    let after = stats(&server, "sig").await;
    let (requests, passes) = (after.0 - before.0, after.1 - before.1);
    println!("8 concurrent requests ran in {passes} forward pass(es)");
    assert_eq!(requests, 8);
    assert!(passes < 8, "they were batched: {passes} passes");
    // The model without a batch dimension ran each request alone.
    let (requests, passes) = stats(&server, "sig0").await;
    assert_eq!(requests, passes, "sig0 never batches");
    println!("compared {compared} answers byte for byte");
    server.stop().await;
}

#[actix_web::test]
async fn outputs_come_as_asked_each_as_json_or_binary() {
    let fixture = Fixture::new();
    let server = TestServer::start(settings(&fixture)).await;
    let mut grpc = wire::client(&server).await;
    let mut rng = StdRng::seed_from_u64(7);
    let tensors = tensors(&mut rng, true, 2, 2, true, true);
    let mut request = logical("sig", &tensors);
    request.outputs = vec!["text_out".into(), "ids_out".into()];
    let Answer::Outputs(full) = echoed(&tensors) else {
        unreachable!()
    };
    let picked = Answer::Outputs(vec![full[3].clone(), full[1].clone()]);
    assert_eq!(wire::http_json(&server, &request).await, picked);
    assert_eq!(wire::http_binary(&server, &request).await, picked);
    assert_eq!(wire::grpc(&mut grpc, &request).await, picked);
    // Per-output binary_data over HTTP: text as binary, ids as JSON.
    let body = json!({
        "inputs": request.inputs.iter().map(|i| {
            let data: Value = serde_json::to_value(burnserve::kserve::json::JsonOut(
                &burnserve_models::tensor::decode_le(
                    burnserve_models::DataType::parse(&i.datatype).unwrap(),
                    i.shape.iter().product::<i64>() as usize,
                    &i.bytes,
                ).unwrap(),
            )).unwrap();
            json!({ "name": i.name, "shape": i.shape, "datatype": i.datatype, "data": data })
        }).collect::<Vec<_>>(),
        "outputs": [
            { "name": "text_out", "parameters": { "binary_data": true } },
            { "name": "ids_out" },
        ],
    });
    let mut response = server
        .client
        .post(server.url("/v2/models/sig/infer"))
        .send_json(&body)
        .await
        .unwrap();
    let length: usize = response
        .headers()
        .get("inference-header-content-length")
        .expect("binary outputs")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.body().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..length]).unwrap();
    assert_eq!(head["outputs"][0]["name"], "text_out");
    let size = head["outputs"][0]["parameters"]["binary_data_size"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(
        &bytes[length..],
        &request.inputs[3].bytes[..],
        "text as binary"
    );
    assert_eq!(size, bytes.len() - length);
    assert_eq!(head["outputs"][1]["name"], "ids_out");
    assert!(head["outputs"][1]["data"].is_array(), "ids as JSON: {head}");
    // Output of an optional input left out: a clear refusal, not an empty tensor.
    let without = tensors[..5].to_vec();
    let mut request = logical("sig", &without);
    request.outputs = vec!["small_out".into()];
    let answer = wire::http_binary(&server, &request).await;
    let (error_type, message) = answer.error().expect("refused");
    assert_eq!(error_type, "invalid_input");
    assert!(message.contains("no output 'small_out'"), "{message}");
    assert_eq!(
        wire::grpc(&mut grpc, &request).await,
        answer_as_grpc(&answer)
    );
    server.stop().await;
}

/// The same refusal as gRPC reports it (status 0, INVALID_ARGUMENT).
fn answer_as_grpc(answer: &Answer) -> Answer {
    match answer.clone() {
        Answer::Refused {
            error_type,
            message,
            ..
        } => Answer::Refused {
            status: 0,
            code: tonic::Code::InvalidArgument as i32,
            error_type,
            message,
        },
        other => other,
    }
}

#[actix_web::test]
async fn random_fp32_bit_patterns_are_data_unless_an_input_opts_in() {
    let fixture = Fixture::new();
    let server = TestServer::start(settings(&fixture)).await;
    let mut grpc = wire::client(&server).await;
    let mut rng = StdRng::seed_from_u64(seed("SIGNATURES_SEED"));
    let special = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        -0.0,
        f32::MAX,
    ];
    let (mut served, mut refused) = (0, 0);
    for round in 0..40 {
        let values: Vec<f32> = (0..4)
            .map(|i| {
                if round < 2 {
                    special[round * 4 + i]
                } else if rng.random_range(0..8) == 0 {
                    special[rng.random_range(0..special.len())]
                } else {
                    f32::from_bits(rng.random())
                }
            })
            .collect();
        let tensor = NamedTensor::new("x", vec![1, 4], TensorData::F32(values.clone()));
        let plain = logical("plain", std::slice::from_ref(&tensor));
        let want = Answer::Outputs(vec![(
            "y".into(),
            "FP32".into(),
            vec![1, 4],
            Input::of(&tensor).bytes,
        )]);
        assert_eq!(wire::http_binary(&server, &plain).await, want);
        assert_eq!(wire::grpc(&mut grpc, &plain).await, want);
        served += 2;
        let guarded = Logical {
            model: "guarded".into(),
            ..plain
        };
        let http = wire::http_binary(&server, &guarded).await;
        let over_grpc = wire::grpc(&mut grpc, &guarded).await;
        match values.iter().position(|v| !v.is_finite()) {
            Some(index) => {
                let Answer::Refused {
                    status,
                    error_type,
                    message,
                    ..
                } = &http
                else {
                    panic!("{values:?} served by the guarded model");
                };
                assert_eq!((*status, error_type.as_str()), (400, "invalid_input"));
                assert!(
                    message.starts_with(&format!(
                        "input 'x': value at flat index {index} is not finite"
                    )),
                    "{message}"
                );
                assert_eq!(over_grpc, answer_as_grpc(&http));
                refused += 2;
            }
            None => {
                assert!(matches!(http, Answer::Outputs(_)), "{http:?}");
                assert!(matches!(over_grpc, Answer::Outputs(_)), "{over_grpc:?}");
            }
        }
    }
    println!("{served} answers of random FP32 bits served, {refused} refused where opted in");
    assert!(
        refused >= 2,
        "the first request (NaN, -NaN, +inf, -inf) is refused on both"
    );
    server.stop().await;
}
