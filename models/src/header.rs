//! What a safetensors file holds, read from its header alone (names, dtypes, shapes; no tensor
//! data): every architecture compares its parameters with it, and the memory estimate is
//! computed from it, before anything is built. Each entry is checked against the file's size,
//! so a header cannot describe more data than the file holds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::error::ModelError;

/// The longest header read (names and shapes of every tensor; MiniLM's is 25 KiB).
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Values (the product of `shape`).
    pub numel: u64,
}

/// The header of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsHeader {
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The file's size.
    pub file_bytes: u64,
}

/// Bytes per value of a safetensors dtype.
fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

impl WeightsHeader {
    /// Reads and checks the header of the safetensors file at `path`.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let bad = |what: String| ModelError::Load(format!("{}: {what}", path.display()));
        let mut file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let file_bytes = file
            .metadata()
            .map_err(|e| bad(format!("cannot read: {e}")))?
            .len();
        let mut prefix = [0u8; 8];
        file.read_exact(&mut prefix)
            .map_err(|_| bad("not a safetensors file (shorter than its header size)".into()))?;
        let header_bytes = u64::from_le_bytes(prefix);
        if header_bytes > MAX_HEADER_BYTES || header_bytes > file_bytes - 8 {
            return Err(bad(format!(
                "not a safetensors file: its header claims {header_bytes} bytes (the file has \
                 {file_bytes}; at most {MAX_HEADER_BYTES} are read)"
            )));
        }
        let mut text = Vec::with_capacity(header_bytes as usize);
        file.take(header_bytes)
            .read_to_end(&mut text)
            .map_err(|e| bad(format!("cannot read its header: {e}")))?;
        let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not a safetensors header: {e}")))?;
        let data_bytes = file_bytes - 8 - header_bytes;
        let mut tensors = BTreeMap::new();
        for (name, entry) in entries {
            if name == "__metadata__" {
                continue;
            }
            let info = Self::entry(&name, &entry, data_bytes).map_err(bad)?;
            tensors.insert(name, info);
        }
        Ok(Self {
            tensors,
            file_bytes,
        })
    }

    /// One entry, checked: a known dtype, a shape whose product fits, and data offsets that
    /// hold exactly its bytes inside the file.
    fn entry(name: &str, entry: &serde_json::Value, data_bytes: u64) -> Result<TensorInfo, String> {
        let bad = |what: &str| format!("tensor '{name}': {what}");
        let dtype = entry["dtype"]
            .as_str()
            .ok_or_else(|| bad("no dtype"))?
            .to_string();
        let size = dtype_size(&dtype).ok_or_else(|| bad(&format!("unknown dtype {dtype}")))?;
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a dimension is not a size"))?;
        let numel = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(|| bad(&format!("shape {shape:?} overflows")))?;
        let offsets: Vec<u64> = entry["data_offsets"]
            .as_array()
            .map(|o| o.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let [start, end] = offsets[..] else {
            return Err(bad("no data_offsets"));
        };
        let bytes = numel.checked_mul(size);
        if start > end || end > data_bytes || bytes != Some(end - start) {
            return Err(bad(&format!(
                "shape {shape:?} of {dtype} does not match its data offsets [{start}, {end}] \
                 ({data_bytes} bytes of data in the file)"
            )));
        }
        Ok(TensorInfo {
            dtype,
            shape,
            numel,
        })
    }

    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The shape of tensor `name`, if the file holds it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.get(name).map(|t| t.shape.as_slice())
    }

    /// Bytes the parameters take once loaded: every value as an `f32` (the backends' float),
    /// wider dtypes at their own size.
    pub fn loaded_bytes(&self) -> u64 {
        self.tensors
            .values()
            .map(|t| {
                t.numel
                    .saturating_mul(dtype_size(&t.dtype).unwrap_or(4).max(4))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// The numbers `N` of the tensors named `<prefix>N.…` (e.g. `encoder.layer.` → layers).
    pub fn indices(&self, prefix: &str) -> BTreeSet<usize> {
        self.tensors
            .keys()
            .filter_map(|name| name.strip_prefix(prefix))
            .filter_map(|rest| rest.split('.').next())
            .filter_map(|n| n.parse().ok())
            .collect()
    }

    /// Checks that the file holds `name` with shape `expected`; `because` names the parameters
    /// (and their values) that imply that shape.
    pub fn expect_shape(
        &self,
        name: &str,
        expected: &[usize],
        because: &dyn Fn() -> String,
    ) -> Result<(), ModelError> {
        match self.shape(name) {
            Some(shape) if shape == expected => Ok(()),
            Some(shape) => Err(ModelError::Load(format!(
                "{}: the weights hold '{name}' of shape {shape:?}; the parameters imply \
                 {expected:?}",
                because()
            ))),
            None => Err(ModelError::Load(format!(
                "{}: the weights hold no '{name}' (the parameters imply shape {expected:?})",
                because()
            ))),
        }
    }
}

/// `0 … n-1` described for messages: "6 (encoder.layer.0 … encoder.layer.5)".
pub fn describe_indices(prefix: &str, indices: &BTreeSet<usize>) -> String {
    match (indices.first(), indices.last()) {
        (Some(first), Some(last)) if first == last => format!("1 ({prefix}{first})"),
        (Some(first), Some(last)) => {
            format!("{} ({prefix}{first} … {prefix}{last})", indices.len())
        }
        _ => format!("none ({prefix}N)"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A safetensors file of `entries` (name, dtype, shape), zeros as data.
    pub(crate) fn write(path: &Path, entries: &[(&str, &str, &[usize])]) {
        let mut header = serde_json::Map::new();
        let mut offset = 0u64;
        for (name, dtype, shape) in entries {
            let bytes = shape.iter().product::<usize>() as u64 * dtype_size(dtype).unwrap();
            let entry = serde_json::json!({
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + bytes],
            });
            header.insert(name.to_string(), entry);
            offset += bytes;
        }
        let text = serde_json::Value::Object(header).to_string();
        let mut file = (text.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(text.as_bytes());
        file.resize(file.len() + offset as usize, 0);
        std::fs::write(path, file).expect("write safetensors");
    }

    #[test]
    fn reads_names_shapes_and_sizes_and_refuses_lies() {
        let dir = std::env::temp_dir().join(format!("burnserve-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("w.safetensors");
        write(
            &path,
            &[
                ("layers.0.weight", "F32", &[4, 3]),
                ("layers.0.bias", "F16", &[3]),
                ("layers.2.bias", "F32", &[3]),
            ],
        );
        let header = WeightsHeader::read(&path).expect("header");
        assert_eq!(header.shape("layers.0.weight"), Some(&[4, 3][..]));
        assert_eq!(header.indices("layers."), BTreeSet::from([0, 2]));
        // F16 values are held as f32 once loaded.
        assert_eq!(header.loaded_bytes(), (12 + 3 + 3) * 4);
        let because = || "params.hidden = [3]".to_string();
        assert!(header
            .expect_shape("layers.0.weight", &[4, 3], &because)
            .is_ok());
        let err = header
            .expect_shape("layers.0.weight", &[4, 5], &because)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("params.hidden = [3]") && err.contains("[4, 3]") && err.contains("[4, 5]"),
            "{err}"
        );
        assert!(header.expect_shape("nope", &[1], &because).is_err());
        assert_eq!(
            describe_indices("layers.", &header.indices("layers.")),
            "2 (layers.0 … layers.2)"
        );

        // A shape the data cannot hold, a header longer than the file, a huge header claim.
        let text = r#"{"a":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4]}}"#;
        let mut lying = (text.len() as u64).to_le_bytes().to_vec();
        lying.extend_from_slice(text.as_bytes());
        lying.extend_from_slice(&[0; 4]);
        std::fs::write(&path, &lying).expect("write");
        let err = WeightsHeader::read(&path).unwrap_err().to_string();
        assert!(err.contains("does not match its data offsets"), "{err}");
        std::fs::write(&path, u64::MAX.to_le_bytes()).expect("write");
        let err = WeightsHeader::read(&path).unwrap_err().to_string();
        assert!(err.contains("header claims"), "{err}");
        std::fs::write(&path, b"abc").expect("write");
        assert!(WeightsHeader::read(&path).is_err());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
