//! `onnx`: the user's own ONNX files, executed on burn at run time. A load checks the file on
//! its protobuf messages (`check`), parses it with onnx-ir on a thread of its own (a deep or
//! hostile graph cannot overflow the loader's stack, and a parser panic is a load error), and
//! turns the graph into our own `Send` plan over burn tensors on the version's device
//! (`plan`, `ops`, `value`). The signature comes from the graph (`signature`).
//!
//! Layout: `check` (before parsing), `signature` (graph → `model.toml` inputs/outputs),
//! `plan` (slots, constant folding, last uses, running), `ops` (the operators), `value`
//! (tensors of any rank and kind).

pub mod check;
mod fuse;
pub mod ops;
pub mod plan;
pub mod profile;
pub mod proto;
pub mod reshape;
pub mod signature;
pub mod text;
pub mod value;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::backend::Backend;

use crate::error::ModelError;
use crate::input::ModelOutput;
use crate::load::LoadContext;
use crate::model::InferenceModel;
use crate::spec::ModelSpec;
use crate::tensor::{DataType, NamedTensor};
use plan::Plan;
use value::{Ctx, Value};

pub use signature::{complete as complete_spec, default_spec, version_spec, DEFAULT_FILE};

/// Why an operator could not run: a shape, index or value the node cannot take.
#[derive(Debug, Clone)]
pub struct OpError(pub String);

impl OpError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Stack of the thread that parses and plans a graph: onnx-ir walks graphs recursively.
const PARSE_STACK_BYTES: usize = 256 << 20;

/// What onnx-ir parses: the file itself (external data resolved next to it), or its rewritten
/// bytes.
enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// An ONNX graph on one device, behind the tensor seam.
pub struct OnnxModel<B: Backend> {
    plan: Arc<Plan<B>>,
    ctx: Ctx<B>,
    /// Each output's name and datatype, as the signature gives them.
    outputs: Vec<(String, DataType)>,
    weight_bytes: usize,
    /// The tokenizer in front and the pooling after, for a text version.
    text: Option<Arc<text::TextFront>>,
    /// The signature's name of a text version's pooled output.
    pooled_name: String,
    /// Tensors the graph takes or gives in another layout (Triton's `reshape`).
    reshapes: Arc<reshape::Reshapes>,
}

/// Loads an `onnx` version: checks the file, parses and plans it on the context's device.
pub fn load(ctx: &LoadContext) -> Result<Box<dyn InferenceModel>, ModelError> {
    let file = ctx
        .spec
        .weights
        .clone()
        .unwrap_or_else(|| DEFAULT_FILE.into());
    let path = ctx.file("weights", &file)?;
    let bytes = signature::read_bounded(&path, &file)?;
    let mut checked = check::check(&bytes, ctx.jail(), ctx.dir, &file)?;
    drop(bytes);
    let source = if check::normalize(&mut checked.model, checked.opset) {
        if check::has_external_data(&checked.model) {
            return Err(ModelError::Load(format!(
                "'{file}' uses opset {} attributes that are rewritten before parsing, and keeps \
                 initializers in external files: re-export it at opset 7 or later",
                checked.opset
            )));
        }
        use protobuf::Message;
        let bytes = checked
            .model
            .write_to_bytes()
            .map_err(|e| ModelError::Load(format!("rewriting '{file}': {e}")))?;
        Source::Bytes(bytes)
    } else {
        Source::File(path)
    };
    let weights = checked.initializer_bytes;
    ctx.admit(&ctx.estimate(weights, weights / 2))?;
    ctx.check()?;
    let front = match text::TextParams::from_spec(ctx.spec)? {
        Some(params) => {
            let bytes = ctx.read(
                "params.tokenizer",
                &params.tokenizer.clone(),
                text::MAX_TOKENIZER_BYTES,
            )?;
            Some(Arc::new(text::TextFront::new(params, &bytes)?))
        }
        None => None,
    };
    let opset = checked.opset;
    let (inputs, outputs) = signature::graph_signature(&checked.model)?;
    let names = plan::GraphNames {
        inputs: inputs.into_iter().map(|t| t.name).collect(),
        outputs: outputs.into_iter().map(|t| t.name).collect(),
    };
    drop(checked);
    fn build<B: Backend>(
        device: B::Device,
        ctx: &LoadContext,
        source: Source,
        opset: i64,
        names: plan::GraphNames,
        front: Option<Arc<text::TextFront>>,
    ) -> Result<Box<dyn InferenceModel>, ModelError>
    where
        B::Device: Send,
    {
        let mut model = plan_on_thread::<B>(device, source, opset, names)?;
        model.text = front;
        ctx.check()?;
        Ok(Box::new(model.check_signature(ctx.spec)?))
    }
    crate::arch::on_backend!(ctx.device, build, ctx, source, opset, names, front)
}

/// Parses `path` with onnx-ir and plans it, on a thread with a large stack; a panic inside the
/// parser is a load error naming it.
fn plan_on_thread<B: Backend>(
    device: B::Device,
    source: Source,
    opset: i64,
    names: plan::GraphNames,
) -> Result<OnnxModel<B>, ModelError>
where
    B::Device: Send,
{
    let worker = std::thread::Builder::new()
        .name("onnx-load".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| -> Result<OnnxModel<B>, ModelError> {
                // onnx-ir's own simplification would fuse patterns into nodes we do not run (Attention);
                // our plan folds constants itself.
                let builder = onnx_ir::OnnxGraphBuilder::new().simplify(false);
                let graph = match &source {
                    Source::File(path) => builder.parse_file(path),
                    Source::Bytes(bytes) => builder.parse_bytes(bytes),
                }
                .map_err(|e| ModelError::Load(format!("ONNX graph: {e}")))?;
                let ctx = Ctx::<B>::new(device);
                let plan = plan::build(&graph, opset, &names, &ctx)?;
                drop(graph);
                let weight_bytes = plan.constant_bytes();
                Ok(OnnxModel {
                    plan: Arc::new(plan),
                    ctx,
                    outputs: Vec::new(),
                    weight_bytes,
                    text: None,
                    pooled_name: String::new(),
                    reshapes: Arc::default(),
                })
            }))
            .unwrap_or_else(|payload| {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown".into());
                Err(ModelError::Load(format!(
                    "the ONNX parser (onnx-ir) could not read the graph: {why}"
                )))
            })
        })
        .map_err(|e| ModelError::Load(format!("cannot start the ONNX loader thread: {e}")))?;
    worker
        .join()
        .map_err(|_| ModelError::Load("the ONNX loader thread failed".into()))?
}

impl<B: Backend> OnnxModel<B> {
    /// Every input and output of the signature must be one of the plan's (for a text version:
    /// the tokenizer feeds the graph, and the pooled output is the signature's).
    fn check_signature(mut self, spec: &ModelSpec) -> Result<Self, ModelError> {
        self.reshapes = Arc::new(reshape::Reshapes::of(spec));
        if let Some(front) = &self.text {
            let params = &front.params;
            if !self.plan.inputs.iter().any(|(n, _)| *n == params.ids) {
                return Err(ModelError::Load(format!(
                    "'{}' is not a graph input",
                    params.ids
                )));
            }
            if params.pooling != text::Pooling::None {
                let hidden = params
                    .hidden
                    .clone()
                    .or_else(|| self.plan.outputs.first().map(|(n, _)| n.clone()))
                    .unwrap_or_default();
                self.outputs = vec![(hidden, DataType::F32)];
                self.pooled_name = spec
                    .outputs
                    .first()
                    .map(|o| o.name.clone())
                    .unwrap_or_else(|| "embedding".into());
                return Ok(self);
            }
        } else {
            for input in &spec.inputs {
                if !self.plan.inputs.iter().any(|(n, _)| *n == input.name) {
                    return Err(ModelError::Load(format!(
                        "the signature's input '{}' is not a graph input",
                        input.name
                    )));
                }
            }
            for (name, _) in &self.plan.inputs {
                if !spec.inputs.iter().any(|i| i.name == *name) {
                    return Err(ModelError::Load(format!(
                        "graph input '{name}' is not in the signature"
                    )));
                }
            }
        }
        let mut outputs = Vec::new();
        for output in &spec.outputs {
            if !self.plan.outputs.iter().any(|(n, _)| *n == output.name) {
                return Err(ModelError::Load(format!(
                    "the signature's output '{}' is not a graph output",
                    output.name
                )));
            }
            outputs.push((output.name.clone(), output.datatype));
        }
        self.outputs = outputs;
        Ok(self)
    }

    /// A text version's pass: tokenize, run the graph, pool.
    fn forward_text(
        &mut self,
        front: &text::TextFront,
        inputs: Vec<NamedTensor>,
        wanted: Option<&[String]>,
    ) -> Result<ModelOutput, ModelError> {
        let texts = crate::input::take_texts(inputs)?;
        let tokens = front.tokenize(texts)?;
        let params = &front.params;
        let shape = vec![tokens.rows, tokens.seq];
        let mut values: HashMap<String, Value<B>> = HashMap::new();
        for (name, _) in &self.plan.inputs {
            let data = if *name == params.ids {
                tokens.ids.clone()
            } else if *name == params.mask {
                tokens.mask.clone()
            } else {
                vec![0; tokens.rows * tokens.seq]
            };
            let value = Value::from_i64s(data, shape.clone(), &self.ctx)
                .map_err(|e| ModelError::Inference(e.0))?;
            values.insert(name.clone(), value);
        }
        if params.pooling == text::Pooling::None {
            let mut out = self.run_graph(values, wanted)?;
            out.tokens = tokens.lengths;
            return Ok(out);
        }
        let hidden_name = [self.outputs[0].0.clone()];
        let mut out = self.run_graph(values, Some(&hidden_name))?;
        let hidden = out
            .tensors
            .pop()
            .ok_or_else(|| ModelError::Inference("the graph gave no hidden states".into()))?;
        let width = *hidden.shape.last().unwrap_or(&0);
        if hidden.shape != [tokens.rows, tokens.seq, width] {
            return Err(ModelError::Inference(format!(
                "hidden states {:?}, expected [{}, {}, width]",
                hidden.shape, tokens.rows, tokens.seq
            )));
        }
        let crate::tensor::TensorData::F32(states) = hidden.data else {
            return Err(ModelError::Inference("hidden states are not FP32".into()));
        };
        let pooled = front.pool(&states, &tokens, width);
        Ok(ModelOutput {
            tensors: vec![NamedTensor::new(
                self.pooled_name.clone(),
                vec![tokens.rows, width],
                crate::tensor::TensorData::F32(pooled),
            )],
            tokens: tokens.lengths,
        })
    }

    /// Runs the plan and reads back the outputs in `wanted` (every output when `None`).
    fn run_graph(
        &mut self,
        values: HashMap<String, Value<B>>,
        wanted: Option<&[String]>,
    ) -> Result<ModelOutput, ModelError> {
        let names: Vec<String>;
        let wanted = match wanted {
            Some(w) => Some(w),
            None => {
                names = self.outputs.iter().map(|(n, _)| n.clone()).collect();
                Some(&names[..])
            }
        };
        let results = self.plan.run(values, wanted, &self.ctx)?;
        let mut tensors = Vec::with_capacity(results.len());
        for (name, value) in results {
            let datatype = self
                .outputs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| *d)
                .unwrap_or(DataType::F32);
            let tensor = value::download(value, &name, datatype)
                .map_err(|e| ModelError::Inference(format!("output '{name}': {}", e.0)))?;
            tensors.push(tensor);
        }
        Ok(ModelOutput {
            tensors,
            tokens: Vec::new(),
        })
    }
}

impl<B: Backend> InferenceModel for OnnxModel<B>
where
    B::Device: Send,
{
    fn forward(
        &mut self,
        inputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<ModelOutput, ModelError> {
        self.forward_wanted(inputs, rows, None)
    }

    fn forward_wanted(
        &mut self,
        inputs: Vec<NamedTensor>,
        _rows: usize,
        wanted: Option<&[String]>,
    ) -> Result<ModelOutput, ModelError> {
        if let Some(front) = self.text.clone() {
            return self.forward_text(&front, inputs, wanted);
        }
        let mut inputs = inputs;
        if !self.reshapes.is_empty() {
            self.reshapes.inputs(&mut inputs);
        }
        let mut values: HashMap<String, Value<B>> = HashMap::with_capacity(inputs.len());
        for tensor in inputs {
            let name = tensor.name.clone();
            let value =
                value::upload(tensor, &self.ctx).map_err(|e| ModelError::InvalidInput(e.0))?;
            values.insert(name, value);
        }
        let mut output = self.run_graph(values, wanted)?;
        if !self.reshapes.is_empty() {
            self.reshapes.outputs(&mut output.tensors);
        }
        Ok(output)
    }

    fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        Some(Box::new(Self {
            plan: self.plan.clone(),
            ctx: self.ctx.clone(),
            outputs: self.outputs.clone(),
            weight_bytes: self.weight_bytes,
            text: self.text.clone(),
            pooled_name: self.pooled_name.clone(),
            reshapes: self.reshapes.clone(),
        }))
    }
}
