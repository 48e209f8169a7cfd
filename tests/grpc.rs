//! KServe v2 gRPC through a tonic client on 127.0.0.1: infer with raw and typed contents against
//! the HTTP answer and the network run in-process, every error's code, tenants and the admin
//! token, a client deadline shorter than the model's, metrics counted like HTTP's, statistics,
//! grpc.health.v1, and PING ACKs over raw HTTP/2 (held, then sent alone or with an answer).

mod common;

use std::time::{Duration, Instant};

use burnserve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use burnserve::grpc::proto::*;
use burnserve_models::{forward_f32, load_model, Device, ModelSpec};
use common::*;
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};

type Client = GrpcInferenceServiceClient<Channel>;

async fn client(server: &TestServer) -> Client {
    let channel = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .expect("grpc connects");
    GrpcInferenceServiceClient::new(channel)
}

fn in_process(fixture: &Fixture, items: &[Vec<f32>]) -> Vec<f32> {
    let dir = fixture.version_dir("mlp", "2");
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

fn input(name: &str, datatype: &str, shape: &[i64]) -> model_infer_request::InferInputTensor {
    model_infer_request::InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        parameters: Default::default(),
        contents: None,
    }
}

fn infer_request(model: &str, input: model_infer_request::InferInputTensor) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        model_version: String::new(),
        id: String::new(),
        parameters: Default::default(),
        inputs: vec![input],
        outputs: vec![],
        raw_input_contents: vec![],
    }
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[actix_web::test]
async fn raw_and_typed_infer_answer_what_http_does() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let mut grpc = client(&server).await;
    let items = mlp_items(3);
    let flat: Vec<f32> = items.concat();
    let reference = in_process(&fixture, &items);
    let shape = [3, MLP_INPUT as i64];

    let mut raw = infer_request("mlp", input("features", "FP32", &shape));
    raw.id = "g-7".into();
    raw.raw_input_contents = vec![le_bytes(&flat).into()];
    let answer = grpc.model_infer(raw).await.expect("raw infer").into_inner();
    assert_eq!(
        (
            answer.model_name.as_str(),
            answer.model_version.as_str(),
            answer.id.as_str()
        ),
        ("mlp", "2", "g-7")
    );
    let output = &answer.outputs[0];
    assert_eq!(
        (output.name.as_str(), output.datatype.as_str()),
        ("probabilities", "FP32")
    );
    assert_eq!(output.shape, [3, MLP_CLASSES as i64]);
    let served = from_le(&answer.raw_output_contents[0]);
    for (a, b) in served.iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-6, "{served:?} vs {reference:?}");
    }

    let mut typed_input = input("features", "FP32", &shape);
    typed_input.contents = Some(InferTensorContents {
        fp32_contents: flat.clone(),
        ..Default::default()
    });
    let typed = grpc
        .model_infer(infer_request("mlp", typed_input))
        .await
        .expect("typed infer")
        .into_inner();
    assert_eq!(
        from_le(&typed.raw_output_contents[0]),
        served,
        "typed contents answer the same"
    );

    let (status, http, _) = server
        .post(
            "/v2/models/mlp/infer",
            &json!({ "inputs": [{ "name": "features", "shape": shape, "datatype": "FP32", "data": flat }] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        floats(&http["outputs"][0]["data"]),
        served,
        "gRPC and HTTP agree bit for bit"
    );

    // Counted like any request: three to mlp/2, by the same tenant label.
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "inference_requests_total",
            &[("model", "mlp"), ("version", "2"), ("tenant", "anonymous")]
        ),
        3.0
    );
    let stats = grpc
        .model_statistics(ModelStatisticsRequest {
            name: "mlp".into(),
            version: "2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let s = &stats.model_stats[0];
    assert_eq!(
        (
            s.inference_count,
            s.inference_stats
                .as_ref()
                .unwrap()
                .success
                .as_ref()
                .unwrap()
                .count
        ),
        (9, 3)
    );

    let meta = grpc
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "burnserve");
    assert!(meta.extensions.contains(&"binary_tensor_data".to_string()));
    let model = grpc
        .model_metadata(ModelMetadataRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(model.versions, ["1", "2"]);
    assert_eq!(model.inputs[0].shape, [-1, MLP_INPUT as i64]);
    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        grpc.model_ready(ready("mlp", "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !grpc
            .model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        grpc.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let config = grpc
        .model_config(ModelConfigRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        (config.max_batch_size, config.input[0].dims.clone()),
        (16, vec![MLP_INPUT as i64])
    );
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);

    // grpc.health.v1, as Kubernetes' gRPC probe calls it.
    let channel = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}

#[actix_web::test]
async fn every_mistake_gets_its_code_and_error_type() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let mut grpc = client(&server).await;
    let good = || {
        let mut i = input("features", "FP32", &[1, MLP_INPUT as i64]);
        i.contents = Some(InferTensorContents {
            fp32_contents: vec![0.5; MLP_INPUT],
            ..Default::default()
        });
        i
    };
    let mut cases: Vec<(ModelInferRequest, Code, &str, &str)> = vec![];
    cases.push((
        infer_request("nope", good()),
        Code::NotFound,
        "model_not_found",
        "nope",
    ));
    let mut pinned = infer_request("mlp", good());
    pinned.model_version = "9".into();
    cases.push((pinned, Code::NotFound, "model_not_found", "'9'"));
    let mut short = good();
    short.contents.as_mut().unwrap().fp32_contents.pop();
    cases.push((
        infer_request("mlp", short),
        Code::InvalidArgument,
        "invalid_input",
        "11 FP32 elements",
    ));
    let mut both = infer_request("mlp", good());
    both.raw_input_contents = vec![vec![0; 48].into()];
    cases.push((
        both,
        Code::InvalidArgument,
        "invalid_input",
        "both contents and raw_input_contents",
    ));
    let mut raw_short = infer_request("mlp", input("features", "FP32", &[1, MLP_INPUT as i64]));
    raw_short.raw_input_contents = vec![vec![0; 47].into()];
    cases.push((
        raw_short,
        Code::InvalidArgument,
        "invalid_input",
        "47 bytes",
    ));
    let mut two_raw = infer_request("mlp", input("features", "FP32", &[1, MLP_INPUT as i64]));
    two_raw.raw_input_contents = vec![vec![0; 48].into(), vec![0; 48].into()];
    cases.push((
        two_raw,
        Code::InvalidArgument,
        "invalid_input",
        "2 entries for 1 inputs",
    ));
    cases.push((
        infer_request("mlp", input("features", "FP32", &[-1, 12])),
        Code::InvalidArgument,
        "invalid_input",
        "negative dimension",
    ));
    cases.push((
        infer_request("mlp", input("features", "FP32", &[1, MLP_INPUT as i64])),
        Code::InvalidArgument,
        "invalid_input",
        "no contents",
    ));
    let mut wrong_shape = input("features", "FP32", &[1, 5]);
    wrong_shape.contents = Some(InferTensorContents {
        fp32_contents: vec![0.0; 5],
        ..Default::default()
    });
    cases.push((
        infer_request("mlp", wrong_shape),
        Code::InvalidArgument,
        "invalid_input",
        "shape",
    ));
    let mut unknown_output = infer_request("mlp", good());
    unknown_output.outputs = vec![model_infer_request::InferRequestedOutputTensor {
        name: "logits".into(),
        parameters: Default::default(),
    }];
    cases.push((
        unknown_output,
        Code::InvalidArgument,
        "invalid_input",
        "unknown output 'logits'",
    ));
    let mut fp16 = input("features", "FP16", &[1]);
    fp16.contents = Some(InferTensorContents::default());
    cases.push((
        infer_request("mlp", fp16),
        Code::InvalidArgument,
        "invalid_input",
        "FP16",
    ));
    let mut bad_timeout = infer_request("mlp", good());
    bad_timeout.parameters.insert(
        "timeout".into(),
        InferParameter {
            parameter_choice: Some(infer_parameter::ParameterChoice::StringParam("soon".into())),
        },
    );
    cases.push((
        bad_timeout,
        Code::InvalidArgument,
        "invalid_input",
        "timeout",
    ));
    cases.push((
        infer_request("panic", {
            let mut i = input("x", "FP32", &[1, 2]);
            // The fake's marker: its forward pass panics.
            i.contents = Some(InferTensorContents {
                fp32_contents: vec![-1.0, 2.0],
                ..Default::default()
            });
            i
        }),
        Code::Internal,
        "inference_error",
        "",
    ));
    for (request, code, error_type, words) in cases {
        let err = grpc.model_infer(request).await.expect_err("refused");
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(
            err.metadata().get("error-type").unwrap(),
            error_type,
            "{err:?}"
        );
        assert!(err.message().contains(words), "{words}: {}", err.message());
    }
    // A message past server.max_body_bytes (8 MiB) is refused by the transport, unread (tonic
    // answers OUT_OF_RANGE, naming the limit).
    let mut huge = infer_request("mlp", input("features", "FP32", &[1, MLP_INPUT as i64]));
    huge.raw_input_contents = vec![vec![0; 9 << 20].into()];
    let err = grpc.model_infer(huge).await.expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("8388608"), "{err:?}");
    // A shape whose element count overflows is a clear INVALID_ARGUMENT, not a panic.
    let mut overflow = input("features", "FP32", &[i64::MAX, i64::MAX]);
    overflow.contents = Some(InferTensorContents::default());
    let err = grpc
        .model_infer(infer_request("mlp", overflow))
        .await
        .expect_err("overflow");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("more elements"), "{err:?}");
    // Random model names are counted under `unknown`, never as labels.
    for n in 0..50 {
        let _ = grpc
            .model_infer(infer_request(&format!("m-{n}"), good()))
            .await;
    }
    let metrics = server.metrics().await;
    assert!(!metrics.contains("m-17"));
    // The 50, `nope`, and mlp's missing version 9.
    let unknown = [("model", "unknown")];
    assert_eq!(metric(&metrics, "inference_requests_total", &unknown), 52.0);
    // Repository RPCs need the admin token; none is configured here.
    let err = grpc
        .repository_index(RepositoryIndexRequest {
            repository_name: String::new(),
            ready: false,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await;
}

#[actix_web::test]
async fn tenants_admin_token_and_deadlines_hold_over_grpc() {
    let fixture = Fixture::new();
    let extra = format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[[tenants]]\nname = \"alpha\"\napi_key = \"alpha-key-0123456789abcdef\"\n"
    );
    let server =
        TestServer::start(burnserve::Settings::from_toml(&fixture.settings_toml(&extra)).unwrap())
            .await;
    let mut grpc = client(&server).await;
    let slow = || {
        let mut i = input("x", "FP32", &[1, 2]);
        i.contents = Some(InferTensorContents {
            fp32_contents: vec![1.0, 2.0],
            ..Default::default()
        });
        infer_request("slow", i)
    };
    let err = grpc.model_infer(slow()).await.expect_err("no key");
    assert_eq!(
        (
            err.code(),
            err.metadata().get("error-type").unwrap().to_str().unwrap()
        ),
        (Code::Unauthenticated, "unauthorized")
    );
    let err = grpc
        .model_infer(with_token(slow(), "wrong-key-0123456789"))
        .await
        .expect_err("bad key");
    assert_eq!(err.code(), Code::Unauthenticated);
    let answer = grpc
        .model_infer(with_token(slow(), "alpha-key-0123456789abcdef"))
        .await
        .expect("tenant key")
        .into_inner();
    assert_eq!(answer.model_name, "slow");
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "inference_requests_total",
            &[("model", "slow"), ("tenant", "alpha")]
        ),
        1.0
    );

    // A client deadline shorter than the 300 ms pass: the runtime holds the request to it, so
    // the pass it knows it cannot finish in time is refused at once (RESOURCE_EXHAUSTED,
    // `overloaded`), not run.
    let mut request = with_token(slow(), "alpha-key-0123456789abcdef");
    request.set_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let err = grpc.model_infer(request).await.expect_err("deadline");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("cannot answer within 100ms"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    // A deadline the pass fits but the queue ahead does not: a second call queued behind a
    // running one gets DEADLINE_EXCEEDED by its deadline.
    let mut first = grpc.clone();
    let running = tokio::spawn(async move {
        first
            .model_infer(with_token(slow(), "alpha-key-0123456789abcdef"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut request = with_token(slow(), "alpha-key-0123456789abcdef");
    request.set_timeout(Duration::from_millis(450));
    let started = Instant::now();
    match grpc.model_infer(request).await {
        Err(err) => {
            assert!(
                [Code::DeadlineExceeded, Code::ResourceExhausted].contains(&err.code()),
                "{err:?}"
            );
            assert!(
                started.elapsed() < Duration::from_millis(550),
                "{:?}",
                started.elapsed()
            );
        }
        Ok(_) => assert!(started.elapsed() <= Duration::from_millis(450)),
    }
    running.await.unwrap().expect("the first call is served");

    // The repository RPCs take the admin token only.
    let index = || RepositoryIndexRequest {
        repository_name: String::new(),
        ready: true,
    };
    let err = grpc
        .repository_index(with_token(index(), "alpha-key-0123456789abcdef"))
        .await
        .expect_err("tenant");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = grpc.repository_index(index()).await.expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let listed = grpc
        .repository_index(with_token(index(), TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(listed
        .models
        .iter()
        .any(|m| m.name == "mlp" && m.version == "2" && m.state == "READY"));
    let unload = RepositoryModelUnloadRequest {
        repository_name: String::new(),
        model_name: "echo".into(),
        parameters: Default::default(),
    };
    grpc.repository_model_unload(with_token(unload, TOKEN))
        .await
        .unwrap();
    let ready = grpc
        .model_ready(ModelReadyRequest {
            name: "echo".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ready.ready);
    let load = RepositoryModelLoadRequest {
        repository_name: String::new(),
        model_name: "echo".into(),
        parameters: Default::default(),
    };
    grpc.repository_model_load(with_token(load, TOKEN))
        .await
        .unwrap();
    let ready = grpc
        .model_ready(ModelReadyRequest {
            name: "echo".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready);
    server.stop().await;
}

/// Reads HTTP/2 frames (type, flags, stream, payload) from a raw connection.
struct RawH2 {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl RawH2 {
    async fn connect(server: &TestServer) -> Self {
        use tokio::io::AsyncWriteExt;
        let addr = server.grpc.as_ref().expect("grpc enabled").addr;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(4, 0, 0, &[]));
        stream.write_all(&hello).await.expect("preface");
        let mut raw = Self {
            stream,
            buffer: Vec::new(),
        };
        // The server's SETTINGS (acknowledged) and its ACK of ours, whatever else comes.
        let (mut settings, mut acked) = (false, false);
        while !(settings && acked) {
            let (kind, flags, _, _) = raw.next_frame().await;
            if kind == 4 && flags & 1 == 0 {
                settings = true;
                raw.send(&frame(4, 1, 0, &[])).await;
            }
            acked |= kind == 4 && flags & 1 == 1;
        }
        // And whatever else it opens with (a WINDOW_UPDATE): then the connection is quiet.
        while tokio::time::timeout(Duration::from_millis(200), raw.next_frame())
            .await
            .is_ok()
        {}
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("send");
    }

    async fn next_frame(&mut self) -> (u8, u8, u32, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        loop {
            if self.buffer.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buffer[0], self.buffer[1], self.buffer[2]]);
                let total = 9 + len as usize;
                if self.buffer.len() >= total {
                    let head: Vec<u8> = self.buffer.drain(..total).collect();
                    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
                    return (head[3], head[4], stream & 0x7fff_ffff, head[9..].to_vec());
                }
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("a frame within 5 s")
                .expect("read");
            assert!(read > 0, "the server closed the connection");
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut bytes = vec![len[1], len[2], len[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// HPACK literal header field without indexing, new name, no Huffman (short strings).
fn literal_header(name: &str, value: &str) -> Vec<u8> {
    let mut bytes = vec![0, name.len() as u8];
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(value.len() as u8);
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

#[actix_web::test]
async fn ping_acks_arrive_after_a_hold_first_with_the_next_answer_and_all_of_a_flood() {
    use burnserve::grpc::ping::MAX_PING_ACK_HOLD;
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.settings()).await;
    let mut raw = RawH2::connect(&server).await;

    // A PING with nothing else to write: answered after a hold (at least half the longest: the
    // sweeper looks every half), payload echoed.
    let sent = Instant::now();
    raw.send(&frame(6, 0, 0, b"burnserv")).await;
    let (kind, flags, stream, payload) = raw.next_frame().await;
    let waited = sent.elapsed();
    assert_eq!(
        (kind, flags, stream, payload.as_slice()),
        (6, 1, 0, b"burnserv".as_slice())
    );
    assert!(
        waited >= MAX_PING_ACK_HOLD / 2 && waited < Duration::from_secs(2),
        "held {waited:?}"
    );

    // A PING and a ServerLive call in one write (as grpc-go sends its PING with the next call):
    // the ACK first, then the whole answer.
    let mut headers = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/inference.GRPCInferenceService/ServerLive"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        headers.extend(literal_header(name, value));
    }
    let mut call = frame(6, 0, 0, b"answered");
    call.extend(frame(1, 4, 1, &headers)); // END_HEADERS
    call.extend(frame(0, 1, 1, &[0, 0, 0, 0, 0])); // END_STREAM: an empty ServerLiveRequest
    raw.send(&call).await;
    let mut frames = Vec::new();
    while frames
        .last()
        .is_none_or(|&(kind, flags, _, _): &(u8, u8, u32, Vec<u8>)| !(kind == 1 && flags & 1 == 1))
    {
        let next = raw.next_frame().await;
        if next.0 != 8 {
            frames.push(next); // WINDOW_UPDATEs may come anywhere
        }
    }
    let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.0, f.2)).collect();
    assert_eq!(kinds, [(6, 0), (1, 1), (0, 1), (1, 1)], "{frames:?}");
    assert_eq!(frames[0].3, b"answered");
    // The answer's message: not compressed, 2 bytes, ServerLiveResponse { live: true }.
    assert_eq!(frames[2].3, [0, 0, 0, 0, 2, 0x08, 0x01]);

    // A flood of PINGs in one write: every one answered, in order, none lost in a hold.
    let flood: Vec<u8> = (0..1000u64)
        .flat_map(|i| frame(6, 0, 0, &i.to_be_bytes()))
        .collect();
    raw.send(&flood).await;
    let mut acked = 0u64;
    while acked < 1000 {
        let (kind, flags, _, payload) = raw.next_frame().await;
        if kind != 8 {
            let expected = (6, 1, acked.to_be_bytes().to_vec());
            assert_eq!((kind, flags, payload), expected, "ACK {acked}");
            acked += 1;
        }
    }
    let mut grpc = client(&server).await;
    let live = grpc.server_live(ServerLiveRequest {}).await.expect("live");
    assert!(live.into_inner().live);
    server.stop().await;
}

/// What a hostile client sends gets the client's error codes: a message that is not protobuf is
/// INVALID_ARGUMENT (not INTERNAL); a 10,000-character model name is NOT_FOUND with its echo cut
/// (it used to overflow the client's metadata limit: RESOURCE_EXHAUSTED); `parameters.timeout`
/// above an hour is INVALID_ARGUMENT, as over HTTP; admin-token guesses over gRPC are counted and
/// the source is slowed after 5 (RESOURCE_EXHAUSTED `rate_limited`).
#[actix_web::test]
async fn hostile_calls_get_client_errors() {
    let fixture = Fixture::new();
    let extra = format!("[admin]\ntoken = \"{TOKEN}\"\n");
    let server =
        TestServer::start(burnserve::Settings::from_toml(&fixture.settings_toml(&extra)).unwrap())
            .await;
    let mut grpc = client(&server).await;

    // Not protobuf: a field tag of 0 is invalid wire format.
    let port: u16 = server
        .grpc_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("grpc port");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (h2_client, connection) = h2::client::handshake(tcp).await.expect("handshake");
    actix_web::rt::spawn(async move {
        let _ = connection.await;
    });
    let mut h2_client = h2_client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut send) = h2_client.send_request(request, false).expect("send");
    send.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 3, 0, 0, 0]), true)
        .expect("garbage");
    let response = response.await.expect("answer");
    // The status comes in the trailers, or in the headers of a trailers-only answer.
    let trailers = match response.headers().get("grpc-status") {
        Some(_) => response.headers().clone(),
        None => {
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                chunk.expect("body");
            }
            body.trailers().await.expect("trailers").expect("status")
        }
    };
    assert_eq!(trailers.get("grpc-status").unwrap(), "3", "{trailers:?}");
    assert_eq!(trailers.get("error-type").unwrap(), "invalid_input");

    // A 10,000-character model name.
    let mut long = input("x", "FP32", &[1, 2]);
    long.contents = Some(InferTensorContents {
        fp32_contents: vec![1.0, 2.0],
        ..Default::default()
    });
    let err = grpc
        .model_infer(infer_request(&"m".repeat(10_000), long.clone()))
        .await
        .expect_err("no such model");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().len() <= 1100, "{}", err.message().len());
    assert!(err.message().contains("bytes cut"), "{}", err.message());

    // parameters.timeout: an hour is the most, as over HTTP.
    for (us, code) in [
        (3_600_000_000i64, Code::Ok),
        (1 << 62, Code::InvalidArgument),
    ] {
        let mut request = infer_request("echo", {
            let mut i = input("x", "FP32", &[1, 4]);
            i.contents = Some(InferTensorContents {
                fp32_contents: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            });
            i
        });
        request.parameters.insert(
            "timeout".into(),
            InferParameter {
                parameter_choice: Some(infer_parameter::ParameterChoice::Int64Param(us)),
            },
        );
        let got = grpc
            .model_infer(request)
            .await
            .err()
            .map_or(Code::Ok, |e| e.code());
        assert_eq!(got, code, "timeout {us} µs");
    }

    // Admin-token guesses: 5 are checked, then the source is refused unchecked.
    let mut codes = Vec::new();
    for i in 0..8 {
        let err = grpc
            .repository_index(with_token(
                RepositoryIndexRequest::default(),
                &format!("guess-{i:024}"),
            ))
            .await
            .expect_err("wrong token");
        codes.push(err.code());
    }
    assert_eq!(&codes[..5], &[Code::Unauthenticated; 5]);
    assert_eq!(&codes[5..], &[Code::ResourceExhausted; 3]);
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "auth_failures_total",
            &[("credential", "admin_token")]
        ),
        5.0
    );
    assert_eq!(metric(&metrics, "auth_penalized_total", &[]), 3.0);
    server.stop().await;
}
