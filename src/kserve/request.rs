//! An inference request as every protocol gives it, decoded the same way: each input's
//! datatype, shape and data (raw little-endian bytes, typed elements, or JSON read as its
//! datatype) into a named tensor; the outputs asked for and how; `parameters.timeout`. Every
//! refusal is an `InferError` with one message, whichever protocol carried the request. The
//! check against the model's signature follows in the runtime (`burnserve_models::pipeline`).

use std::time::Duration;

use burnserve_actors::{InferError, InferRequest};
use burnserve_models::tensor::decode_le;
use burnserve_models::{DataType, NamedTensor, RequestInput, TensorData, MAX_TENSORS};

/// The longest input or output name a request may give.
pub const MAX_NAME: usize = 256;
/// The most dimensions an input's shape may have.
pub const MAX_RANK: usize = 32;
/// The most outputs a request may ask for.
pub const MAX_OUTPUTS: usize = 64;
/// The longest deadline a request may ask for (`parameters.timeout`), in microseconds: an hour.
pub const MAX_TIMEOUT_US: u64 = 3_600_000_000;

fn invalid(message: String) -> InferError {
    InferError::InvalidInput(message)
}

/// A client's text, cut short for messages.
pub fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

/// An input's data as its protocol carried it.
#[derive(Debug)]
pub enum Payload<'a> {
    /// Little-endian bytes (HTTP's binary section, gRPC's `raw_input_contents`).
    Raw(&'a [u8]),
    /// Typed elements (gRPC's `contents`).
    Typed(TensorData),
    /// JSON `data` read as the datatype, with the shape its nesting implies.
    Json(crate::kserve::json::JsonData),
    /// Data in two places at once (the message names them).
    Both(&'static str),
    /// No data at all (the message names where it was looked for).
    Missing(&'static str),
}

/// One input before decoding.
#[derive(Debug)]
pub struct WireInput<'a> {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub payload: Payload<'a>,
}

/// The datatype an input declares, or a refusal listing the datatypes there are.
pub fn datatype(input: &str, datatype: &str) -> Result<DataType, InferError> {
    DataType::parse(datatype).ok_or_else(|| {
        let known: Vec<&str> = DataType::ALL.iter().map(|d| d.as_str()).collect();
        invalid(format!(
            "input '{}': datatype '{}' is not a KServe v2 datatype ({})",
            clip(input),
            clip(datatype),
            known.join(", ")
        ))
    })
}

/// An input's shape: at most [`MAX_RANK`] dimensions, none negative, a product that can be
/// addressed.
pub fn shape(input: &str, shape: &[i64]) -> Result<(Vec<usize>, usize), InferError> {
    if shape.len() > MAX_RANK {
        return Err(invalid(format!(
            "input '{}': shape has {} dimensions (at most {MAX_RANK})",
            clip(input),
            shape.len()
        )));
    }
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            invalid(format!(
                "input '{}': shape {shape:?} has a negative dimension",
                clip(input)
            ))
        })?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            invalid(format!(
                "input '{}': shape {shape:?} holds more elements than can be addressed",
                clip(input)
            ))
        })?;
    Ok((dims, count))
}

/// Decodes one input into a named tensor of its declared datatype and shape.
pub fn decode(input: WireInput<'_>) -> Result<NamedTensor, InferError> {
    let WireInput {
        name,
        datatype: declared,
        shape: declared_shape,
        payload,
    } = input;
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(format!(
            "input name of {} bytes (1..={MAX_NAME})",
            name.len()
        )));
    }
    let datatype = datatype(&name, &declared)?;
    let (dims, count) = shape(&name, &declared_shape)?;
    let typed = |data: TensorData| {
        if data.len() == count {
            Ok(data)
        } else {
            Err(invalid(format!(
                "input '{name}': {} {datatype} elements do not fill shape {dims:?} ({count})",
                data.len()
            )))
        }
    };
    let data = match payload {
        Payload::Raw(bytes) => decode_le(datatype, count, bytes)
            .map_err(|err| invalid(format!("input '{name}': {err} (shape {dims:?})")))?,
        Payload::Typed(data) => typed(data)?,
        Payload::Json(json) => {
            // Flat data takes the declared shape; nested data must agree with it.
            if json.nesting.len() > 1 && json.nesting != dims {
                return Err(invalid(format!(
                    "input '{name}' declares shape {dims:?} but its data is nested as {:?}",
                    json.nesting
                )));
            }
            typed(json.data)?
        }
        Payload::Both(what) => return Err(invalid(format!("input '{name}' has both {what}"))),
        Payload::Missing(what) => return Err(invalid(format!("input '{name}' has no {what}"))),
    };
    Ok(NamedTensor::new(name, dims, data))
}

/// Decodes every input of a request ([`MAX_TENSORS`] at most).
pub fn decode_all<'a>(
    inputs: impl ExactSizeIterator<Item = WireInput<'a>>,
) -> Result<RequestInput, InferError> {
    if inputs.len() > MAX_TENSORS {
        return Err(invalid(format!(
            "the request has {} inputs (at most {MAX_TENSORS})",
            inputs.len()
        )));
    }
    let tensors = inputs.map(decode).collect::<Result<Vec<_>, _>>()?;
    Ok(RequestInput::named(tensors))
}

/// An output a request asks for, and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// HTTP: this output as binary data (gRPC answers raw contents always).
    pub binary_data: Option<bool>,
    /// Triton's classification extension: the top `k` classes of this output (0: the output
    /// itself).
    pub classification: Option<i64>,
}

/// Checks the outputs asked for (names the model has are checked at routing).
pub fn check_outputs(outputs: &[RequestedOutput]) -> Result<(), InferError> {
    if outputs.len() > MAX_OUTPUTS {
        return Err(invalid(format!(
            "the request asks for {} outputs (at most {MAX_OUTPUTS})",
            outputs.len()
        )));
    }
    if let Some(output) = outputs
        .iter()
        .find(|o| o.name.is_empty() || o.name.len() > MAX_NAME)
    {
        return Err(invalid(format!(
            "output name of {} bytes (1..={MAX_NAME})",
            output.name.len()
        )));
    }
    let most = super::classify::MAX_CLASSES;
    if let Some(output) = outputs
        .iter()
        .find(|o| o.classification.is_some_and(|c| !(0..=most).contains(&c)))
    {
        return Err(invalid(format!(
            "output '{}': classification must be within 0..={most}",
            output.name
        )));
    }
    Ok(())
}

/// `parameters.timeout` in microseconds (Triton's), at most [`MAX_TIMEOUT_US`]; `None` when
/// the value is not a whole number of microseconds.
pub fn timeout(microseconds: Option<Option<u64>>) -> Result<Option<Duration>, InferError> {
    match microseconds {
        None => Ok(None),
        Some(Some(us)) if us <= MAX_TIMEOUT_US => Ok(Some(Duration::from_micros(us))),
        Some(_) => Err(invalid(format!(
            "parameter 'timeout' must be an integer number of microseconds from 0 to \
             {MAX_TIMEOUT_US} (an hour)"
        ))),
    }
}

/// A decoded request, ready for the inference service.
#[derive(Debug)]
pub struct Call {
    pub model: String,
    pub version: Option<String>,
    pub input: RequestInput,
    pub outputs: Vec<RequestedOutput>,
    pub timeout: Option<Duration>,
}

impl Call {
    /// The runtime's request (the output names it must have checked before queueing).
    pub fn into_request(self) -> (InferRequest, Vec<RequestedOutput>) {
        let mut request = InferRequest::new(self.model, self.version, self.input);
        request.timeout = self.timeout;
        request.output_names = self.outputs.iter().map(|o| o.name.clone()).collect();
        (request, self.outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(datatype: &str, shape: &[i64], payload: Payload<'static>) -> WireInput<'static> {
        WireInput {
            name: "x".into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            payload,
        }
    }

    fn message(result: Result<NamedTensor, InferError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn inputs_decode_from_every_payload_and_refuse_what_does_not_add_up() {
        let raw = decode(wire("INT16", &[2], Payload::Raw(&[1, 0, 255, 255]))).unwrap();
        assert_eq!(raw.data, TensorData::I16(vec![1, -1]));
        let typed = decode(wire(
            "INT64",
            &[1, 2],
            Payload::Typed(TensorData::I64(vec![1, 2])),
        ));
        assert_eq!(typed.unwrap().shape, vec![1, 2]);
        for (input, says) in [
            (
                wire("FP8", &[1], Payload::Raw(&[0])),
                "datatype 'FP8' is not a KServe v2 datatype",
            ),
            (wire("FP32", &[-1], Payload::Raw(&[])), "negative dimension"),
            (
                wire("FP32", &[i64::MAX, 4], Payload::Raw(&[])),
                "more elements than can be addressed",
            ),
            (wire("FP32", &[1; 33], Payload::Raw(&[])), "33 dimensions"),
            (
                wire("FP32", &[2], Payload::Raw(&[0; 4])),
                "4 bytes of FP32 data do not hold 2",
            ),
            (
                wire("BOOL", &[1], Payload::Raw(&[3])),
                "BOOL element 0 is byte 3",
            ),
            (
                wire("BYTES", &[1], Payload::Raw(&[9, 0, 0, 0])),
                "says 9 bytes but 0 are left",
            ),
            (
                wire("INT32", &[3], Payload::Typed(TensorData::I32(vec![1]))),
                "1 INT32 elements do not fill shape [3] (3)",
            ),
            (
                wire("FP32", &[1], Payload::Missing("data")),
                "input 'x' has no data",
            ),
            (
                wire("FP32", &[1], Payload::Both("data and binary data")),
                "has both",
            ),
        ] {
            let err = message(decode(input));
            assert!(err.contains(says), "{says}: {err}");
        }
        let unnamed = WireInput {
            name: String::new(),
            ..wire("FP32", &[1], Payload::Raw(&[0; 4]))
        };
        assert!(message(decode(unnamed)).contains("input name of 0 bytes"));
    }

    #[test]
    fn outputs_and_timeouts_are_bounded() {
        let named = |name: &str| RequestedOutput {
            name: name.into(),
            ..Default::default()
        };
        assert!(check_outputs(&[named("y")]).is_ok());
        assert!(check_outputs(&[named("")]).is_err());
        assert!(check_outputs(&[named(&"y".repeat(257))]).is_err());
        assert!(check_outputs(&vec![named("y"); 65]).is_err());
        let classify = |k| RequestedOutput {
            classification: Some(k),
            ..named("y")
        };
        assert!(check_outputs(&[classify(3)]).is_ok());
        assert!(check_outputs(&[classify(-1)]).is_err());
        assert!(check_outputs(&[classify(1 << 40)]).is_err());
        assert_eq!(timeout(None).unwrap(), None);
        assert_eq!(
            timeout(Some(Some(1500))).unwrap(),
            Some(Duration::from_micros(1500))
        );
        assert!(timeout(Some(Some(MAX_TIMEOUT_US + 1))).is_err());
        assert!(timeout(Some(None)).is_err());
    }
}
