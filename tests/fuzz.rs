//! Property tests of every request decoder over real HTTP on 127.0.0.1: proptest draws bodies
//! for the simple predict API, v2 infer, embeddings, the admin routing body and the admin
//! `model.toml` override, from near-valid shapes (absurd numbers, wrong types, deep nesting,
//! huge shapes) to arbitrary JSON and bytes. Every answer must be a JSON error or a success,
//! never a 5xx (except the 504 a request's own tiny deadline asks for), and the server must
//! keep serving. `BURNSERVE_FUZZ_CASES` sets the cases per decoder (default 300; `.ci/run`
//! runs more); `BURNSERVE_FUZZ_SEED` replays a run.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};

fn cases() -> usize {
    std::env::var("BURNSERVE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn runner() -> TestRunner {
    let seed = seed("BURNSERVE_FUZZ_SEED");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

fn draw<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy
        .new_tree(runner)
        .expect("strategy draws a value")
        .current()
}

/// Numbers a client might send: ordinary, extreme, negative, fractional.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2.0f64..2.0).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        Just(json!(255)),
    ]
}

/// Field names of our decoders, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "inputs",
            "input",
            "timeout_ms",
            "top_k",
            "datatype",
            "model",
            "dimensions",
            "encoding_format",
            "name",
            "shape",
            "data",
            "parameters",
            "timeout",
            "id",
            "default_version",
            "weights",
            "user",
            "outputs",
        ])
        .prop_map(str::to_string),
        "[a-z_]{0,12}",
    ]
}

/// Arbitrary JSON, nested up to 6 deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        "\\PC{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Tensors as nested arrays of numbers with random (often wrong) shapes, or anything else.
fn tensor() -> impl Strategy<Value = Value> {
    // Rows of the fixtures' item sizes (echo 4, mlp 12) reach the models.
    let rows = |n: usize| {
        prop::collection::vec(prop::collection::vec(-1.0f64..1.0, n), 1..4)
            .prop_map(|rows| json!(rows))
    };
    prop_oneof![
        2 => rows(4),
        2 => rows(12),
        3 => prop::collection::vec(number(), 0..20).prop_map(Value::Array),
        3 => prop::collection::vec(prop::collection::vec(number(), 0..14), 0..5)
            .prop_map(|rows| json!(rows)),
        1 => prop::collection::vec("\\PC{0,10}", 0..4).prop_map(|s| json!(s)),
        1 => any_json(),
    ]
}

fn model_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["mlp", "echo"]).prop_map(str::to_string),
        1 => "[a-zA-Z0-9._-]{1,20}",
    ]
}

/// An optional field: absent, or drawn from `strategy`.
fn maybe(strategy: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::of(strategy)
}

fn timeout() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..5).prop_map(Value::from),
        (1000u64..100_000).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any_json(),
    ]
}

fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

fn predict_body() -> impl Strategy<Value = Value> {
    let datatype = prop_oneof![
        prop::sample::select(vec!["FP32", "UINT8", "BYTES", "INT64", "fp32"])
            .prop_map(|s| json!(s)),
        any_json(),
    ];
    prop_oneof![
        6 => (tensor(), maybe(timeout()), maybe(number()), maybe(datatype))
            .prop_map(|(inputs, timeout, top_k, datatype)| object(vec![
                ("inputs", Some(inputs)),
                ("timeout_ms", timeout),
                ("top_k", top_k),
                ("datatype", datatype),
            ])),
        1 => any_json(),
    ]
}

fn v2_body() -> impl Strategy<Value = Value> {
    let shape = prop_oneof![
        prop::collection::vec(0u64..20, 0..4).prop_map(|s| json!(s)),
        prop::collection::vec(any::<u64>(), 0..4).prop_map(|s| json!(s)),
        Just(json!([1_152_921_504_606_846_977u64, 784])),
        any_json(),
    ];
    let datatype = prop_oneof![
        prop::sample::select(vec![
            "FP32", "UINT8", "BYTES", "FP16", "BF16", "INT32", "INT64", "INT8", "UINT64", "BOOL",
            "FP64", "FP8",
        ])
        .prop_map(|s| json!(s)),
        any_json(),
    ];
    let input = (
        maybe("[a-z]{0,6}".prop_map(Value::String)),
        shape,
        datatype,
        tensor(),
    )
        .prop_map(|(name, shape, datatype, data)| {
            object(vec![
                ("name", name.or(Some(json!("x")))),
                ("shape", Some(shape)),
                ("datatype", Some(datatype)),
                ("data", Some(data)),
            ])
        });
    // Well-formed tensors for echo (4) and mlp (12), with their shape declared.
    let fitting = (prop::sample::select(vec![4usize, 12]), 1usize..4).prop_flat_map(|(item, n)| {
        prop::collection::vec(-1.0f64..1.0, n * item).prop_map(move |data| {
            json!({ "name": "x", "shape": [n, item], "datatype": "FP32", "data": data })
        })
    });
    let input = prop_oneof![input, fitting];
    prop_oneof![
        6 => (
            prop::collection::vec(input, 0..3),
            maybe(timeout()),
            maybe(any_json()),
            maybe(prop_oneof![
                prop::collection::vec("[a-z]{0,3}".prop_map(|n| json!({ "name": n })), 0..3)
                    .prop_map(Value::from),
                any_json(),
            ]),
        )
            .prop_map(|(inputs, timeout, id, outputs)| object(vec![
                ("inputs", Some(json!(inputs))),
                ("parameters", timeout.map(|t| json!({ "timeout": t }))),
                ("id", id),
                ("outputs", outputs),
            ])),
        1 => any_json(),
    ]
}

fn embeddings_body() -> impl Strategy<Value = Value> {
    let input = prop_oneof![
        "\\PC{0,64}".prop_map(Value::String),
        prop::collection::vec("\\PC{0,16}", 0..5).prop_map(|s| json!(s)),
        Just(json!("x".repeat(20_000))),
        tensor(),
    ];
    prop_oneof![
        6 => (model_name(), input, maybe(number()), maybe(any_json()))
            .prop_map(|(model, input, dimensions, format)| object(vec![
                ("model", Some(json!(model))),
                ("input", Some(input)),
                ("dimensions", dimensions),
                ("encoding_format", format),
            ])),
        1 => any_json(),
    ]
}

fn routing_body() -> impl Strategy<Value = Value> {
    let weights =
        prop::collection::btree_map("[0-9a-z%./]{1,6}", number(), 0..4).prop_map(|w| json!(w));
    prop_oneof![
        4 => (maybe("[0-9a-z./%]{1,8}".prop_map(Value::String)), maybe(weights))
            .prop_map(|(default_version, weights)| object(vec![
                ("default_version", default_version),
                ("weights", weights),
            ])),
        1 => any_json(),
    ]
}

/// `model.toml` overrides: the echo fixture's, with one line replaced by a hostile one, or
/// arbitrary text.
fn model_toml() -> impl Strategy<Value = String> {
    let base = [
        "architecture = \"fake-echo\"",
        "[input]",
        "name = \"x\"",
        "shape = [4]",
        "[output]",
        "name = \"y\"",
        "shape = [4]",
    ];
    let hostile = prop::sample::select(vec![
        "shape = [1152921504606846977, 784]",
        "shape = [0]",
        "shape = []",
        "weights = \"../../../etc/passwd\"",
        "weights = \"/etc/shadow\"",
        "sha256 = \"zz\"",
        "architecture = \"nope\"",
        "max_batch_size = 0",
        "[batching]\nmax_batch_size = 18446744073709551615",
        "[batching]\nmax_batch_delay_ms = 1e300",
        "[batching]\nqueue_capacity = 0",
        "timeout_ms = 0",
        "datatype = \"BYTES\"",
        "labels = [\"a\"]",
        "min = nan",
        "[[[",
    ]);
    prop_oneof![
        4 => (0..base.len(), hostile).prop_map(move |(line, replacement)| {
            let mut lines: Vec<String> = base.iter().map(|l| l.to_string()).collect();
            lines[line] = replacement.to_string();
            lines.join("\n")
        }),
        // Valid ones load: the version is built, warmed and swapped in.
        2 => (1usize..2000, 0u32..50).prop_map(move |(batch, delay)| {
            format!(
                "{}\n[batching]\nmax_batch_size = {batch}\nmax_batch_delay_ms = {delay}",
                base.join("\n")
            )
        }),
        1 => "\\PC{0,200}",
    ]
}

/// Whether an answer is acceptable: not a 5xx, unless the request's own deadline was tiny
/// (504 `timeout`); every error is JSON with an `error_type`.
fn check(what: &str, body: &str, status: u16, reply: &Value) {
    let tiny_deadline = reply["error_type"] == "timeout" && status == 504;
    assert!(
        status < 500 || tiny_deadline,
        "{what}: {status} {reply} for {body}"
    );
    if status >= 400 {
        assert!(
            reply["error_type"].is_string() && reply["error"].is_string(),
            "{what}: {status} without a JSON error for {body}: {reply}"
        );
    }
}

#[actix_web::test]
async fn every_decoder_answers_random_bodies_without_a_5xx() {
    let fixture = Fixture::new();
    // The target of the model.toml overrides: a copy of echo, so valid overrides really load.
    fixture.copy_version("echo", "1", "9");
    let server = TestServer::start(fixture.admin_settings()).await;
    let mut runner = runner();
    let cases = cases();
    let mut statuses = std::collections::BTreeMap::<(&str, u16), usize>::new();
    let models = model_name();
    for _ in 0..cases {
        let model = draw(&mut runner, &models);
        let requests = [
            (
                "predict",
                format!("/v1/models/{model}/predict"),
                draw(&mut runner, &predict_body()).to_string(),
            ),
            (
                "v2 infer",
                format!("/v2/models/{model}/infer"),
                draw(&mut runner, &v2_body()).to_string(),
            ),
            (
                "embeddings",
                "/v1/embeddings".to_string(),
                draw(&mut runner, &embeddings_body()).to_string(),
            ),
            (
                "bytes",
                format!("/v1/models/{model}/predict"),
                String::from_utf8_lossy(&draw(
                    &mut runner,
                    &prop::collection::vec(any::<u8>(), 0..64),
                ))
                .into_owned(),
            ),
        ];
        for (what, path, body) in requests {
            let (status, reply, _) = server.send("POST", &path, &body, None).await;
            check(what, &body, status, &reply);
            *statuses.entry((what, status)).or_default() += 1;
        }
        let body = draw(&mut runner, &routing_body()).to_string();
        let (status, reply, _) = server
            .send(
                "PUT",
                &format!("/admin/models/{model}/routing"),
                &body,
                Some(TOKEN),
            )
            .await;
        check("routing", &body, status, &reply);
        *statuses.entry(("routing", status)).or_default() += 1;
    }
    // Loads are slower: a tenth as many.
    for _ in 0..cases.div_ceil(10) {
        let body = draw(&mut runner, &model_toml());
        let (status, reply, _) = server
            .send("POST", "/admin/models/echo/versions/9", &body, Some(TOKEN))
            .await;
        check("model.toml", &body, status, &reply);
        *statuses.entry(("model.toml", status)).or_default() += 1;
    }
    println!("{statuses:?}");
    // Still serving, with the right answer (pinned: the fuzzed routing may have moved echo's
    // default).
    let (status, reply, _) = server
        .send(
            "POST",
            "/v1/models/echo/versions/1/predict",
            r#"{"inputs": [1, 2, 3, 4]}"#,
            None,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(floats(&reply["outputs"][0]), vec![1.0, 2.0, 3.0, 4.0]);
    server.stop().await;
}
