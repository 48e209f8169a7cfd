//! ONNX `TensorProto` files (the `input_K.pb` / `output_K.pb` of ONNX's test data and of our
//! own reference outputs) read as seam tensors, for the conformance runner, tests and benches.

use std::path::Path;

use onnx_ir::TensorProto;
use protobuf::Message;

use super::signature::datatype_of;
use crate::error::ModelError;
use crate::tensor::{DataType, NamedTensor, TensorData};

fn bad(msg: String) -> ModelError {
    ModelError::InvalidInput(msg)
}

/// Reads a serialised `TensorProto` file.
pub fn read_tensor(path: &Path) -> Result<NamedTensor, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let proto = TensorProto::parse_from_bytes(&bytes)
        .map_err(|e| bad(format!("{}: not a TensorProto: {e}", path.display())))?;
    tensor_from_proto(&proto)
}

fn le<const N: usize, T>(raw: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            from(b)
        })
        .collect()
}

/// A `TensorProto` (raw or typed data) as a seam tensor.
pub fn tensor_from_proto(p: &TensorProto) -> Result<NamedTensor, ModelError> {
    let shape: Vec<usize> = p
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let datatype = datatype_of(p.data_type)
        .ok_or_else(|| bad(format!("ONNX element type {} is not read", p.data_type)))?;
    let raw: &[u8] = &p.raw_data;
    let data = if !raw.is_empty() {
        match datatype {
            DataType::F32 => TensorData::F32(le(raw, f32::from_le_bytes)),
            DataType::F64 => TensorData::F64(le(raw, f64::from_le_bytes)),
            DataType::F16 => {
                TensorData::F16(le(raw, |b| half::f16::from_bits(u16::from_le_bytes(b))))
            }
            DataType::BF16 => {
                TensorData::BF16(le(raw, |b| half::bf16::from_bits(u16::from_le_bytes(b))))
            }
            DataType::I64 => TensorData::I64(le(raw, i64::from_le_bytes)),
            DataType::I32 => TensorData::I32(le(raw, i32::from_le_bytes)),
            DataType::I16 => TensorData::I16(le(raw, i16::from_le_bytes)),
            DataType::I8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
            DataType::U8 => TensorData::U8(raw.to_vec()),
            DataType::U16 => TensorData::U16(le(raw, u16::from_le_bytes)),
            DataType::U32 => TensorData::U32(le(raw, u32::from_le_bytes)),
            DataType::U64 => TensorData::U64(le(raw, u64::from_le_bytes)),
            DataType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
            DataType::Bytes => return Err(bad("BYTES tensors are not read".into())),
        }
    } else {
        let ints = || p.int32_data.clone();
        match datatype {
            DataType::F32 => TensorData::F32(p.float_data.clone()),
            DataType::F64 => TensorData::F64(p.double_data.clone()),
            DataType::I64 => TensorData::I64(p.int64_data.clone()),
            DataType::I32 => TensorData::I32(ints()),
            DataType::I16 => TensorData::I16(ints().into_iter().map(|v| v as i16).collect()),
            DataType::I8 => TensorData::I8(ints().into_iter().map(|v| v as i8).collect()),
            DataType::U8 => TensorData::U8(ints().into_iter().map(|v| v as u8).collect()),
            DataType::U16 => TensorData::U16(ints().into_iter().map(|v| v as u16).collect()),
            DataType::Bool => TensorData::Bool(ints().into_iter().map(|v| v != 0).collect()),
            DataType::F16 => TensorData::F16(
                ints()
                    .into_iter()
                    .map(|v| half::f16::from_bits(v as u16))
                    .collect(),
            ),
            DataType::BF16 => TensorData::BF16(
                ints()
                    .into_iter()
                    .map(|v| half::bf16::from_bits(v as u16))
                    .collect(),
            ),
            DataType::U32 => TensorData::U32(p.uint64_data.iter().map(|&v| v as u32).collect()),
            DataType::U64 => TensorData::U64(p.uint64_data.clone()),
            DataType::Bytes => return Err(bad("BYTES tensors are not read".into())),
        }
    };
    if data.len() != count {
        return Err(bad(format!(
            "tensor '{}' states {shape:?} but holds {} values",
            p.name,
            data.len()
        )));
    }
    Ok(NamedTensor::new(p.name.clone(), shape, data))
}
