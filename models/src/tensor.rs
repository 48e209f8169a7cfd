//! Typed tensors, what crosses the model seam: [`DataType`] (the KServe v2 datatypes),
//! [`TensorData`] (one typed buffer per datatype), [`NamedTensor`] (a name, a shape and its
//! data), and their little-endian wire form (the binary tensor data extension and gRPC's raw
//! contents: BYTES elements as a 4-byte length and the bytes).

use half::{bf16, f16};

/// A KServe v2 datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    BF16,
    F32,
    F64,
    Bytes,
}

impl DataType {
    /// Every datatype, in the order the documentation lists them.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::BF16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The KServe v2 name (`FP32`, `INT64`, `BYTES`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::BF16 => "BF16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Triton's model configuration name (`TYPE_FP32`, `TYPE_STRING`, ...).
    pub const fn triton_config_name(self) -> &'static str {
        match self {
            DataType::Bool => "TYPE_BOOL",
            DataType::U8 => "TYPE_UINT8",
            DataType::U16 => "TYPE_UINT16",
            DataType::U32 => "TYPE_UINT32",
            DataType::U64 => "TYPE_UINT64",
            DataType::I8 => "TYPE_INT8",
            DataType::I16 => "TYPE_INT16",
            DataType::I32 => "TYPE_INT32",
            DataType::I64 => "TYPE_INT64",
            DataType::F16 => "TYPE_FP16",
            DataType::BF16 => "TYPE_BF16",
            DataType::F32 => "TYPE_FP32",
            DataType::F64 => "TYPE_FP64",
            DataType::Bytes => "TYPE_STRING",
        }
    }

    /// The datatype a KServe v2 name spells, if any.
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes of one element on the wire; `None` for BYTES (length-prefixed elements).
    pub const fn element_size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 | DataType::BF16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// Whether values are floating point (where NaN and infinities exist).
    pub const fn is_float(self) -> bool {
        matches!(
            self,
            DataType::F16 | DataType::BF16 | DataType::F32 | DataType::F64
        )
    }

    /// Whether values are numbers (every datatype but BOOL and BYTES).
    pub const fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::Bytes)
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One typed buffer, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// One byte string per element (UTF-8 text for text models, any bytes otherwise).
    Bytes(Vec<Vec<u8>>),
}

impl Default for TensorData {
    fn default() -> Self {
        TensorData::F32(Vec::new())
    }
}

/// `$body` with `$v` bound to the variant's vector, for every variant of `$data`.
macro_rules! each {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::BF16($v) => $body,
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// `$body` with `$a`, `$b` bound to the two buffers when they hold the same datatype; `$else`
/// otherwise.
macro_rules! both {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr, $else:expr) => {
        match ($x, $y) {
            (TensorData::Bool($a), TensorData::Bool($b)) => $body,
            (TensorData::U8($a), TensorData::U8($b)) => $body,
            (TensorData::U16($a), TensorData::U16($b)) => $body,
            (TensorData::U32($a), TensorData::U32($b)) => $body,
            (TensorData::U64($a), TensorData::U64($b)) => $body,
            (TensorData::I8($a), TensorData::I8($b)) => $body,
            (TensorData::I16($a), TensorData::I16($b)) => $body,
            (TensorData::I32($a), TensorData::I32($b)) => $body,
            (TensorData::I64($a), TensorData::I64($b)) => $body,
            (TensorData::F16($a), TensorData::F16($b)) => $body,
            (TensorData::BF16($a), TensorData::BF16($b)) => $body,
            (TensorData::F32($a), TensorData::F32($b)) => $body,
            (TensorData::F64($a), TensorData::F64($b)) => $body,
            (TensorData::Bytes($a), TensorData::Bytes($b)) => $body,
            _ => $else,
        }
    };
}

impl TensorData {
    /// Elements held.
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::U16(_) => DataType::U16,
            TensorData::U32(_) => DataType::U32,
            TensorData::U64(_) => DataType::U64,
            TensorData::I8(_) => DataType::I8,
            TensorData::I16(_) => DataType::I16,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F16(_) => DataType::F16,
            TensorData::BF16(_) => DataType::BF16,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// An empty buffer of `datatype` with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DataType::U16 => TensorData::U16(Vec::with_capacity(capacity)),
            DataType::U32 => TensorData::U32(Vec::with_capacity(capacity)),
            DataType::U64 => TensorData::U64(Vec::with_capacity(capacity)),
            DataType::I8 => TensorData::I8(Vec::with_capacity(capacity)),
            DataType::I16 => TensorData::I16(Vec::with_capacity(capacity)),
            DataType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::F16 => TensorData::F16(Vec::with_capacity(capacity)),
            DataType::BF16 => TensorData::BF16(Vec::with_capacity(capacity)),
            DataType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// `count` zeros (`false`, empty strings) of `datatype`.
    pub fn zeros(datatype: DataType, count: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(vec![false; count]),
            DataType::U8 => TensorData::U8(vec![0; count]),
            DataType::U16 => TensorData::U16(vec![0; count]),
            DataType::U32 => TensorData::U32(vec![0; count]),
            DataType::U64 => TensorData::U64(vec![0; count]),
            DataType::I8 => TensorData::I8(vec![0; count]),
            DataType::I16 => TensorData::I16(vec![0; count]),
            DataType::I32 => TensorData::I32(vec![0; count]),
            DataType::I64 => TensorData::I64(vec![0; count]),
            DataType::F16 => TensorData::F16(vec![f16::ZERO; count]),
            DataType::BF16 => TensorData::BF16(vec![bf16::ZERO; count]),
            DataType::F32 => TensorData::F32(vec![0.0; count]),
            DataType::F64 => TensorData::F64(vec![0.0; count]),
            DataType::Bytes => TensorData::Bytes(vec![Vec::new(); count]),
        }
    }

    /// Appends a copy of `other`'s elements; `false` (nothing appended) when its datatype
    /// differs.
    pub fn extend_from(&mut self, other: &TensorData) -> bool {
        both!(self, other, a, b => { a.extend_from_slice(b); true }, false)
    }

    /// Splits off the elements from `at` on (as `Vec::split_off`).
    pub fn split_off(&mut self, at: usize) -> TensorData {
        match self {
            TensorData::Bool(v) => TensorData::Bool(v.split_off(at)),
            TensorData::U8(v) => TensorData::U8(v.split_off(at)),
            TensorData::U16(v) => TensorData::U16(v.split_off(at)),
            TensorData::U32(v) => TensorData::U32(v.split_off(at)),
            TensorData::U64(v) => TensorData::U64(v.split_off(at)),
            TensorData::I8(v) => TensorData::I8(v.split_off(at)),
            TensorData::I16(v) => TensorData::I16(v.split_off(at)),
            TensorData::I32(v) => TensorData::I32(v.split_off(at)),
            TensorData::I64(v) => TensorData::I64(v.split_off(at)),
            TensorData::F16(v) => TensorData::F16(v.split_off(at)),
            TensorData::BF16(v) => TensorData::BF16(v.split_off(at)),
            TensorData::F32(v) => TensorData::F32(v.split_off(at)),
            TensorData::F64(v) => TensorData::F64(v.split_off(at)),
            TensorData::Bytes(v) => TensorData::Bytes(v.split_off(at)),
        }
    }

    /// Bytes the buffer holds (BYTES: its strings' bytes and a length each, as on the wire).
    pub fn byte_size(&self) -> usize {
        match self {
            TensorData::Bytes(items) => items.iter().map(|item| 4 + item.len()).sum(),
            other => other.len() * other.datatype().element_size().unwrap_or(1),
        }
    }

    /// The first element that is NaN or infinite (floating-point datatypes), if any.
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        fn find<T: Copy + Into<f64>>(values: &[T]) -> Option<(usize, f64)> {
            values
                .iter()
                .map(|&v| v.into())
                .enumerate()
                .find(|(_, v): &(usize, f64)| !v.is_finite())
        }
        match self {
            TensorData::F16(v) => find(v),
            TensorData::BF16(v) => find(v),
            TensorData::F32(v) => find(v),
            TensorData::F64(v) => find(v),
            _ => None,
        }
    }

    /// The first numeric element outside `[min, max]` (NaN counts as outside), if any.
    pub fn first_outside(&self, min: f64, max: f64) -> Option<(usize, f64)> {
        fn find<T: Copy>(
            values: &[T],
            to_f64: impl Fn(T) -> f64,
            min: f64,
            max: f64,
        ) -> Option<(usize, f64)> {
            values
                .iter()
                .map(|&v| to_f64(v))
                .enumerate()
                .find(|(_, v)| !(*v >= min && *v <= max))
        }
        match self {
            // One branch-free pass over FP32 first (it vectorises); the index only on failure.
            TensorData::F32(v) => {
                // Bounds past FP32's range are its extremes (so a finite bound keeps the
                // infinities out).
                let (lo, hi) = (
                    min.max(f64::from(f32::MIN)) as f32,
                    max.min(f64::from(f32::MAX)) as f32,
                );
                let ok = v
                    .chunks(64)
                    .all(|c| c.iter().fold(true, |ok, &x| ok & (x >= lo) & (x <= hi)));
                if ok {
                    None
                } else {
                    find(v, f64::from, min, max)
                }
            }
            TensorData::F16(v) => find(v, f64::from, min, max),
            TensorData::BF16(v) => find(v, f64::from, min, max),
            TensorData::F64(v) => find(v, |x| x, min, max),
            TensorData::U8(v) => find(v, f64::from, min, max),
            TensorData::U16(v) => find(v, f64::from, min, max),
            TensorData::U32(v) => find(v, f64::from, min, max),
            TensorData::U64(v) => find(v, |x| x as f64, min, max),
            TensorData::I8(v) => find(v, f64::from, min, max),
            TensorData::I16(v) => find(v, f64::from, min, max),
            TensorData::I32(v) => find(v, f64::from, min, max),
            TensorData::I64(v) => find(v, |x| x as f64, min, max),
            TensorData::Bool(_) | TensorData::Bytes(_) => None,
        }
    }
}

/// A tensor with its name: what a request gives for one input and a model gives for one
/// output. `shape` includes the batch dimension where the model has one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Self {
        Self {
            name: name.into(),
            shape,
            data,
        }
    }

    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }
}

mod wire;
pub use wire::{decode_le, encode_le, encode_le_into, WireError};

#[cfg(test)]
mod tests;

impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for DataType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        DataType::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = DataType::ALL.iter().map(|d| d.as_str()).collect();
            serde::de::Error::custom(format!(
                "datatype '{}' is not a KServe v2 datatype ({})",
                name.chars().take(32).collect::<String>(),
                known.join(", ")
            ))
        })
    }
}
