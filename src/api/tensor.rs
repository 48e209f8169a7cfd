//! `NestedTensor`: a JSON array of numbers (flat or nested to any depth) read straight into a
//! flat row-major `Vec<f32>`, or of strings (text items), plus the shape its nesting implies
//! (ragged nesting and mixed numbers/strings are rejected).

use std::fmt;

use burnserve_models::TensorData;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NestedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Text items, when the leaves are strings (then `data` is empty).
    pub texts: Vec<String>,
}

impl NestedTensor {
    /// The items as model input: strings become BYTES (a lone string is one item).
    pub fn into_input(self) -> (Vec<usize>, TensorData) {
        if self.texts.is_empty() {
            (self.shape, TensorData::F32(self.data))
        } else {
            let shape = if self.shape.is_empty() {
                vec![1]
            } else {
                self.shape
            };
            (
                shape,
                TensorData::Bytes(self.texts.into_iter().map(String::into_bytes).collect()),
            )
        }
    }
}

#[derive(Default)]
struct Walk {
    data: Vec<f32>,
    texts: Vec<String>,
    /// Length of the lists at each depth, fixed by the first list completed there.
    dims: Vec<Option<usize>>,
    /// Depth at which numbers appear.
    leaf_depth: Option<usize>,
}

struct Level<'a> {
    depth: usize,
    walk: &'a mut Walk,
}

impl Level<'_> {
    fn number<E: de::Error>(mut self, value: f64) -> Result<(), E> {
        if self.depth == 0 {
            return Err(E::custom(
                "expected an array of numbers, found a single number",
            ));
        }
        if !self.walk.texts.is_empty() {
            return Err(E::custom("mixes strings and numbers"));
        }
        self.leaf()?;
        self.walk.data.push(value as f32);
        Ok(())
    }

    fn text<E: de::Error>(mut self, value: String) -> Result<(), E> {
        if !self.walk.data.is_empty() {
            return Err(E::custom("mixes numbers and strings"));
        }
        self.leaf()?;
        self.walk.texts.push(value);
        Ok(())
    }

    fn leaf<E: de::Error>(&mut self) -> Result<(), E> {
        match self.walk.leaf_depth {
            None => self.walk.leaf_depth = Some(self.depth),
            Some(d) if d != self.depth => {
                return Err(E::custom("ragged nesting: values at different depths"))
            }
            Some(_) => {}
        }
        Ok(())
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
        f.write_str("a (nested) array of numbers, a string, or an array of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.text(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.text(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.number(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v as f64)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        if let Some(leaf) = self.walk.leaf_depth {
            if depth >= leaf {
                return Err(de::Error::custom(
                    "ragged nesting: an array where a value was expected",
                ));
            }
        }
        if depth == 0 {
            if let Some(hint) = seq.size_hint() {
                self.walk.data.reserve(hint);
            }
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

impl<'de> Deserialize<'de> for NestedTensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut walk = Walk::default();
        deserializer.deserialize_any(Level {
            depth: 0,
            walk: &mut walk,
        })?;
        // Empty arrays never reach a number: their nesting is what was seen.
        let depth = walk.leaf_depth.unwrap_or(walk.dims.len());
        let shape = walk
            .dims
            .iter()
            .take(depth)
            .map(|d| d.unwrap_or(0))
            .collect();
        Ok(NestedTensor {
            shape,
            data: walk.data,
            texts: walk.texts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NestedTensor, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn reads_flat_and_nested_arrays() {
        assert_eq!(
            parse("[1, 2.5, -3]").unwrap(),
            NestedTensor {
                shape: vec![3],
                data: vec![1.0, 2.5, -3.0],
                texts: vec![],
            }
        );
        let nested = parse("[[1, 2], [3, 4], [5, 6]]").unwrap();
        assert_eq!(nested.shape, vec![3, 2]);
        assert_eq!(nested.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(parse("[[[1], [2]]]").unwrap().shape, vec![1, 2, 1]);
        assert_eq!(parse("[]").unwrap().shape, vec![0]);
    }

    #[test]
    fn rejects_ragged_mixed_and_non_numeric_data() {
        assert!(parse("[[1, 2], [3]]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[[1, 2], 3]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[1, [2]]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[1, \"a\"]")
            .unwrap_err()
            .to_string()
            .contains("mixes"));
        assert!(parse("[\"a\", 1]")
            .unwrap_err()
            .to_string()
            .contains("mixes"));
        assert!(parse("[[\"a\"], \"b\"]")
            .unwrap_err()
            .to_string()
            .contains("ragged"));
        assert!(parse("[true]").is_err());
        assert!(parse("5")
            .unwrap_err()
            .to_string()
            .contains("single number"));
        assert!(parse("[NaN]").is_err());
    }

    #[test]
    fn reads_strings_as_text_items() {
        let (shape, data) = parse("[\"Hello world\", \"\"]").unwrap().into_input();
        assert_eq!(shape, vec![2]);
        assert_eq!(
            data,
            TensorData::Bytes(vec![b"Hello world".to_vec(), Vec::new()])
        );
        let (shape, data) = parse("\"one\"").unwrap().into_input();
        assert_eq!(
            (shape, data),
            (vec![1], TensorData::Bytes(vec![b"one".to_vec()]))
        );
        let (shape, data) = parse("[1, 2]").unwrap().into_input();
        assert_eq!((shape, data), (vec![2], TensorData::F32(vec![1.0, 2.0])));
    }

    #[test]
    fn out_of_range_values_become_infinite_for_validation_to_reject() {
        let v = parse("[1e39]").unwrap();
        assert!(v.data[0].is_infinite());
    }
}
