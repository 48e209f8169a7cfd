//! A Triton model's configuration onto one version's `ModelSpec`, against that version's
//! graph: the signature (declared tensors checked against the graph's names, datatypes and
//! dimensions, or auto-completed from it), `max_batch_size` against what the graph takes,
//! `dynamic_batching` and its queue policy, instance groups, labels, parameters, warm-up
//! samples. Refusals name `config.pbtxt`, the line and the field.

use std::path::Path;
use std::sync::Arc;

use super::config::{read_text, TritonConfig, CONFIG_FILE};
use super::pb;
use crate::error::ModelError;
use crate::jail::Jail;
use crate::onnx::signature::{has_batch_dimension, read_graph, GraphTensor};
use crate::spec::{Instances, ModelSpec, TensorSpec, Threads, MAX_TIMEOUT_MS};
use crate::tensor::DataType;

/// The longest label file read.
const MAX_LABEL_BYTES: u64 = 1 << 20;

/// Our datatype of Triton's `TYPE_*` (`None` for `TYPE_INVALID` and unknown numbers).
pub fn datatype(t: i32) -> Option<DataType> {
    use pb::DataType as T;
    Some(match T::try_from(t).ok()? {
        T::TypeInvalid => return None,
        T::TypeBool => DataType::Bool,
        T::TypeUint8 => DataType::U8,
        T::TypeUint16 => DataType::U16,
        T::TypeUint32 => DataType::U32,
        T::TypeUint64 => DataType::U64,
        T::TypeInt8 => DataType::I8,
        T::TypeInt16 => DataType::I16,
        T::TypeInt32 => DataType::I32,
        T::TypeInt64 => DataType::I64,
        T::TypeFp16 => DataType::F16,
        T::TypeFp32 => DataType::F32,
        T::TypeFp64 => DataType::F64,
        T::TypeString => DataType::Bytes,
        T::TypeBf16 => DataType::BF16,
    })
}

/// Triton's `TYPE_*` number of our datatype.
pub fn type_number(d: DataType) -> i32 {
    use pb::DataType as T;
    (match d {
        DataType::Bool => T::TypeBool,
        DataType::U8 => T::TypeUint8,
        DataType::U16 => T::TypeUint16,
        DataType::U32 => T::TypeUint32,
        DataType::U64 => T::TypeUint64,
        DataType::I8 => T::TypeInt8,
        DataType::I16 => T::TypeInt16,
        DataType::I32 => T::TypeInt32,
        DataType::I64 => T::TypeInt64,
        DataType::F16 => T::TypeFp16,
        DataType::F32 => T::TypeFp32,
        DataType::F64 => T::TypeFp64,
        DataType::Bytes => T::TypeString,
        DataType::BF16 => T::TypeBf16,
    }) as i32
}

/// The spec of version directory `version_dir` of the Triton model in `model_dir`.
pub fn version_spec(
    triton: &TritonConfig,
    jail: &Jail,
    model_dir: &Path,
    version_dir: &Path,
) -> Result<ModelSpec, ModelError> {
    let p = &triton.parsed;
    let c = &p.config;
    let fail =
        |path: &str, message: String| ModelError::Load(p.at(path, message).describe(CONFIG_FILE));
    let mut spec = crate::onnx::default_spec()?;
    if !c.default_model_filename.is_empty() {
        spec.weights = Some(c.default_model_filename.clone());
    }
    let file = spec.weights.clone().unwrap_or_default();
    let (graph_inputs, graph_outputs) = read_graph(jail, version_dir, &file)?;
    let graph_batches = has_batch_dimension(&graph_inputs, &graph_outputs);
    let max_batch_size = if triton.max_batch_size_given {
        c.max_batch_size as usize
    } else if graph_batches {
        spec.batching.max_batch_size
    } else {
        0
    };
    spec.batching.max_batch_size = max_batch_size;
    if max_batch_size > 0 {
        check_batch_dimension(&graph_inputs, &graph_outputs, max_batch_size)
            .map_err(|m| fail("max_batch_size", m))?;
    }
    let batched = max_batch_size > 0;
    spec.inputs = tensors(
        p,
        "input",
        &c.input.iter().map(Declared::input).collect::<Vec<_>>(),
        &graph_inputs,
        batched,
        true,
    )?;
    spec.outputs = tensors(
        p,
        "output",
        &c.output.iter().map(Declared::output).collect::<Vec<_>>(),
        &graph_outputs,
        batched,
        false,
    )?;
    for (i, output) in c.output.iter().enumerate() {
        if output.label_filename.is_empty() {
            continue;
        }
        let field = format!("output[{i}].label_filename");
        let path = jail
            .file(model_dir, &field, &output.label_filename)
            .map_err(|e| fail(&field, e.to_string()))?;
        let text = read_text(&path, MAX_LABEL_BYTES, &output.label_filename)
            .map_err(|e| fail(&field, e.to_string()))?;
        let labels: Vec<String> = text.lines().map(str::to_string).collect();
        let tensor = spec
            .outputs
            .iter_mut()
            .find(|t| t.name == output.name)
            .ok_or_else(|| fail(&field, "no such output".into()))?;
        if labels.len() != tensor.item_len() {
            return Err(fail(
                &field,
                format!(
                    "'{}' holds {} labels; output '{}' gives {} values per item",
                    output.label_filename,
                    labels.len(),
                    output.name,
                    tensor.item_len()
                ),
            ));
        }
        tensor.labels = labels;
    }
    match &c.scheduling_choice {
        Some(pb::model_config::SchedulingChoice::DynamicBatching(d)) => {
            spec.batching.max_batch_delay_ms = d.max_queue_delay_microseconds as f64 / 1000.0;
            spec.batching.preferred_batch_sizes =
                d.preferred_batch_size.iter().map(|&n| n as usize).collect();
            if let Some(q) = &d.default_queue_policy {
                if q.max_queue_size > 0 {
                    spec.batching.queue_capacity = q.max_queue_size as usize;
                }
                if q.default_timeout_microseconds > 0 {
                    let ms = q.default_timeout_microseconds.div_ceil(1000);
                    spec.timeout_ms = ms.min(MAX_TIMEOUT_MS);
                }
                spec.allow_timeout_override = q.allow_timeout_override;
            } else {
                spec.allow_timeout_override = false;
            }
        }
        // No dynamic batching: requests never wait for company.
        None => {
            spec.batching.max_batch_delay_ms = 0.0;
            spec.allow_timeout_override = false;
        }
    }
    spec.batching.instances = Instances::Count(triton.instances);
    if let Some(threads) = c.parameters.get("intra_op_thread_count") {
        let n: usize = threads.string_value.trim().parse().map_err(|_| {
            fail(
                "parameters",
                format!(
                    "intra_op_thread_count '{}' is not a number",
                    threads.string_value
                ),
            )
        })?;
        if n > 0 {
            spec.batching.threads_per_instance = Threads::Count(n);
        }
    }
    for key in [
        "tokenizer",
        "pooling",
        "normalize",
        "max_tokens",
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "hidden_output",
    ] {
        if let Some(value) = c.parameters.get(key) {
            let text = value.string_value.trim();
            let value = match text.parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => match text {
                    "true" | "false" => toml::Value::Boolean(text == "true"),
                    _ => toml::Value::String(text.to_string()),
                },
            };
            spec.params.insert(key.to_string(), value);
        }
    }
    spec.warmup = super::warmup::samples(triton, jail, model_dir, &spec)?;
    spec.triton = Some(Arc::new(c.clone()));
    spec.validate()
        .map_err(|e| ModelError::Load(format!("{CONFIG_FILE}: {e}")))?;
    Ok(spec)
}

/// `max_batch_size` > 0 needs a batch dimension the graph leaves free on every tensor.
fn check_batch_dimension(
    inputs: &[GraphTensor],
    outputs: &[GraphTensor],
    max_batch_size: usize,
) -> Result<(), String> {
    for t in inputs.iter().chain(outputs) {
        match t.dims.first() {
            None => {
                return Err(format!(
                    "{max_batch_size} needs a batch dimension; the graph's '{}' is a scalar \
                     (use max_batch_size: 0)",
                    t.name
                ))
            }
            Some(None) => {}
            Some(Some(1)) if max_batch_size == 1 => {}
            Some(Some(d)) if *d < max_batch_size => {
                return Err(format!(
                    "{max_batch_size} is above what the graph takes: '{}' has a fixed first \
                     dimension of {d}",
                    t.name
                ))
            }
            Some(Some(d)) => {
                return Err(format!(
                    "the graph's '{}' takes exactly {d} rows in its first dimension, so smaller \
                     batches would fail (use max_batch_size: 0 and give it in dims)",
                    t.name
                ))
            }
        }
    }
    Ok(())
}

/// One tensor as `config.pbtxt` declares it.
struct Declared<'a> {
    name: &'a str,
    data_type: i32,
    dims: &'a [i64],
    reshape: Option<&'a [i64]>,
    optional: bool,
}

impl<'a> Declared<'a> {
    fn input(t: &'a pb::ModelInput) -> Self {
        Self {
            name: &t.name,
            data_type: t.data_type,
            dims: &t.dims,
            reshape: t.reshape.as_ref().map(|r| r.shape.as_slice()),
            optional: t.optional,
        }
    }

    fn output(t: &'a pb::ModelOutput) -> Self {
        Self {
            name: &t.name,
            data_type: t.data_type,
            dims: &t.dims,
            reshape: t.reshape.as_ref().map(|r| r.shape.as_slice()),
            optional: false,
        }
    }
}

/// The declared tensors checked against the graph's (or the graph's, when none is declared).
fn tensors(
    p: &super::Parsed,
    role: &str,
    declared: &[Declared],
    graph: &[GraphTensor],
    batched: bool,
    every_graph_tensor: bool,
) -> Result<Vec<TensorSpec>, ModelError> {
    let fail = |path: String, message: String| {
        ModelError::Load(p.at(&path, message).describe(CONFIG_FILE))
    };
    let item_dims = |g: &GraphTensor| -> Vec<i64> {
        let dims = if batched {
            &g.dims[1.min(g.dims.len())..]
        } else {
            &g.dims[..]
        };
        dims.iter().map(|d| d.map_or(-1, |d| d as i64)).collect()
    };
    if declared.is_empty() {
        return Ok(graph
            .iter()
            .map(|g| TensorSpec {
                shape: item_dims(g),
                ..TensorSpec::new(&g.name, g.datatype, &[])
            })
            .collect());
    }
    let names: Vec<&str> = graph.iter().map(|g| g.name.as_str()).collect();
    let mut specs = Vec::with_capacity(declared.len());
    for (i, d) in declared.iter().enumerate() {
        let g = graph.iter().find(|g| g.name == d.name).ok_or_else(|| {
            fail(
                format!("{role}[{i}].name"),
                format!(
                    "the graph has no {role} '{}' (it has {})",
                    d.name,
                    names.join(", ")
                ),
            )
        })?;
        let datatype = datatype(d.data_type).unwrap_or(DataType::F32);
        if datatype != g.datatype {
            return Err(fail(
                format!("{role}[{i}].data_type"),
                format!(
                    "{} is declared; the graph's '{}' is {}",
                    datatype.triton_config_name(),
                    d.name,
                    g.datatype.triton_config_name()
                ),
            ));
        }
        let (field, model_dims) = match d.reshape {
            Some(shape) => ("reshape", shape),
            None => ("dims", d.dims),
        };
        let graph_dims = item_dims(g);
        let contradicts = model_dims.len() != graph_dims.len()
            || model_dims
                .iter()
                .zip(&graph_dims)
                .any(|(&m, &g)| m != -1 && g != -1 && m != g);
        if contradicts {
            return Err(fail(
                format!("{role}[{i}].{field}"),
                format!(
                    "{model_dims:?} contradicts the graph's '{}', whose {} {graph_dims:?}",
                    d.name,
                    if batched {
                        "dimensions after the batch dimension are"
                    } else {
                        "dimensions are"
                    }
                ),
            ));
        }
        specs.push(TensorSpec {
            optional: d.optional,
            reshape: d.reshape.map(<[i64]>::to_vec),
            shape: d.dims.to_vec(),
            ..TensorSpec::new(d.name, datatype, &[])
        });
    }
    if every_graph_tensor {
        if let Some(g) = graph
            .iter()
            .find(|g| !declared.iter().any(|d| d.name == g.name))
        {
            return Err(fail(
                role.to_string(),
                format!("the graph's {role} '{}' is not declared", g.name),
            ));
        }
    }
    Ok(specs)
}
