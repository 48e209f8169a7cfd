//! Extra input tensors of any datatype for the load generator (`--extra NAME:DATATYPE:SHAPE`,
//! e.g. `ids:INT64:1x16`), filled with a fixed pattern, written as JSON `data`, as binary
//! tensor data, or as gRPC raw contents: requests for multi-input signatures.

use burnserve::kserve::json::JsonOut;
use burnserve_models::tensor::encode_le;
use burnserve_models::{DataType, TensorData};

/// One extra input.
#[derive(Debug, Clone)]
pub struct Extra {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// Reads `NAME:DATATYPE:D1xD2...`.
pub fn parse(text: &str) -> anyhow::Result<Extra> {
    let mut parts = text.splitn(3, ':');
    let (Some(name), Some(datatype), Some(shape)) = (parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("--extra {text}: NAME:DATATYPE:SHAPE (e.g. ids:INT64:1x16)");
    };
    let datatype = DataType::parse(datatype)
        .ok_or_else(|| anyhow::anyhow!("--extra {text}: unknown datatype {datatype}"))?;
    let shape = shape
        .split('x')
        .map(|d| {
            d.parse::<i64>()
                .map_err(|e| anyhow::anyhow!("--extra {text}: {e}"))
        })
        .collect::<anyhow::Result<Vec<i64>>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| {
            usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
        })
        .filter(|&n| n <= 1 << 24)
        .ok_or_else(|| anyhow::anyhow!("--extra {text}: at most 2^24 elements"))?;
    let data = match datatype {
        // A sentence of about 16 tokens (the MiniLM benches' short text), numbered.
        DataType::Bytes => TensorData::Bytes(
            (0..count)
                .map(|i| {
                    format!("A model server should be fast, observable and reliable ({i}).")
                        .into_bytes()
                })
                .collect(),
        ),
        DataType::Bool => TensorData::Bool((0..count).map(|i| i % 2 == 0).collect()),
        DataType::I64 => TensorData::I64((0..count).map(|i| (i % 30_000) as i64).collect()),
        DataType::F32 => TensorData::F32((0..count).map(|i| (i % 255) as f32 / 255.0).collect()),
        other => TensorData::zeros(other, count),
    };
    Ok(Extra {
        name: name.to_string(),
        datatype,
        shape,
        data,
    })
}

impl Extra {
    /// The input as JSON, `datatype` before `data` (see [`input_json`]).
    pub fn json(&self) -> String {
        let data = serde_json::to_string(&JsonOut(&self.data)).unwrap_or_default();
        input_json(&self.name, &self.shape, self.datatype.as_str(), &data)
    }

    pub fn bytes(&self) -> Vec<u8> {
        encode_le(&self.data)
    }
}

/// One v2 input object with its keys in the order clients write them: name, shape, datatype,
/// data (`data` given as JSON text).
pub fn input_json(name: &str, shape: &[i64], datatype: &str, data: &str) -> String {
    format!(
        "{{\"name\":{},\"shape\":{},\"datatype\":\"{datatype}\",\"data\":{data}}}",
        serde_json::Value::from(name),
        serde_json::Value::from(shape.to_vec()),
    )
}
