//! What is checked of an ONNX file before onnx-ir parses it, on the protobuf messages alone:
//! the opset, every node's domain and op type against what we run, the order of the nodes (a
//! cycle or a value read before it is made), initializer sizes against their stated shapes,
//! and external data files (inside the version directory, as long as they say). Each refusal
//! names the operator, node and opset, so a user knows what to change.

use std::collections::HashSet;
use std::path::Path;

use onnx_ir::ModelProto;
use protobuf::Message;

use crate::error::ModelError;
use crate::jail::Jail;

/// The newest default-domain opset we read (onnx 1.18's).
pub const MAX_OPSET: i64 = 23;
/// The most nodes one graph may hold.
pub const MAX_NODES: usize = 100_000;
/// The most elements one initializer may state.
const MAX_INITIALIZER_ELEMENTS: u64 = 1 << 32;

/// The ONNX op types a plan runs (what `ops::Op::from_node` covers), sorted.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "Div",
    "Dropout",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "IsNaN",
    "LRN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mish",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "Tile",
    "TopK",
    "Transpose",
    "Unsqueeze",
    "Where",
    "Xor",
];

/// What the check learned: the parsed messages, the opset, and the initializers' bytes.
pub struct Checked {
    pub model: ModelProto,
    pub opset: i64,
    pub initializer_bytes: u64,
}

fn refuse(msg: String) -> ModelError {
    ModelError::Load(msg)
}

/// Bytes of one element of ONNX element type `t` (`None`: a type we do not read).
pub fn element_size(t: i32) -> Option<u64> {
    match t {
        1 | 6 | 12 => Some(4),
        2 | 3 | 9 => Some(1),
        4 | 5 | 10 | 16 => Some(2),
        7 | 11 | 13 => Some(8),
        _ => None,
    }
}

/// Checks the ONNX file `bytes` (read from `file` in `dir`, inside `jail`).
pub fn check(bytes: &[u8], jail: &Jail, dir: &Path, file: &str) -> Result<Checked, ModelError> {
    let model = ModelProto::parse_from_bytes(bytes)
        .map_err(|e| refuse(format!("'{file}' is not an ONNX model: {e}")))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| {
            refuse(format!(
                "'{file}' imports no default-domain (ai.onnx) opset: operators of other \
                 domains are not supported"
            ))
        })?;
    if !(1..=MAX_OPSET).contains(&opset) {
        return Err(refuse(format!(
            "'{file}' uses opset {opset}; burnserve reads opsets 1 to {MAX_OPSET}"
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| refuse(format!("'{file}' holds no graph")))?;
    if graph.node.len() > MAX_NODES {
        return Err(refuse(format!(
            "'{file}' has {} nodes, over the {MAX_NODES} a graph may hold",
            graph.node.len()
        )));
    }
    let mut available: HashSet<&str> = HashSet::new();
    available.insert("");
    for input in &graph.input {
        available.insert(input.name.as_str());
    }
    let mut initializer_bytes = 0u64;
    for init in &graph.initializer {
        available.insert(init.name.as_str());
        initializer_bytes += check_initializer(init, jail, dir, file)?;
    }
    for (index, node) in graph.node.iter().enumerate() {
        let name = if node.name.is_empty() {
            format!("#{index}")
        } else {
            node.name.clone()
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(refuse(format!(
                "operator '{}' of domain '{}' (node '{name}') is not supported: burnserve runs \
                 the default ONNX domain only",
                node.op_type, node.domain
            )));
        }
        if SUPPORTED_OPS.binary_search(&node.op_type.as_str()).is_err() {
            return Err(refuse(format!(
                "operator '{}' (node '{name}', opset {opset}) is not supported; README lists the \
                 operators burnserve runs",
                node.op_type
            )));
        }
        let tanh_gelu = node.op_type == "Gelu"
            && node
                .attribute
                .iter()
                .any(|a| a.name == "approximate" && a.s.as_ref() == b"tanh");
        if tanh_gelu {
            return Err(refuse(format!(
                "operator 'Gelu' with approximate = \"tanh\" (node '{name}', opset {opset}) is \
                 not supported (the exact form is)"
            )));
        }
        if node
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
        {
            return Err(refuse(format!(
                "operator '{}' (node '{name}') carries a subgraph, which is not supported",
                node.op_type
            )));
        }
        for input in &node.input {
            if !available.contains(input.as_str()) {
                return Err(refuse(format!(
                    "node '{name}' ({}) reads '{input}' before any node makes it: the graph has \
                     a cycle or is not topologically sorted",
                    node.op_type
                )));
            }
        }
        for output in &node.output {
            available.insert(output.as_str());
        }
    }
    for output in &graph.output {
        if !available.contains(output.name.as_str()) {
            return Err(refuse(format!(
                "graph output '{}' is made by no node",
                output.name
            )));
        }
    }
    drop(available);
    Ok(Checked {
        model,
        opset,
        initializer_bytes,
    })
}

/// Rewrites what onnx-ir does not read of opsets before 7 into what it does: the `broadcast`
/// (and `axis`) attributes of element-wise operators and Gemm, numpy broadcasting since. Answers
/// whether anything changed.
pub fn normalize(model: &mut ModelProto, opset: i64) -> bool {
    if opset >= 7 {
        return false;
    }
    let Some(graph) = model.graph.as_mut() else {
        return false;
    };
    let mut changed = false;
    for node in &mut graph.node {
        let elementwise = matches!(
            node.op_type.as_str(),
            "Add"
                | "Sub"
                | "Mul"
                | "Div"
                | "Pow"
                | "And"
                | "Or"
                | "Xor"
                | "Equal"
                | "Greater"
                | "Less"
                | "Gemm"
        );
        if !elementwise {
            continue;
        }
        let before = node.attribute.len();
        let gemm = node.op_type == "Gemm";
        node.attribute
            .retain(|a| !(a.name == "broadcast" || (!gemm && a.name == "axis")));
        changed |= node.attribute.len() != before;
    }
    changed
}

/// Whether any initializer keeps its data in an external file.
pub fn has_external_data(model: &ModelProto) -> bool {
    model
        .graph
        .as_ref()
        .is_some_and(|g| g.initializer.iter().any(|i| i.data_location.value() == 1))
}

/// Checks one initializer's stated shape against the data it holds (or its external file),
/// and answers its bytes.
fn check_initializer(
    init: &onnx_ir::TensorProto,
    jail: &Jail,
    dir: &Path,
    file: &str,
) -> Result<u64, ModelError> {
    let name = &init.name;
    let mut count: u64 = 1;
    for &d in &init.dims {
        let d = u64::try_from(d)
            .map_err(|_| refuse(format!("initializer '{name}' has a negative dimension")))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_INITIALIZER_ELEMENTS)
            .ok_or_else(|| {
                refuse(format!(
                    "initializer '{name}' states {:?}: too large",
                    init.dims
                ))
            })?;
    }
    let size = element_size(init.data_type).ok_or_else(|| {
        refuse(format!(
            "initializer '{name}' has ONNX element type {}, which burnserve does not run",
            init.data_type
        ))
    })?;
    let bytes = count * size;
    let external = init.data_location.value() == 1;
    if external {
        check_external(init, bytes, jail, dir, file)?;
        return Ok(bytes);
    }
    let held = if !init.raw_data.is_empty() {
        init.raw_data.len() as u64
    } else {
        let typed = match init.data_type {
            1 => init.float_data.len(),
            7 => init.int64_data.len(),
            11 => init.double_data.len(),
            12 | 13 => init.uint64_data.len(),
            _ => init.int32_data.len(),
        } as u64;
        typed * size
    };
    if held != bytes {
        return Err(refuse(format!(
            "initializer '{name}' states shape {:?} ({bytes} bytes) but holds {held} bytes",
            init.dims
        )));
    }
    Ok(bytes)
}

/// An external initializer's file must lie inside the version directory and hold what it says.
fn check_external(
    init: &onnx_ir::TensorProto,
    bytes: u64,
    jail: &Jail,
    dir: &Path,
    file: &str,
) -> Result<(), ModelError> {
    let name = &init.name;
    let entry = |key: &str| {
        init.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let location = entry("location").ok_or_else(|| {
        refuse(format!(
            "initializer '{name}' is external but names no location"
        ))
    })?;
    let number = |key: &str| -> Result<Option<u64>, ModelError> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| refuse(format!("initializer '{name}': external {key} '{v}'")))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(bytes);
    if length != bytes {
        return Err(refuse(format!(
            "initializer '{name}' states {bytes} bytes but its external length is {length}"
        )));
    }
    let path = jail.file(dir, &format!("external data of {file}"), &location)?;
    let held = std::fs::metadata(&path)
        .map_err(|e| {
            refuse(format!(
                "external data '{location}' of initializer '{name}': {e}"
            ))
        })?
        .len();
    if offset.checked_add(length).is_none_or(|end| end > held) {
        return Err(refuse(format!(
            "external data '{location}' holds {held} bytes; initializer '{name}' needs {length} \
             from offset {offset}: the file is truncated"
        )));
    }
    Ok(())
}
