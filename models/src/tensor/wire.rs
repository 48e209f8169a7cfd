//! The little-endian wire form of a tensor (KServe v2's binary tensor data and gRPC's raw
//! contents): fixed-size elements back to back; BOOL one byte, 0 or 1; BYTES elements each a
//! 4-byte little-endian length and that many bytes. Decoding checks every size against what is
//! there and never allocates more than the bytes given can fill.

use half::{bf16, f16};

use super::{DataType, TensorData};

/// Why bytes do not hold a tensor (the caller names the tensor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The byte count is not `count` elements of a fixed size.
    Size {
        datatype: DataType,
        bytes: usize,
        count: usize,
    },
    /// A BOOL byte other than 0 or 1.
    Bool { index: usize, byte: u8 },
    /// A BYTES element whose 4-byte length is missing.
    MissingLength { index: usize, count: usize },
    /// A BYTES element whose length runs past the data.
    Overrun {
        index: usize,
        length: u32,
        left: usize,
    },
    /// Bytes left after the last BYTES element.
    Trailing { bytes: usize, count: usize },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Size {
                datatype,
                bytes,
                count,
            } => write!(
                f,
                "{bytes} bytes of {datatype} data do not hold {count} elements of {} byte(s)",
                datatype.element_size().unwrap_or(0)
            ),
            WireError::Bool { index, byte } => {
                write!(f, "BOOL element {index} is byte {byte}, not 0 or 1")
            }
            WireError::MissingLength { index, count } => write!(
                f,
                "BYTES element {index} has no 4-byte length (the data ends; {count} elements \
                 expected)"
            ),
            WireError::Overrun {
                index,
                length,
                left,
            } => write!(
                f,
                "BYTES element {index} says {length} bytes but {left} are left"
            ),
            WireError::Trailing { bytes, count } => {
                write!(f, "{bytes} bytes follow the {count} BYTES elements")
            }
        }
    }
}

/// Reads `count` elements of `datatype` from `bytes`, which must hold exactly them.
pub fn decode_le(datatype: DataType, count: usize, bytes: &[u8]) -> Result<TensorData, WireError> {
    let Some(size) = datatype.element_size() else {
        return decode_bytes(count, bytes);
    };
    if count.checked_mul(size) != Some(bytes.len()) {
        return Err(WireError::Size {
            datatype,
            bytes: bytes.len(),
            count,
        });
    }
    macro_rules! fixed {
        ($variant:ident, $t:ty, $n:literal) => {
            TensorData::$variant(
                bytes
                    .chunks_exact($n)
                    .map(|b| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(b);
                        <$t>::from_le_bytes(a)
                    })
                    .collect(),
            )
        };
    }
    Ok(match datatype {
        DataType::Bool => {
            if let Some((index, &byte)) = bytes.iter().enumerate().find(|(_, &b)| b > 1) {
                return Err(WireError::Bool { index, byte });
            }
            TensorData::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
        DataType::U8 => TensorData::U8(bytes.to_vec()),
        DataType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::U16 => fixed!(U16, u16, 2),
        DataType::I16 => fixed!(I16, i16, 2),
        DataType::F16 => fixed!(F16, f16, 2),
        DataType::BF16 => fixed!(BF16, bf16, 2),
        DataType::U32 => fixed!(U32, u32, 4),
        DataType::I32 => fixed!(I32, i32, 4),
        DataType::F32 => fixed!(F32, f32, 4),
        DataType::U64 => fixed!(U64, u64, 8),
        DataType::I64 => fixed!(I64, i64, 8),
        DataType::F64 => fixed!(F64, f64, 8),
        // Read before the size check (no fixed size).
        DataType::Bytes => return decode_bytes(count, bytes),
    })
}

fn decode_bytes(count: usize, bytes: &[u8]) -> Result<TensorData, WireError> {
    let mut rest = bytes;
    // Each element takes at least its 4-byte length: a lying count allocates no more than the
    // bytes can fill.
    let mut items = Vec::with_capacity(count.min(bytes.len() / 4));
    for index in 0..count {
        let Some((length, after)) = rest.split_first_chunk::<4>() else {
            return Err(WireError::MissingLength { index, count });
        };
        let length = u32::from_le_bytes(*length);
        if length as usize > after.len() {
            return Err(WireError::Overrun {
                index,
                length,
                left: after.len(),
            });
        }
        let (item, next) = after.split_at(length as usize);
        items.push(item.to_vec());
        rest = next;
    }
    if !rest.is_empty() {
        return Err(WireError::Trailing {
            bytes: rest.len(),
            count,
        });
    }
    Ok(TensorData::Bytes(items))
}

/// The wire form of `data`.
pub fn encode_le(data: &TensorData) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.byte_size());
    encode_le_into(data, &mut out);
    out
}

/// Appends the wire form of `data` to `out`.
pub fn encode_le_into(data: &TensorData, out: &mut Vec<u8>) {
    macro_rules! fixed {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::U8(v) => out.extend_from_slice(v),
        TensorData::I8(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::U16(v) => fixed!(v),
        TensorData::I16(v) => fixed!(v),
        TensorData::F16(v) => fixed!(v),
        TensorData::BF16(v) => fixed!(v),
        TensorData::U32(v) => fixed!(v),
        TensorData::I32(v) => fixed!(v),
        TensorData::F32(v) => fixed!(v),
        TensorData::U64(v) => fixed!(v),
        TensorData::I64(v) => fixed!(v),
        TensorData::F64(v) => fixed!(v),
        TensorData::Bytes(items) => {
            for item in items {
                out.extend_from_slice(&(item.len() as u32).to_le_bytes());
                out.extend_from_slice(item);
            }
        }
    }
}
