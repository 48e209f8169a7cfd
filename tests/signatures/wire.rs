//! One logical v2 request (named typed tensors, outputs asked for, a timeout) sent down each
//! protocol path, HTTP JSON, HTTP binary and gRPC raw contents, and each answer read back into
//! typed tensors or an error (status or code, `error_type`, message).

use burnserve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use burnserve::grpc::proto::*;
use burnserve::kserve::json::{JsonOut, TypedData};
use burnserve_models::tensor::{decode_le, encode_le};
use burnserve_models::{DataType, NamedTensor};
use serde::de::DeserializeSeed;
use serde_json::{json, Value};
use tonic::transport::Channel;

use super::common::TestServer;

pub type Client = GrpcInferenceServiceClient<Channel>;

/// An input as a request sends it: its declared datatype and shape, and its elements' bytes
/// (what the binary and raw paths carry; the JSON path reads them as the datatype).
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub bytes: Vec<u8>,
}

impl Input {
    pub fn of(tensor: &NamedTensor) -> Self {
        Self {
            name: tensor.name.clone(),
            datatype: tensor.datatype().as_str().into(),
            shape: tensor.shape.iter().map(|&d| d as i64).collect(),
            bytes: encode_le(&tensor.data),
        }
    }
}

/// A request as every path sends it.
#[derive(Debug, Clone, Default)]
pub struct Logical {
    pub model: String,
    pub inputs: Vec<Input>,
    pub outputs: Vec<String>,
    pub timeout_us: Option<u64>,
}

/// What a path answered: the outputs (name, datatype, shape, wire bytes), or the error.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Outputs(Vec<(String, String, Vec<i64>, Vec<u8>)>),
    /// HTTP status (or 0 for gRPC), gRPC code (or 0 for HTTP), `error_type`, message.
    Refused {
        status: u16,
        code: i32,
        error_type: String,
        message: String,
    },
}

impl Answer {
    pub fn error(&self) -> Option<(&str, &str)> {
        match self {
            Answer::Refused {
                error_type,
                message,
                ..
            } => Some((error_type, message)),
            Answer::Outputs(_) => None,
        }
    }
}

fn element_count(shape: &[i64]) -> usize {
    shape.iter().map(|&d| d.max(0) as usize).product()
}

/// The input's data as JSON `data` (its bytes read as the datatype it declares; JSON has no
/// NaN: callers send finite values and UTF-8 text down this path).
fn json_data(input: &Input) -> Value {
    let datatype =
        DataType::parse(&input.datatype).expect("a JSON request declares a real datatype");
    let data = decode_le(datatype, element_count(&input.shape), &input.bytes)
        .expect("a JSON request holds whole elements");
    serde_json::to_value(JsonOut(&data)).expect("JSON data")
}

fn outputs_json(outputs: &[String], binary: bool) -> Value {
    Value::Array(
        outputs
            .iter()
            .map(|name| json!({ "name": name, "parameters": { "binary_data": binary } }))
            .collect(),
    )
}

fn header(request: &Logical, binary: bool) -> Value {
    let mut body = json!({ "inputs": [] });
    if let Some(us) = request.timeout_us {
        body["parameters"] = json!({ "timeout": us, "binary_data_output": binary });
    } else {
        body["parameters"] = json!({ "binary_data_output": binary });
    }
    if !request.outputs.is_empty() {
        body["outputs"] = outputs_json(&request.outputs, binary);
    }
    body
}

/// HTTP JSON: every input's `data` as JSON, every output answered as JSON.
pub async fn http_json(server: &TestServer, request: &Logical) -> Answer {
    let mut body = header(request, false);
    body["inputs"] = Value::Array(
        request
            .inputs
            .iter()
            .map(|i| json!({ "name": i.name, "shape": i.shape, "datatype": i.datatype, "data": json_data(i) }))
            .collect(),
    );
    let path = format!("/v2/models/{}/infer", request.model);
    let (status, bytes, _) = post(server, &path, serde_json::to_vec(&body).unwrap(), None).await;
    read_http(status, &bytes, None)
}

/// HTTP binary: every input's bytes after the JSON header, every output answered as binary.
pub async fn http_binary(server: &TestServer, request: &Logical) -> Answer {
    let mut body = header(request, true);
    body["inputs"] = Value::Array(
        request
            .inputs
            .iter()
            .map(|i| json!({ "name": i.name, "shape": i.shape, "datatype": i.datatype, "parameters": { "binary_data_size": i.bytes.len() } }))
            .collect(),
    );
    let mut framed = serde_json::to_vec(&body).unwrap();
    let length = framed.len();
    for input in &request.inputs {
        framed.extend_from_slice(&input.bytes);
    }
    let path = format!("/v2/models/{}/infer", request.model);
    let (status, bytes, header_length) = post(server, &path, framed, Some(length)).await;
    read_http(status, &bytes, header_length)
}

async fn post(
    server: &TestServer,
    path: &str,
    body: Vec<u8>,
    header_length: Option<usize>,
) -> (u16, Vec<u8>, Option<usize>) {
    let mut request = server.client.post(server.url(path));
    if let Some(length) = header_length {
        request = request.insert_header(("inference-header-content-length", length.to_string()));
    }
    let mut response = request.send_body(body).await.expect("HTTP answer");
    let length = response
        .headers()
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = response.body().limit(64 << 20).await.expect("body");
    (response.status().as_u16(), bytes.to_vec(), length)
}

fn read_http(status: u16, bytes: &[u8], header_length: Option<usize>) -> Answer {
    let (head, mut rest) = bytes.split_at(header_length.unwrap_or(bytes.len()));
    let body: Value = serde_json::from_slice(head).expect("a JSON answer");
    if status != 200 {
        return Answer::Refused {
            status,
            code: 0,
            error_type: body["error_type"].as_str().unwrap_or_default().into(),
            message: body["error"].as_str().unwrap_or_default().into(),
        };
    }
    let outputs = body["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            let datatype = o["datatype"].as_str().expect("datatype").to_string();
            let shape: Vec<i64> = o["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            let parsed = DataType::parse(&datatype).expect("a v2 datatype");
            let bytes = match o["parameters"]["binary_data_size"].as_u64() {
                Some(size) => {
                    let (mine, after) = rest.split_at(size as usize);
                    rest = after;
                    mine.to_vec()
                }
                None => {
                    let data = TypedData(parsed)
                        .deserialize(&o["data"])
                        .expect("JSON data of its datatype");
                    encode_le(&data.data)
                }
            };
            (
                o["name"].as_str().unwrap().to_string(),
                datatype,
                shape,
                bytes,
            )
        })
        .collect();
    assert!(rest.is_empty(), "bytes no output claimed");
    Answer::Outputs(outputs)
}

/// gRPC: every input as raw contents, every output answered as raw contents.
pub async fn grpc(client: &mut Client, request: &Logical) -> Answer {
    let mut message = ModelInferRequest {
        model_name: request.model.clone(),
        inputs: request
            .inputs
            .iter()
            .map(|i| model_infer_request::InferInputTensor {
                name: i.name.clone(),
                datatype: i.datatype.clone(),
                shape: i.shape.clone(),
                parameters: Default::default(),
                contents: None,
            })
            .collect(),
        raw_input_contents: request
            .inputs
            .iter()
            .map(|i| i.bytes.clone().into())
            .collect(),
        outputs: request
            .outputs
            .iter()
            .map(|name| model_infer_request::InferRequestedOutputTensor {
                name: name.clone(),
                parameters: Default::default(),
            })
            .collect(),
        ..Default::default()
    };
    if let Some(us) = request.timeout_us {
        message.parameters.insert(
            "timeout".into(),
            InferParameter {
                parameter_choice: Some(infer_parameter::ParameterChoice::Uint64Param(us)),
            },
        );
    }
    match client.model_infer(message).await {
        Ok(response) => {
            let response = response.into_inner();
            Answer::Outputs(
                response
                    .outputs
                    .into_iter()
                    .zip(response.raw_output_contents)
                    .map(|(o, raw)| (o.name, o.datatype, o.shape, raw.to_vec()))
                    .collect(),
            )
        }
        Err(status) => Answer::Refused {
            status: 0,
            code: status.code() as i32,
            error_type: status
                .metadata()
                .get("error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .into(),
            message: status.message().into(),
        },
    }
}

pub async fn client(server: &TestServer) -> Client {
    let channel = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .expect("grpc connects");
    GrpcInferenceServiceClient::new(channel).max_decoding_message_size(64 << 20)
}
