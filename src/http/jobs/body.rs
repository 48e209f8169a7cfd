//! A job's stored body, compact: the typed request the synchronous route reads (predict or
//! embeddings), written as `MAGIC`, a little-endian `u32` header length, a JSON header (every
//! field but the tensor's numbers, in a fixed order) and the numbers as raw little-endian `f32`.
//! 4 bytes a number where JSON text took 8 to 20, and no generic JSON tree at submit (that was
//! ~16× the body). The same content (however spaced, ordered or written: `1`, `1.0`, `1e0`)
//! encodes to the same bytes, so an `Idempotency-Key` replay compares digests of this form.
//!
//! Bodies stored before this form ([`LEGACY_FORMAT`]: the body as canonical JSON) still decode.

use burnserve_models::ModelSpec;
use serde::{Deserialize, Serialize};

use super::super::embeddings::EmbeddingsRequest;
use super::super::predict::PredictRequest;
use super::super::tensor::NestedTensor;

/// The record's `body_format` of bodies in this form.
pub const COMPACT_FORMAT: u8 = 1;
/// The record's `body_format` of bodies stored before the tag: canonical JSON.
pub const LEGACY_FORMAT: u8 = 0;
/// Starts every compact body (a NUL: never the start of a JSON text).
const MAGIC: &[u8; 4] = b"\0BJ1";

/// The tensor of a body, without its numbers.
#[derive(Debug, Serialize, Deserialize)]
struct Tensor {
    shape: Vec<usize>,
    /// Count of the `f32`s after the header.
    values: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    texts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictHeader {
    inputs: Tensor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    top_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datatype: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsHeader {
    model: String,
    input: Tensor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

fn tensor(nested: NestedTensor) -> (Tensor, Vec<f32>) {
    let head = Tensor {
        shape: nested.shape,
        values: nested.data.len(),
        texts: nested.texts,
    };
    (head, nested.data)
}

fn frame(header: &impl Serialize, data: &[f32]) -> Vec<u8> {
    // Serializing plain structs of strings and numbers cannot fail.
    let header = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&header);
    for value in data {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

/// A compact body's JSON header and its numbers.
type Framed<'a> = (&'a [u8], Vec<f32>);

/// Splits a compact body into its header and numbers (`None`: not a compact body).
fn unframe(body: &[u8]) -> Option<Result<Framed<'_>, String>> {
    let rest = body.strip_prefix(MAGIC)?;
    let split = || -> Result<Framed<'_>, String> {
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or("the stored body is cut short")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len || !(rest.len() - len).is_multiple_of(4) {
            return Err("the stored body is cut short".into());
        }
        let (header, numbers) = rest.split_at(len);
        let data = numbers
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((header, data))
    };
    Some(split())
}

fn nested(head: Tensor, data: Vec<f32>) -> Result<NestedTensor, String> {
    if head.values != data.len() {
        return Err(format!(
            "the stored body holds {} numbers, its header says {}",
            data.len(),
            head.values
        ));
    }
    Ok(NestedTensor {
        shape: head.shape,
        data,
        texts: head.texts,
    })
}

/// What a body asks of its result: how many numbers or texts it holds, and its top classes.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub values: usize,
    pub texts: usize,
    pub top_k: usize,
}

impl Asked {
    pub fn predict(body: &PredictRequest) -> Self {
        Self {
            values: body.inputs.data.len(),
            texts: body.inputs.texts.len(),
            top_k: body.top_k.unwrap_or(super::super::predict::DEFAULT_TOP_K),
        }
    }

    pub fn embeddings(body: &EmbeddingsRequest) -> Self {
        Self {
            values: body.input.data.len(),
            texts: body.input.texts.len(),
            top_k: 0,
        }
    }
}

/// The most the result of a job asking `asked` of a version with `spec` can take as JSON:
/// every output number at its longest (15 characters and a comma), the top classes with their
/// labels, and the envelope. A body with more items than the version takes fails (a short
/// error): the envelope only.
pub fn result_reserve(spec: &ModelSpec, asked: Asked) -> u64 {
    const ENVELOPE: usize = 512;
    let items = match asked.texts {
        0 => asked.values.div_ceil(spec.input().item_len().max(1)),
        texts => texts,
    };
    if items > spec.batching.max_rows() {
        return ENVELOPE as u64;
    }
    let out = spec.output().item_len();
    let label = spec
        .output()
        .labels
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0);
    let top = if spec.output().labels.is_empty() {
        0
    } else {
        asked.top_k.min(out).saturating_mul(label + 48)
    };
    let per_item = out
        .saturating_mul(16)
        .saturating_add(top)
        .saturating_add(64);
    items
        .saturating_mul(per_item)
        .saturating_add(ENVELOPE)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// The compact form of a predict body.
pub fn encode_predict(body: PredictRequest) -> Vec<u8> {
    let (inputs, data) = tensor(body.inputs);
    let header = PredictHeader {
        inputs,
        timeout_ms: body.timeout_ms,
        top_k: body.top_k,
        datatype: body.datatype,
    };
    frame(&header, &data)
}

/// The compact form of an embeddings body.
pub fn encode_embeddings(body: EmbeddingsRequest) -> Vec<u8> {
    let (input, data) = tensor(body.input);
    let header = EmbeddingsHeader {
        model: body.model,
        input,
        encoding_format: body.encoding_format,
        dimensions: body.dimensions,
        user: body.user,
    };
    frame(&header, &data)
}

/// A stored predict body, compact or legacy JSON.
pub fn decode_predict(body: &[u8]) -> Result<PredictRequest, String> {
    let Some(framed) = unframe(body) else {
        return serde_json::from_slice(body).map_err(|e| e.to_string());
    };
    let (header, data) = framed?;
    let head: PredictHeader = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    Ok(PredictRequest {
        inputs: nested(head.inputs, data)?,
        timeout_ms: head.timeout_ms,
        top_k: head.top_k,
        datatype: head.datatype,
    })
}

/// A stored embeddings body, compact or legacy JSON.
pub fn decode_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, String> {
    let Some(framed) = unframe(body) else {
        return serde_json::from_slice(body).map_err(|e| e.to_string());
    };
    let (header, data) = framed?;
    let head: EmbeddingsHeader = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    Ok(EmbeddingsRequest {
        model: head.model,
        input: nested(head.input, data)?,
        encoding_format: head.encoding_format,
        dimensions: head.dimensions,
        user: head.user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict(json: &str) -> PredictRequest {
        serde_json::from_str(json).expect("a predict body")
    }

    #[test]
    fn the_same_content_encodes_the_same_and_round_trips() {
        let a = encode_predict(predict(r#"{"inputs": [[0.1, 2, -3.5e-1]], "top_k": 1}"#));
        let b = encode_predict(predict(r#"{ "top_k":1, "inputs":[[0.10,2.0,-0.35]] }"#));
        assert_eq!(a, b);
        let c = encode_predict(predict(r#"{"inputs": [[0.1, 2, -0.35]], "top_k": 2}"#));
        assert_ne!(a, c);
        // Another shape of the same numbers is another body.
        let d = encode_predict(predict(r#"{"inputs": [0.1, 2, -0.35], "top_k": 1}"#));
        assert_ne!(a, d);
        // 4 bytes a number after a small header.
        assert_eq!(
            a.len(),
            4 + 4 + r#"{"inputs":{"shape":[1,3],"values":3},"top_k":1}"#.len() + 12
        );
        let back = decode_predict(&a).unwrap();
        assert_eq!(back.inputs.shape, [1, 3]);
        assert_eq!(back.inputs.data, [0.1f32, 2.0, -0.35]);
        assert_eq!(
            (back.top_k, back.timeout_ms, back.datatype),
            (Some(1), None, None)
        );
        let texts = encode_predict(predict(
            r#"{"inputs": ["a b", "c"], "datatype": "BYTES", "timeout_ms": 9}"#,
        ));
        let back = decode_predict(&texts).unwrap();
        assert_eq!(
            (
                back.inputs.texts,
                back.inputs.shape,
                back.timeout_ms,
                back.datatype.as_deref()
            ),
            (
                vec!["a b".to_string(), "c".into()],
                vec![2],
                Some(9),
                Some("BYTES")
            )
        );
    }

    #[test]
    fn embeddings_round_trip_and_legacy_json_still_decodes() {
        let body: EmbeddingsRequest =
            serde_json::from_str(r#"{"model": "minilm/2", "input": ["x", "y"], "dimensions": 4}"#)
                .unwrap();
        let back = decode_embeddings(&encode_embeddings(body)).unwrap();
        assert_eq!(
            (back.model.as_str(), back.input.texts.len(), back.dimensions),
            ("minilm/2", 2, Some(4))
        );
        // What the store held before the compact form: canonical JSON.
        let legacy = br#"{"inputs":[[1.0,2.0]],"top_k":1}"#;
        let old = decode_predict(legacy).unwrap();
        assert_eq!((old.inputs.data, old.top_k), (vec![1.0, 2.0], Some(1)));
        let old = decode_embeddings(br#"{"input":"hi","model":"m"}"#).unwrap();
        assert_eq!(old.input.texts, ["hi"]);
    }

    #[test]
    fn a_result_reserve_covers_the_longest_result() {
        let spec = ModelSpec::from_toml(
            "architecture = \"mlp\"\n[input]\nname = \"x\"\nshape = [4]\n\
             [output]\nname = \"y\"\nshape = [3]\nlabels = [\"a\", \"bb\", \"c\"]\n\
             [batching]\nmax_batch_size = 8",
        )
        .expect("spec");
        let asked = Asked::predict(&predict(r#"{"inputs": [[1,2,3,4],[5,6,7,8]], "top_k": 2}"#));
        let reserve = result_reserve(&spec, asked);
        // Two items: 3 numbers of 16 bytes, 2 classes of 2 + 48, 64 beside, and the envelope.
        assert_eq!(reserve, 2 * (3 * 16 + 2 * 50 + 64) + 512);
        // The longest answer the model could give fits.
        let row = vec![-1.2345678e-10f32; 3];
        let class = serde_json::json!({"index": 1, "label": "bb", "score": -1.2345678e-10f32});
        let longest = serde_json::json!({
            "model": "m", "version": "1",
            "outputs": [row.clone(), row],
            "predictions": [[class.clone(), class.clone()], [class.clone(), class]],
        });
        assert!(longest.to_string().len() as u64 <= reserve, "{longest}");
        // More items than the model takes: the job fails, with a short error.
        let many = Asked {
            values: 4 * 9,
            texts: 0,
            top_k: 3,
        };
        assert_eq!(result_reserve(&spec, many), 512);
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let good = encode_predict(predict(r#"{"inputs": [[1, 2]]}"#));
        for cut in [4, 6, 8, good.len() - 1, good.len() - 4] {
            assert!(decode_predict(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = good.clone();
        lying.extend_from_slice(&1f32.to_le_bytes());
        assert!(decode_predict(&lying)
            .unwrap_err()
            .contains("holds 3 numbers"));
        assert!(
            decode_embeddings(&good).is_err(),
            "a predict body is no embeddings body"
        );
    }
}
