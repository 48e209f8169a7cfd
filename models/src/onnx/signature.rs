//! The signature of an `onnx` version, from its graph: the request inputs (graph inputs that
//! are not initializers, as IR version 3 files list them), the outputs, their datatypes and
//! shapes; a symbolic first dimension shared by every input and output is the batch
//! dimension. `model.toml` may declare the signature itself: its names must be the graph's.

use std::path::Path;

use onnx_ir::ModelProto;
use protobuf::Message;

use crate::error::ModelError;
use crate::jail::Jail;
use crate::spec::{ModelSpec, TensorSpec};
use crate::tensor::DataType;

/// The weights file an `onnx` version reads when `model.toml` names none.
pub const DEFAULT_FILE: &str = "model.onnx";
/// The largest ONNX file read (2 GiB: protobuf's own limit).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// The seam datatype of ONNX element type `t`.
pub fn datatype_of(t: i32) -> Option<DataType> {
    Some(match t {
        1 => DataType::F32,
        2 => DataType::U8,
        3 => DataType::I8,
        4 => DataType::U16,
        5 => DataType::I16,
        6 => DataType::I32,
        7 => DataType::I64,
        9 => DataType::Bool,
        10 => DataType::F16,
        11 => DataType::F64,
        12 => DataType::U32,
        13 => DataType::U64,
        16 => DataType::BF16,
        _ => return None,
    })
}

/// One graph input or output: name, datatype, and each dimension (`None`: symbolic).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphTensor {
    pub name: String,
    pub datatype: DataType,
    pub dims: Vec<Option<usize>>,
}

fn graph_tensor(info: &onnx_ir::ValueInfoProto, role: &str) -> Result<GraphTensor, ModelError> {
    let name = info.name.clone();
    let tensor = info
        .type_
        .as_ref()
        .filter(|t| t.has_tensor_type())
        .map(|t| t.tensor_type())
        .ok_or_else(|| ModelError::Load(format!("graph {role} '{name}' is not a tensor")))?;
    let datatype = datatype_of(tensor.elem_type).ok_or_else(|| {
        ModelError::Load(format!(
            "graph {role} '{name}' has ONNX element type {}, which burnserve does not serve",
            tensor.elem_type
        ))
    })?;
    let dims = tensor
        .shape
        .as_ref()
        .map(|shape| {
            shape
                .dim
                .iter()
                .map(|d| {
                    d.dim_value()
                        .try_into()
                        .ok()
                        .filter(|_| d.has_dim_value() && d.dim_value() > 0)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(GraphTensor {
        name,
        datatype,
        dims,
    })
}

/// The request inputs and the outputs of a parsed model.
pub fn graph_signature(
    model: &ModelProto,
) -> Result<(Vec<GraphTensor>, Vec<GraphTensor>), ModelError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ModelError::Load("the ONNX file holds no graph".into()))?;
    let constants: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|i| i.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|i| !constants.contains(i.name.as_str()))
        .map(|i| graph_tensor(i, "input"))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(|o| graph_tensor(o, "output"))
        .collect::<Result<Vec<_>, _>>()?;
    if outputs.is_empty() {
        return Err(ModelError::Load("the ONNX graph has no outputs".into()));
    }
    Ok((inputs, outputs))
}

/// Whether every input and output has a symbolic first dimension (the batch dimension).
pub fn has_batch_dimension(inputs: &[GraphTensor], outputs: &[GraphTensor]) -> bool {
    inputs
        .iter()
        .chain(outputs)
        .all(|t| t.dims.first().is_some_and(Option::is_none))
}

fn to_spec(t: &GraphTensor, batched: bool) -> TensorSpec {
    let dims = if batched { &t.dims[1..] } else { &t.dims[..] };
    let mut spec = TensorSpec::new(&t.name, t.datatype, &[]);
    spec.shape = dims.iter().map(|d| d.map_or(-1, |d| d as i64)).collect();
    spec
}

/// The spec of a version directory holding only `model.onnx` (its signature still to fill).
pub fn default_spec() -> Result<ModelSpec, ModelError> {
    ModelSpec::from_toml(&format!(
        "architecture = \"onnx\"\nweights = \"{DEFAULT_FILE}\"\n"
    ))
}

/// Fills an `onnx` spec's signature from the graph of its file (read inside `jail`): the
/// inputs and outputs `model.toml` leaves out, and whether the model batches. A signature
/// `model.toml` declares is kept; its names must be the graph's, and its shapes as long.
pub fn complete(spec: &mut ModelSpec, jail: &Jail, dir: &Path) -> Result<(), ModelError> {
    if spec.architecture != "onnx" {
        return Ok(());
    }
    let file = spec
        .weights
        .get_or_insert_with(|| DEFAULT_FILE.into())
        .clone();
    let (inputs, outputs) = read_graph(jail, dir, &file)?;
    let batched = spec.batching.max_batch_size > 0 && has_batch_dimension(&inputs, &outputs);
    if let Some(text) = super::text::TextParams::from_spec(spec)? {
        if !batched {
            return Err(ModelError::Load(
                "a graph behind a tokenizer needs a symbolic first (batch) dimension on every \
                 input and output"
                    .into(),
            ));
        }
        text.complete(spec, &inputs, &outputs)?;
        return spec.validate();
    }
    if !batched {
        spec.batching.max_batch_size = 0;
    }
    for (declared, graph, role) in [
        (&mut spec.inputs, &inputs, "input"),
        (&mut spec.outputs, &outputs, "output"),
    ] {
        if declared.is_empty() {
            *declared = graph.iter().map(|t| to_spec(t, batched)).collect();
            continue;
        }
        for d in declared.iter() {
            let g = graph.iter().find(|g| g.name == d.name).ok_or_else(|| {
                let names: Vec<&str> = graph.iter().map(|g| g.name.as_str()).collect();
                ModelError::Load(format!(
                    "model.toml declares {role} '{}', which the graph does not have (it has {})",
                    d.name,
                    names.join(", ")
                ))
            })?;
            let rank = g.dims.len() - usize::from(batched && !g.dims.is_empty());
            if d.shape.len() != rank {
                return Err(ModelError::Load(format!(
                    "model.toml gives {role} '{}' {} dimensions; the graph gives it {rank}",
                    d.name,
                    d.shape.len()
                )));
            }
        }
    }
    for g in &inputs {
        if !spec.inputs.iter().any(|d| d.name == g.name) {
            return Err(ModelError::Load(format!(
                "model.toml leaves out graph input '{}'",
                g.name
            )));
        }
    }
    if spec.inputs.len() > crate::MAX_TENSORS || spec.outputs.len() > crate::MAX_TENSORS {
        return Err(ModelError::Load(format!(
            "the graph has {} inputs and {} outputs; a model serves at most {} of each",
            spec.inputs.len(),
            spec.outputs.len(),
            crate::MAX_TENSORS
        )));
    }
    spec.validate()
}

/// The request inputs and the outputs of the graph in `dir`/`file` (inside `jail`).
pub fn read_graph(
    jail: &Jail,
    dir: &Path,
    file: &str,
) -> Result<(Vec<GraphTensor>, Vec<GraphTensor>), ModelError> {
    let path = jail.file(dir, "weights", file)?;
    let bytes = read_bounded(&path, file)?;
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| ModelError::Load(format!("'{file}' is not an ONNX model: {e}")))?;
    graph_signature(&model)
}

/// Reads at most [`MAX_FILE_BYTES`] of `path`.
pub fn read_bounded(path: &Path, file: &str) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| ModelError::Load(format!("'{file}' cannot be read: {e}")))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ModelError::Load(format!("'{file}' cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ModelError::Load(format!(
            "'{file}' is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// The spec of the version in `dir` (inside `jail`): its `model.toml`, or, for a directory
/// holding only `model.onnx`, an `onnx` spec; an `onnx` spec's signature filled from the graph.
pub fn version_spec(jail: &Jail, dir: &Path) -> Result<ModelSpec, ModelError> {
    let mut spec = match jail.file(dir, "model.toml", crate::spec::SPEC_FILE) {
        Ok(path) if path.is_file() => ModelSpec::from_file(&path)?,
        Ok(_) | Err(_)
            if jail
                .file(dir, "weights", DEFAULT_FILE)
                .is_ok_and(|p| p.is_file()) =>
        {
            default_spec()?
        }
        Ok(path) => ModelSpec::from_file(&path)?,
        Err(e) => return Err(e),
    };
    complete(&mut spec, jail, dir)?;
    Ok(spec)
}
