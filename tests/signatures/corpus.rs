//! A generated corpus of invalid requests: valid requests for `sig`, each broken one way (an
//! unknown, missing or repeated input; a wrong, unknown or empty datatype or name; a shape of
//! another rank, a fixed dimension changed, a negative, zero or overflowing dimension; bytes
//! that do not fill the shape; BYTES lengths that overrun or bytes left after them; a BOOL byte
//! that is not 0 or 1; rows that disagree or are too many; an output the model lacks or asked
//! twice; a timeout past an hour), sent over HTTP binary and gRPC raw contents: both refuse it
//! with the same `error_type` and the same message, and no forward pass runs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::common::{seed, Fixture, TestServer};
use super::wire::{self, Input, Logical};
use super::{logical, settings, stats, tensors};

/// The ways a request is broken, one each.
const KINDS: usize = 20;
/// Cases of each kind.
const PER_KIND: usize = 55;

fn broken(rng: &mut StdRng, kind: usize) -> Logical {
    let (rows, len) = (rng.random_range(1..=3), rng.random_range(1..=4));
    let small = rng.random();
    let base = tensors(rng, true, rows, len, true, small);
    let mut request = logical("sig", &base);
    let pick = |rng: &mut StdRng, request: &Logical| rng.random_range(0..request.inputs.len());
    let index_of = |request: &Logical, name: &str| {
        request
            .inputs
            .iter()
            .position(|i| i.name == name)
            .expect("input")
    };
    match kind {
        0 => {
            let i = pick(rng, &request);
            request.inputs[i].name = format!("zz{}", rng.random::<u16>());
        }
        1 => {
            request.inputs.remove(rng.random_range(0..5));
        }
        2 => {
            let i = pick(rng, &request);
            let copy = request.inputs[i].clone();
            request
                .inputs
                .insert(rng.random_range(0..=request.inputs.len()), copy);
        }
        3 => {
            let i = pick(rng, &request);
            let others = [
                "BOOL", "UINT8", "INT16", "UINT32", "INT64", "FP16", "FP64", "BYTES",
            ];
            let other = loop {
                let d = others[rng.random_range(0..others.len())];
                if d != request.inputs[i].datatype {
                    break d;
                }
            };
            request.inputs[i].datatype = other.into();
        }
        4 => {
            let i = pick(rng, &request);
            let junk = ["FP8", "float32", "", "INT128", "bytes", "TYPE_FP32"];
            request.inputs[i].datatype = junk[rng.random_range(0..junk.len())].into();
        }
        5 => {
            let i = pick(rng, &request);
            request.inputs[i].shape.push(1);
        }
        6 => {
            let i = index_of(&request, "ids");
            let k = loop {
                let k = rng.random_range(1..=6);
                if k != 3 {
                    break k;
                }
            };
            request.inputs[i].shape = vec![rows as i64, k];
            request.inputs[i].bytes = vec![7; rows * k as usize * 8];
        }
        7 => {
            let i = rng.random_range(0..5);
            let i = if request.inputs[i].datatype == "BYTES" {
                0
            } else {
                i
            };
            let size = match request.inputs[i].datatype.as_str() {
                "BOOL" => 1,
                "FP16" => 2,
                "FP32" => 4,
                _ => 8,
            };
            if rng.random() {
                let keep = request.inputs[i].bytes.len() - size;
                request.inputs[i].bytes.truncate(keep);
            } else {
                request.inputs[i].bytes.extend(std::iter::repeat_n(0, size));
            }
        }
        8 => {
            let i = pick(rng, &request);
            let d = rng.random_range(0..request.inputs[i].shape.len());
            request.inputs[i].shape[d] = -rng.random_range(1..=1000);
        }
        9 => {
            let i = index_of(&request, "ids");
            request.inputs[i] = Input::of(&burnserve_models::NamedTensor::new(
                "ids",
                vec![rows + 1, 3],
                burnserve_models::TensorData::I64(vec![1; (rows + 1) * 3]),
            ));
        }
        10 => {
            let rows = rng.random_range(9..=12);
            let many = tensors(rng, true, rows, len, true, false);
            request = logical("sig", &many);
        }
        11 => {
            let i = index_of(&request, "text");
            let huge: u32 = rng.random_range(1000..u32::MAX);
            request.inputs[i].bytes[..4].copy_from_slice(&huge.to_le_bytes());
        }
        12 => {
            let i = index_of(&request, "text");
            let extra = rng.random_range(1..=7);
            request.inputs[i]
                .bytes
                .extend((0..extra).map(|_| rng.random::<u8>()));
        }
        13 => {
            let i = index_of(&request, "mask");
            let at = rng.random_range(0..request.inputs[i].bytes.len());
            request.inputs[i].bytes[at] = rng.random_range(2..=255);
        }
        14 => request.outputs = vec![format!("nope{}", rng.random::<u8>())],
        15 => request.outputs = vec!["ids_out".into(), "mask_out".into(), "ids_out".into()],
        16 => {
            let i = pick(rng, &request);
            request.inputs[i].name = String::new();
        }
        17 => {
            let i = index_of(&request, "mask");
            request.inputs[i].shape = vec![rows as i64, 0];
            request.inputs[i].bytes.clear();
        }
        18 => {
            let i = pick(rng, &request);
            request.inputs[i].shape = vec![i64::MAX, rng.random_range(2..=i64::MAX)];
        }
        _ => request.timeout_us = Some(rng.random_range(3_600_000_001..=u64::MAX)),
    }
    request
}

#[actix_web::test]
async fn invalid_requests_get_the_same_error_type_and_message_on_http_and_grpc() {
    let fixture = Fixture::new();
    let server = TestServer::start(settings(&fixture)).await;
    let mut grpc = wire::client(&server).await;
    let mut rng = StdRng::seed_from_u64(seed("SIGNATURES_SEED"));
    let before = stats(&server, "sig").await;
    let mut compared = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for kind in 0..KINDS {
        for _ in 0..PER_KIND {
            let request = broken(&mut rng, kind);
            let http = wire::http_binary(&server, &request).await;
            let over_grpc = wire::grpc(&mut grpc, &request).await;
            let (Some((http_type, http_message)), Some((grpc_type, grpc_message))) =
                (http.error(), over_grpc.error())
            else {
                panic!("kind {kind}: {request:?} was served: {http:?} / {over_grpc:?}");
            };
            assert_eq!(
                (http_type, http_message),
                (grpc_type, grpc_message),
                "kind {kind}: {request:?}"
            );
            let wire::Answer::Refused { status, .. } = http else {
                unreachable!()
            };
            let wire::Answer::Refused { code, .. } = over_grpc else {
                unreachable!()
            };
            assert!(
                matches!(status, 400 | 422),
                "kind {kind}: {status} {http_message}"
            );
            assert_eq!(
                code,
                tonic::Code::InvalidArgument as i32,
                "kind {kind}: {grpc_message}"
            );
            *statuses.entry((kind, status)).or_insert(0) += 1;
            compared += 1;
        }
    }
    let after = stats(&server, "sig").await;
    println!(
        "compared {compared} invalid requests on HTTP and gRPC: same error_type and message \
         each; (kind, HTTP status) -> count: {statuses:?}"
    );
    assert!(compared >= 1000);
    assert_eq!(after.1, before.1, "no invalid request reached the model");
    server.stop().await;
}
