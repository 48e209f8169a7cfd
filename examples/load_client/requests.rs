//! The one request each connection of the load generator sends, encoded once: a gRPC
//! ModelInfer message (raw contents) or a whole HTTP/1.1 request (v2 JSON, v2 binary tensors,
//! the simple predict API, the liveness probe).

use burnserve::grpc::proto::model_infer_request::InferInputTensor;
use burnserve::grpc::proto::ModelInferRequest;
use bytes::Bytes;
use prost::Message;

use super::{extra, input_values, Args, Mode};

/// The ModelInfer message encoded once, in gRPC's framing (flag byte, big-endian length).
pub fn grpc_request(args: &Args) -> Bytes {
    let raw: Vec<u8> = input_values(&args.shape)
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    let mut inputs = vec![InferInputTensor {
        name: args.input.clone(),
        datatype: "FP32".into(),
        shape: args.shape.clone(),
        ..Default::default()
    }];
    let mut raw_input_contents = vec![raw.into()];
    if args.only_extras {
        inputs.clear();
        raw_input_contents.clear();
    }
    for extra in &args.extras {
        inputs.push(InferInputTensor {
            name: extra.name.clone(),
            datatype: extra.datatype.as_str().into(),
            shape: extra.shape.clone(),
            ..Default::default()
        });
        raw_input_contents.push(extra.bytes().into());
    }
    let message = ModelInferRequest {
        model_name: args.model.clone(),
        model_version: args.version.clone(),
        inputs,
        raw_input_contents,
        ..Default::default()
    }
    .encode_to_vec();
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed.into()
}

/// The whole HTTP/1.1 request, headers and body, as `benches/k6/v2.js` sends it.
pub fn http_request(args: &Args, mode: Mode) -> Vec<u8> {
    let host = args.addr;
    if mode == Mode::Live {
        return format!("GET /v2/health/live HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
    }
    let mut path = format!("/v2/models/{}/versions/{}/infer", args.model, args.version);
    let values = input_values(&args.shape);
    let (content_type, extra, body) = if mode == Mode::Predict {
        path = format!("/v1/models/{}/predict", args.model);
        let data: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        let body = serde_json::json!({ "inputs": data });
        (
            "application/json",
            String::new(),
            body.to_string().into_bytes(),
        )
    } else if mode == Mode::Json {
        let data: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        // Each input's keys in the order tritonclient and `benches/k6/v2.js` write them
        // (`datatype` before `data`), which serde_json's sorted maps would not keep.
        let mut inputs = vec![extra::input_json(
            &args.input,
            &args.shape,
            "FP32",
            &serde_json::to_string(&data).unwrap_or_default(),
        )];
        if args.only_extras {
            inputs.clear();
        }
        inputs.extend(args.extras.iter().map(extra::Extra::json));
        let body = format!("{{\"inputs\":[{}]}}", inputs.join(","));
        ("application/json", String::new(), body.into_bytes())
    } else {
        let mut inputs = vec![serde_json::json!({
            "name": args.input, "shape": args.shape, "datatype": "FP32",
            "parameters": {"binary_data_size": values.len() * 4},
        })];
        let values = if args.only_extras {
            inputs.clear();
            Vec::new()
        } else {
            values
        };
        let extras: Vec<Vec<u8>> = args.extras.iter().map(extra::Extra::bytes).collect();
        for (extra, bytes) in args.extras.iter().zip(&extras) {
            inputs.push(serde_json::json!({
                "name": extra.name, "shape": extra.shape, "datatype": extra.datatype.as_str(),
                "parameters": {"binary_data_size": bytes.len()},
            }));
        }
        let header = serde_json::json!({
            "inputs": inputs,
            "parameters": {"binary_data_output": true},
        })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(values.iter().flat_map(|value| value.to_le_bytes()));
        extras.iter().for_each(|bytes| body.extend(bytes));
        (
            "application/octet-stream",
            format!("Inference-Header-Content-Length: {}\r\n", header.len()),
            body,
        )
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend(body);
    request
}
