//! A v2 tensor's JSON `data`, read straight into the typed buffer of its declared datatype
//! (flat or nested arrays; the nesting's shape is kept to compare with the declared one), and
//! written back: integers as integers, floats in their shortest exact form, BOOL as `true` /
//! `false`, BYTES as strings. serde_json reads numbers through f64 (integers exactly; a long
//! FP64 decimal may read one ulp off: bit-exact FP64 goes as binary data). JSON has no NaN or
//! infinity: those are written `null` (ask for binary data to get them back bit for bit).

use std::fmt;

use burnserve_models::{DataType, TensorData};
use half::{bf16, f16};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serialize, Serializer};

/// Typed data read from JSON, with the shape its nesting implies (`[n]` for a flat array).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonData {
    pub nesting: Vec<usize>,
    pub data: TensorData,
}

/// Reads JSON `data` as `datatype` values.
#[derive(Debug, Clone, Copy)]
pub struct TypedData(pub DataType);

impl<'de> DeserializeSeed<'de> for TypedData {
    type Value = JsonData;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonData, D::Error> {
        walk(deserializer, self.0, false)
    }
}

/// Reads JSON data whose datatype its elements say (the simple API): numbers as FP32, strings
/// as BYTES; mixing them is refused.
#[derive(Debug, Clone, Copy)]
pub struct InferredData;

impl<'de> DeserializeSeed<'de> for InferredData {
    type Value = JsonData;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonData, D::Error> {
        walk(deserializer, DataType::F32, true)
    }
}

/// JSON `data` read before its datatype was known (it came first in its object): the
/// elements as JSON gave them, in one pass, to be converted once the datatype is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    nesting: Vec<usize>,
    leaves: Vec<Leaf>,
}

/// Reads JSON `data` of a datatype not known yet.
#[derive(Debug, Clone, Copy)]
pub struct DeferredData;

impl<'de> DeserializeSeed<'de> for DeferredData {
    type Value = Deferred;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Deferred, D::Error> {
        let mut walk = Walk::new(DataType::F32, false);
        walk.deferred = Some(Vec::new());
        deserializer.deserialize_any(Level {
            depth: 0,
            walk: &mut walk,
        })?;
        let nesting = walk.nesting();
        Ok(Deferred {
            nesting,
            leaves: walk.deferred.unwrap_or_default(),
        })
    }
}

impl Deferred {
    /// The elements as `datatype` values (the same checks, and messages, as when the datatype
    /// came first).
    pub fn typed(self, datatype: DataType) -> Result<JsonData, String> {
        let mut walk = Walk::new(datatype, false);
        walk.data = TensorData::with_capacity(datatype, self.leaves.len());
        for leaf in self.leaves {
            walk.push(leaf)?;
        }
        Ok(JsonData {
            nesting: self.nesting,
            data: walk.data,
        })
    }
}

fn walk<'de, D: Deserializer<'de>>(
    deserializer: D,
    datatype: DataType,
    infer: bool,
) -> Result<JsonData, D::Error> {
    let mut walk = Walk::new(datatype, infer);
    deserializer.deserialize_any(Level {
        depth: 0,
        walk: &mut walk,
    })?;
    Ok(JsonData {
        nesting: walk.nesting(),
        data: walk.data,
    })
}

/// One JSON value where an element is expected.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(Vec<u8>),
}

impl Leaf {
    fn kind(&self) -> &'static str {
        match self {
            Leaf::Bool(_) => "a boolean",
            Leaf::Int(_) | Leaf::Uint(_) => "an integer",
            Leaf::Float(_) => "a number with a fraction or exponent",
            Leaf::Text(_) => "a string",
        }
    }
}

struct Walk {
    data: TensorData,
    /// Length of the arrays at each depth, fixed by the first array completed there.
    dims: Vec<Option<usize>>,
    /// Depth at which elements appear.
    leaf_depth: Option<usize>,
    /// The first element decides the datatype (numbers FP32, strings BYTES).
    infer: bool,
    /// Elements kept as JSON gave them (the datatype is not known yet).
    deferred: Option<Vec<Leaf>>,
}

impl Walk {
    fn new(datatype: DataType, infer: bool) -> Self {
        Walk {
            data: TensorData::with_capacity(datatype, 0),
            dims: Vec::new(),
            leaf_depth: None,
            infer,
            deferred: None,
        }
    }

    /// The shape the arrays' nesting implies.
    fn nesting(&self) -> Vec<usize> {
        let depth = self.leaf_depth.unwrap_or(self.dims.len());
        self.dims
            .iter()
            .take(depth)
            .map(|d| d.unwrap_or(0))
            .collect()
    }

    /// Appends one element, converted to the datatype exactly (integers in range, any number
    /// for floating point, booleans for BOOL, strings for BYTES).
    fn push(&mut self, leaf: Leaf) -> Result<(), String> {
        // The common case first: a number with a fraction into FP32.
        if let (TensorData::F32(values), Leaf::Float(value)) = (&mut self.data, &leaf) {
            values.push(*value as f32);
            return Ok(());
        }
        let index = self.data.len();
        if self.infer {
            match (&leaf, index) {
                (Leaf::Text(_), 0) => self.data = TensorData::Bytes(Vec::new()),
                (Leaf::Bool(_), _) => {
                    return Err("expected numbers or strings, found a boolean".into())
                }
                (Leaf::Text(_), _) if self.data.datatype() != DataType::Bytes => {
                    return Err("mixes numbers and strings".into())
                }
                (Leaf::Int(_) | Leaf::Uint(_) | Leaf::Float(_), _)
                    if self.data.datatype() == DataType::Bytes =>
                {
                    return Err("mixes strings and numbers".into())
                }
                _ => {}
            }
        }
        let datatype = self.data.datatype();
        let wrong = |leaf: &Leaf| {
            format!(
                "element {index} is {}, which is not {}",
                leaf.kind(),
                expected(datatype)
            )
        };
        macro_rules! int {
            ($v:expr, $t:ty) => {{
                let value = match leaf {
                    Leaf::Int(v) => <$t>::try_from(v).ok(),
                    Leaf::Uint(v) => <$t>::try_from(v).ok(),
                    ref other => return Err(wrong(other)),
                };
                match value {
                    Some(value) => $v.push(value),
                    None => {
                        return Err(format!(
                            "element {index} is out of range for {datatype} ({}..={})",
                            <$t>::MIN,
                            <$t>::MAX
                        ))
                    }
                }
            }};
        }
        let number = |leaf: &Leaf| match *leaf {
            Leaf::Int(v) => Ok(v as f64),
            Leaf::Uint(v) => Ok(v as f64),
            Leaf::Float(v) => Ok(v),
            ref other => Err(wrong(other)),
        };
        match &mut self.data {
            TensorData::Bool(v) => match leaf {
                Leaf::Bool(b) => v.push(b),
                other => return Err(wrong(&other)),
            },
            TensorData::U8(v) => int!(v, u8),
            TensorData::U16(v) => int!(v, u16),
            TensorData::U32(v) => int!(v, u32),
            TensorData::U64(v) => int!(v, u64),
            TensorData::I8(v) => int!(v, i8),
            TensorData::I16(v) => int!(v, i16),
            TensorData::I32(v) => int!(v, i32),
            TensorData::I64(v) => int!(v, i64),
            // Any JSON number, rounded to the nearest value of the datatype.
            TensorData::F16(v) => v.push(f16::from_f64(number(&leaf)?)),
            TensorData::BF16(v) => v.push(bf16::from_f64(number(&leaf)?)),
            TensorData::F32(v) => v.push(number(&leaf)? as f32),
            TensorData::F64(v) => v.push(number(&leaf)?),
            TensorData::Bytes(v) => match leaf {
                Leaf::Text(text) => v.push(text),
                other => return Err(wrong(&other)),
            },
        }
        Ok(())
    }
}

/// What the elements of `datatype` are written as in JSON.
fn expected(datatype: DataType) -> String {
    match datatype {
        DataType::Bool => "a BOOL (true or false)".into(),
        DataType::Bytes => "a BYTES element (a string)".into(),
        d if d.is_float() => format!("a {d} (a number)"),
        d => format!("a {d} (an integer)"),
    }
}

struct Level<'a> {
    depth: usize,
    walk: &'a mut Walk,
}

impl Level<'_> {
    fn leaf<E: de::Error>(self, leaf: Leaf) -> Result<(), E> {
        match self.walk.leaf_depth {
            None => self.walk.leaf_depth = Some(self.depth),
            Some(d) if d != self.depth => {
                return Err(E::custom("ragged nesting: values at different depths"))
            }
            Some(_) => {}
        }
        if let Some(leaves) = &mut self.walk.deferred {
            leaves.push(leaf);
            return Ok(());
        }
        self.walk.push(leaf).map_err(E::custom)
    }
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a (nested) array of tensor elements")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(Leaf::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(Leaf::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(Leaf::Uint(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.leaf(Leaf::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(Leaf::Text(v.as_bytes().to_vec()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.leaf(Leaf::Text(v.into_bytes()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        if self.walk.leaf_depth.is_some_and(|leaf| depth >= leaf) {
            return Err(de::Error::custom(
                "ragged nesting: an array where a value was expected",
            ));
        }
        let mut count = 0usize;
        while seq
            .next_element_seed(Level {
                depth: depth + 1,
                walk: &mut *self.walk,
            })?
            .is_some()
        {
            count += 1;
        }
        if self.walk.dims.len() <= depth {
            self.walk.dims.resize(depth + 1, None);
        }
        match self.walk.dims[depth] {
            None => self.walk.dims[depth] = Some(count),
            Some(expected) if expected != count => {
                return Err(de::Error::custom(format!(
                    "ragged nesting: arrays of length {expected} and {count} at depth {depth}"
                )))
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// `data` written as a flat JSON array. BYTES elements must be UTF-8 ([`first_non_utf8`]).
#[derive(Debug)]
pub struct JsonOut<'a>(pub &'a TensorData);

impl Serialize for JsonOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        macro_rules! all {
            ($v:expr, $map:expr) => {{
                let mut seq = serializer.serialize_seq(Some($v.len()))?;
                for x in $v {
                    seq.serialize_element(&$map(x))?;
                }
                seq.end()
            }};
        }
        match self.0 {
            TensorData::Bool(v) => all!(v, |x: &bool| *x),
            TensorData::U8(v) => all!(v, |x: &u8| *x),
            TensorData::U16(v) => all!(v, |x: &u16| *x),
            TensorData::U32(v) => all!(v, |x: &u32| *x),
            TensorData::U64(v) => all!(v, |x: &u64| *x),
            TensorData::I8(v) => all!(v, |x: &i8| *x),
            TensorData::I16(v) => all!(v, |x: &i16| *x),
            TensorData::I32(v) => all!(v, |x: &i32| *x),
            TensorData::I64(v) => all!(v, |x: &i64| *x),
            TensorData::F16(v) => all!(v, |x: &f16| x.to_f32()),
            TensorData::BF16(v) => all!(v, |x: &bf16| x.to_f32()),
            TensorData::F32(v) => all!(v, |x: &f32| *x),
            TensorData::F64(v) => all!(v, |x: &f64| *x),
            TensorData::Bytes(v) => {
                let mut seq = serializer.serialize_seq(Some(v.len()))?;
                for item in v {
                    let text = std::str::from_utf8(item).map_err(serde::ser::Error::custom)?;
                    seq.serialize_element(text)?;
                }
                seq.end()
            }
        }
    }
}

/// The first BYTES element that is not UTF-8 text (which JSON cannot carry), if any.
pub fn first_non_utf8(data: &TensorData) -> Option<usize> {
    match data {
        TensorData::Bytes(items) => items.iter().position(|i| std::str::from_utf8(i).is_err()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
