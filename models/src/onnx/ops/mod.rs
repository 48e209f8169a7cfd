//! The operators an ONNX plan runs: [`Op`], our own `Send` copy of each onnx-ir node's settings,
//! built once at load ([`Op::from_node`], which also names what we do not run), and
//! [`Op::run`], which checks its inputs' shapes before calling a burn kernel, so a request the
//! graph cannot take is an error naming the node, never a panic inside the backend.

mod conv;
mod elementwise;
mod gather;
mod generate;
mod host;
mod layout;
mod nn;
mod pool;
mod reduce;
mod resize;
mod shapes;

use burn::tensor::backend::Backend;
use burn::tensor::DType;
use onnx_ir::ir::Node;

use super::value::{self, Ctx, Value};
use super::OpError;

pub use elementwise::{Binary, Unary};

/// One node's operator and its settings.
#[derive(Debug, Clone)]
pub enum Op {
    /// Passes its first input through.
    Identity,
    /// Inference-time Dropout (its ratio): the input, and a mask of ones when asked for.
    Dropout(onnx_ir::dropout::DropoutInput),
    Unary(Unary),
    Binary(Binary),
    /// Sum / Max / Min / Mean of any number of inputs, broadcast.
    Variadic {
        op: Binary,
        mean: bool,
    },
    Where,
    Clip(onnx_ir::clip::ClipConfig),
    Cast(DType),
    Reshape(onnx_ir::reshape::ReshapeConfig),
    Flatten(usize),
    Transpose(Vec<i64>),
    Squeeze(onnx_ir::squeeze::SqueezeConfig),
    Unsqueeze(onnx_ir::unsqueeze::UnsqueezeConfig),
    Concat(usize),
    /// The settings and the node's number of outputs.
    Split(onnx_ir::split::SplitConfig, usize),
    Slice(onnx_ir::slice::SliceConfig),
    Gather(usize),
    GatherElements(usize),
    Expand(onnx_ir::expand::ExpandConfig),
    Tile(onnx_ir::tile::TileConfig),
    Shape(onnx_ir::shape::ShapeConfig),
    Size,
    ConstantOfShape(onnx_ir::constant_of_shape::ConstantOfShapeConfig),
    Range(onnx_ir::range::RangeConfig),
    Pad(onnx_ir::pad::PadConfig),
    Conv(conv::Conv),
    ConvTranspose(conv::ConvTranspose),
    Pool(pool::Pool),
    GlobalPool {
        max: bool,
    },
    BatchNorm {
        epsilon: f64,
    },
    InstanceNorm {
        epsilon: f64,
    },
    LayerNorm {
        epsilon: f64,
    },
    Gemm(onnx_ir::gemm::GemmConfig),
    Linear {
        transpose_weight: bool,
    },
    MatMul,
    /// `legacy`: opsets before 13, which flatten from `axis` on.
    Softmax {
        axis: usize,
        log: bool,
        legacy: bool,
    },
    Lrn(onnx_ir::lrn::LrnConfig),
    Resize(onnx_ir::resize::ResizeConfig),
    Reduce(reduce::Reduce, onnx_ir::reduce::ReduceConfig),
    ArgExtreme {
        max: bool,
        axis: usize,
        keepdims: bool,
        last: bool,
    },
    TopK(onnx_ir::topk::TopKConfig),
}

impl Op {
    /// Our operator for an onnx-ir node, or `Err` naming the op type we do not run.
    pub fn from_node(node: &Node, opset: usize) -> Result<Op, String> {
        let legacy = opset < 13;
        use Node as N;
        let op = match node {
            N::Identity(_) => Op::Identity,
            N::Dropout(n) => Op::Dropout(n.config.prob.clone()),
            N::Neg(_) => Op::Unary(Unary::Neg),
            N::Abs(_) => Op::Unary(Unary::Abs),
            N::Sqrt(_) => Op::Unary(Unary::Sqrt),
            N::Exp(_) => Op::Unary(Unary::Exp),
            N::Log(_) => Op::Unary(Unary::Log),
            N::Ceil(_) => Op::Unary(Unary::Ceil),
            N::Floor(_) => Op::Unary(Unary::Floor),
            N::Round(_) => Op::Unary(Unary::Round),
            N::Sign(_) => Op::Unary(Unary::Sign),
            N::Erf(_) => Op::Unary(Unary::Erf),
            N::Sin(_) => Op::Unary(Unary::Sin),
            N::Cos(_) => Op::Unary(Unary::Cos),
            N::Tan(_) => Op::Unary(Unary::Tan),
            N::Asin(_) => Op::Unary(Unary::Asin),
            N::Acos(_) => Op::Unary(Unary::Acos),
            N::Atan(_) => Op::Unary(Unary::Atan),
            N::Sinh(_) => Op::Unary(Unary::Sinh),
            N::Cosh(_) => Op::Unary(Unary::Cosh),
            N::Tanh(_) => Op::Unary(Unary::Tanh),
            N::Asinh(_) => Op::Unary(Unary::Asinh),
            N::Acosh(_) => Op::Unary(Unary::Acosh),
            N::Atanh(_) => Op::Unary(Unary::Atanh),
            N::Relu(_) => Op::Unary(Unary::Relu),
            N::Sigmoid(_) => Op::Unary(Unary::Sigmoid),
            N::Reciprocal(_) => Op::Unary(Unary::Reciprocal),
            N::Softplus(_) => Op::Unary(Unary::Softplus),
            N::Softsign(_) => Op::Unary(Unary::Softsign),
            N::HardSwish(_) => Op::Unary(Unary::HardSwish),
            N::Gelu(_) => Op::Unary(Unary::Gelu),
            N::Mish(_) => Op::Unary(Unary::Mish),
            N::IsNaN(_) => Op::Unary(Unary::IsNaN),
            N::Not(_) => Op::Unary(Unary::Not),
            N::LeakyRelu(n) => Op::Unary(Unary::LeakyRelu(n.config.alpha)),
            N::HardSigmoid(n) => Op::Unary(Unary::HardSigmoid(n.config.alpha, n.config.beta)),
            N::Elu(n) => Op::Unary(Unary::Elu(n.config.alpha)),
            N::Selu(n) => Op::Unary(Unary::Selu(n.config.alpha, n.config.gamma)),
            N::Celu(n) => Op::Unary(Unary::Celu(n.config.alpha)),
            N::Add(_) => Op::Binary(Binary::Add),
            N::Sub(_) => Op::Binary(Binary::Sub),
            N::Mul(_) => Op::Binary(Binary::Mul),
            N::Div(_) => Op::Binary(Binary::Div),
            N::Pow(_) => Op::Binary(Binary::Pow),
            N::Equal(_) => Op::Binary(Binary::Equal),
            N::Greater(_) => Op::Binary(Binary::Greater),
            N::GreaterOrEqual(_) => Op::Binary(Binary::GreaterOrEqual),
            N::Less(_) => Op::Binary(Binary::Less),
            N::LessOrEqual(_) => Op::Binary(Binary::LessOrEqual),
            N::And(_) => Op::Binary(Binary::And),
            N::Or(_) => Op::Binary(Binary::Or),
            N::Xor(_) => Op::Binary(Binary::Xor),
            N::PRelu(_) => Op::Binary(Binary::PRelu),
            N::Sum(_) => Op::Variadic {
                op: Binary::Add,
                mean: false,
            },
            N::Mean(_) => Op::Variadic {
                op: Binary::Add,
                mean: true,
            },
            N::Max(_) => Op::Variadic {
                op: Binary::Max,
                mean: false,
            },
            N::Min(_) => Op::Variadic {
                op: Binary::Min,
                mean: false,
            },
            N::Where(_) => Op::Where,
            N::Clip(n) => Op::Clip(n.config.clone()),
            N::Cast(n) => Op::Cast(n.config.to),
            N::Reshape(n) => Op::Reshape(n.config.clone()),
            N::Flatten(n) => Op::Flatten(n.config.axis),
            N::Transpose(n) => Op::Transpose(n.config.perm.clone()),
            N::Squeeze(n) => Op::Squeeze(n.config.clone()),
            N::Unsqueeze(n) => Op::Unsqueeze(n.config.clone()),
            N::Concat(n) => Op::Concat(n.config.axis),
            N::Split(n) => Op::Split(n.config.clone(), n.outputs.len()),
            N::Slice(n) => Op::Slice(n.config.clone()),
            N::Gather(n) => Op::Gather(n.config.axis),
            N::GatherElements(n) => Op::GatherElements(n.config.axis),
            N::Expand(n) => Op::Expand(n.config.clone()),
            N::Tile(n) => Op::Tile(n.config.clone()),
            N::Shape(n) => Op::Shape(n.config.clone()),
            N::Size(_) => Op::Size,
            N::ConstantOfShape(n) => Op::ConstantOfShape(n.config.clone()),
            N::Range(n) => Op::Range(n.config.clone()),
            N::Pad(n) => Op::Pad(n.config.clone()),
            N::Conv1d(n) => Op::Conv(conv::Conv::from_1d(&n.config)),
            N::Conv2d(n) => Op::Conv(conv::Conv::from_2d(&n.config)),
            N::Conv3d(n) => Op::Conv(conv::Conv::from_3d(&n.config)),
            N::MaxPool3d(n) => Op::Pool(pool::Pool::max_3d(&n.config)),
            N::AveragePool3d(n) => Op::Pool(pool::Pool::avg_3d(&n.config)),
            N::Shrink(n) => Op::Unary(Unary::Shrink(n.config.lambda, n.config.bias)),
            N::ConvTranspose1d(n) => Op::ConvTranspose(conv::ConvTranspose::from_1d(&n.config)),
            N::ConvTranspose2d(n) => Op::ConvTranspose(conv::ConvTranspose::from_2d(&n.config)),
            N::MaxPool1d(n) => Op::Pool(pool::Pool::max_1d(&n.config)),
            N::MaxPool2d(n) => Op::Pool(pool::Pool::max_2d(&n.config)),
            N::AveragePool1d(n) => Op::Pool(pool::Pool::avg_1d(&n.config)),
            N::AveragePool2d(n) => Op::Pool(pool::Pool::avg_2d(&n.config)),
            N::GlobalAveragePool(_) => Op::GlobalPool { max: false },
            N::GlobalMaxPool(_) => Op::GlobalPool { max: true },
            N::BatchNormalization(n) => Op::BatchNorm {
                epsilon: match &n.config {
                    onnx_ir::batch_norm::BatchNormConfig::Static(c) => c.epsilon,
                    onnx_ir::batch_norm::BatchNormConfig::Runtime(c) => c.epsilon,
                },
            },
            N::InstanceNormalization(n) => Op::InstanceNorm {
                epsilon: n.config.epsilon,
            },
            N::LayerNormalization(n) => Op::LayerNorm {
                epsilon: n.config.epsilon,
            },
            N::Gemm(n) => Op::Gemm(n.config.clone()),
            N::Linear(n) => Op::Linear {
                transpose_weight: n.config.transpose_weight,
            },
            N::MatMul(_) => Op::MatMul,
            N::Softmax(n) => Op::Softmax {
                axis: n.config.axis,
                log: false,
                legacy,
            },
            N::LogSoftmax(n) => Op::Softmax {
                axis: n.config.axis,
                log: true,
                legacy,
            },
            N::Lrn(n) => Op::Lrn(n.config.clone()),
            N::Resize(n) => Op::Resize(n.config.clone()),
            N::ReduceMax(n) => Op::Reduce(reduce::Reduce::Max, n.config.clone()),
            N::ReduceMin(n) => Op::Reduce(reduce::Reduce::Min, n.config.clone()),
            N::ReduceMean(n) => Op::Reduce(reduce::Reduce::Mean, n.config.clone()),
            N::ReduceSum(n) => Op::Reduce(reduce::Reduce::Sum, n.config.clone()),
            N::ReduceProd(n) => Op::Reduce(reduce::Reduce::Prod, n.config.clone()),
            N::ReduceSumSquare(n) => Op::Reduce(reduce::Reduce::SumSquare, n.config.clone()),
            N::ReduceL1(n) => Op::Reduce(reduce::Reduce::L1, n.config.clone()),
            N::ReduceL2(n) => Op::Reduce(reduce::Reduce::L2, n.config.clone()),
            N::ReduceLogSum(n) => Op::Reduce(reduce::Reduce::LogSum, n.config.clone()),
            N::ReduceLogSumExp(n) => Op::Reduce(reduce::Reduce::LogSumExp, n.config.clone()),
            N::ArgMax(n) => Op::ArgExtreme {
                max: true,
                axis: n.config.axis,
                keepdims: n.config.keepdims,
                last: n.config.select_last_index,
            },
            N::ArgMin(n) => Op::ArgExtreme {
                max: false,
                axis: n.config.axis,
                keepdims: n.config.keepdims,
                last: n.config.select_last_index,
            },
            N::TopK(n) => Op::TopK(n.config.clone()),
            other => return Err(op_type_of(other)),
        };
        Ok(op)
    }

    /// Inputs whose values onnx-ir already read into the settings (constants the operator
    /// never looks at again): the plan does not keep them.
    pub fn static_inputs(&self) -> Vec<usize> {
        use onnx_ir::{clip::ClipInput, slice::SliceInput};
        let stat = |yes: bool, index: usize| yes.then_some(index);
        let slice = |s: &Option<SliceInput>| matches!(s, Some(SliceInput::Static(_)));
        match self {
            Op::Reshape(c) => vec![stat(
                matches!(c.shape, onnx_ir::reshape::ReshapeInput::Static(_)),
                1,
            )],
            Op::Unsqueeze(c) => vec![stat(
                matches!(c, onnx_ir::unsqueeze::UnsqueezeConfig::Static(_)),
                1,
            )],
            Op::Squeeze(c) => vec![stat(
                matches!(c.axes, Some(onnx_ir::squeeze::SqueezeInput::Static(_))),
                1,
            )],
            Op::Expand(c) => vec![stat(
                matches!(c, onnx_ir::expand::ExpandConfig::Static(_)),
                1,
            )],
            Op::Tile(c) => vec![stat(
                matches!(c.repeats, onnx_ir::tile::TileInput::Static(_)),
                1,
            )],
            Op::ConstantOfShape(c) => vec![stat(
                matches!(
                    c.shape,
                    onnx_ir::constant_of_shape::ConstantOfShapeShape::Static(_)
                ),
                0,
            )],
            Op::Slice(c) => vec![
                stat(slice(&Some(c.starts.clone())), 1),
                stat(slice(&Some(c.ends.clone())), 2),
                stat(slice(&c.axes), 3),
                stat(slice(&c.steps), 4),
            ],
            Op::Clip(c) => vec![
                stat(matches!(c.min, Some(ClipInput::Static(_))), 1),
                stat(matches!(c.max, Some(ClipInput::Static(_))), 2),
            ],
            Op::TopK(c) => vec![stat(matches!(c.k, onnx_ir::topk::TopKInput::Static(_)), 1)],
            Op::Reduce(_, c) => vec![stat(!c.dims.is_empty(), 1)],
            _ => Vec::new(),
        }
        .into_iter()
        .flatten()
        .collect()
    }

    /// Runs the operator on its inputs (`None`: an optional input left out).
    pub fn run<B: Backend>(
        &self,
        inputs: Vec<Option<Value<B>>>,
        ctx: &Ctx<B>,
    ) -> Result<Vec<Value<B>>, OpError> {
        let mut inputs = Inputs(inputs);
        let one = |v: Value<B>| Ok(vec![v]);
        match self {
            Op::Identity => one(inputs.take(0)?),
            Op::Dropout(ratio) => {
                let x = inputs.take(0)?;
                if let Some(training) = inputs.optional(2) {
                    let ratio = match ratio {
                        onnx_ir::dropout::DropoutInput::Static(r) => *r,
                        onnx_ir::dropout::DropoutInput::Runtime(r) => inputs
                            .optional(r.input_index)
                            .map(|v| v.to_f64s())
                            .transpose()?
                            .and_then(|v| v.first().copied())
                            .unwrap_or(0.5),
                    };
                    if training.to_i64s()?.first().is_some_and(|&t| t != 0) && ratio != 0.0 {
                        return Err(OpError::new("Dropout in training mode is not supported"));
                    }
                }
                let n = x.numel();
                let mask = Value::from_i64s(vec![1; n], x.shape.clone(), ctx)?
                    .to_kind(value::Kind::Bool, ctx);
                Ok(vec![x, mask])
            }
            Op::Unary(u) => one(elementwise::unary(*u, inputs.take(0)?, ctx)?),
            Op::Binary(b) => {
                let (l, r) = (inputs.take(0)?, inputs.take(1)?);
                one(elementwise::binary(*b, l, r, ctx)?)
            }
            Op::Variadic { op, mean } => one(elementwise::variadic(*op, *mean, inputs.all(), ctx)?),
            Op::Where => {
                let (c, x, y) = (inputs.take(0)?, inputs.take(1)?, inputs.take(2)?);
                one(elementwise::select_where(c, x, y, ctx)?)
            }
            Op::Clip(config) => one(elementwise::clip(config, &mut inputs, ctx)?),
            Op::Cast(to) => one(elementwise::cast(inputs.take(0)?, *to, ctx)),
            Op::Reshape(c) => one(layout::reshape(c, &mut inputs)?),
            Op::Flatten(axis) => one(layout::flatten(inputs.take(0)?, *axis)?),
            Op::Transpose(perm) => one(layout::transpose(inputs.take(0)?, perm)?),
            Op::Squeeze(c) => one(layout::squeeze(c, &mut inputs)?),
            Op::Unsqueeze(c) => one(layout::unsqueeze(c, &mut inputs)?),
            Op::Concat(axis) => one(layout::concat(inputs.all(), *axis, ctx)?),
            Op::Split(c, n) => layout::split(c, *n, &mut inputs),
            Op::Slice(c) => one(layout::slice(c, &mut inputs)?),
            Op::Gather(axis) => {
                let (x, i) = (inputs.take(0)?, inputs.take(1)?);
                one(gather::gather(x, i, *axis, ctx)?)
            }
            Op::GatherElements(axis) => {
                let (x, i) = (inputs.take(0)?, inputs.take(1)?);
                one(gather::gather_elements(x, i, *axis, ctx)?)
            }
            Op::Expand(c) => one(layout::expand(c, &mut inputs)?),
            Op::Tile(c) => one(layout::tile(c, &mut inputs)?),
            Op::Shape(c) => one(generate::shape_of(c, inputs.take(0)?, ctx)?),
            Op::Size => {
                let n = inputs.take(0)?.numel() as i64;
                one(Value::from_i64s(vec![n], vec![], ctx)?)
            }
            Op::ConstantOfShape(c) => one(generate::constant_of_shape(c, &mut inputs, ctx)?),
            Op::Range(c) => one(generate::range(c, &mut inputs, ctx)?),
            Op::Pad(c) => one(generate::pad(c, &mut inputs, ctx)?),
            Op::Conv(c) => one(conv::conv(c, &mut inputs, ctx)?),
            Op::ConvTranspose(c) => one(conv::conv_transpose(c, &mut inputs, ctx)?),
            Op::Pool(p) => one(pool::pool(p, inputs.take(0)?, ctx)?),
            Op::GlobalPool { max } => one(pool::global_pool(*max, inputs.take(0)?, ctx)?),
            Op::BatchNorm { epsilon } => one(nn::batch_norm(*epsilon, &mut inputs, ctx)?),
            Op::InstanceNorm { epsilon } => one(nn::instance_norm(*epsilon, &mut inputs, ctx)?),
            Op::LayerNorm { epsilon } => one(nn::layer_norm(*epsilon, &mut inputs, ctx)?),
            Op::Gemm(c) => one(nn::gemm(c, &mut inputs, ctx)?),
            Op::Linear { transpose_weight } => {
                one(nn::linear(*transpose_weight, &mut inputs, ctx)?)
            }
            Op::MatMul => {
                let (a, b) = (inputs.take(0)?, inputs.take(1)?);
                one(nn::matmul(a, b, ctx)?)
            }
            Op::Softmax { axis, log, legacy } => {
                one(nn::softmax(inputs.take(0)?, *axis, *log, *legacy, ctx)?)
            }
            Op::Lrn(c) => one(nn::lrn(c, inputs.take(0)?, ctx)?),
            Op::Resize(c) => one(resize::resize(c, &mut inputs, ctx)?),
            Op::Reduce(r, c) => {
                let x = inputs.take(0)?;
                let axes = match inputs.optional(1) {
                    Some(a) => Some(a.to_i64s()?),
                    None => None,
                };
                one(reduce::reduce(*r, c, x, axes, ctx)?)
            }
            Op::ArgExtreme {
                max,
                axis,
                keepdims,
                last,
            } => one(reduce::arg_extreme(
                *max,
                *axis,
                *keepdims,
                *last,
                inputs.take(0)?,
                ctx,
            )?),
            Op::TopK(c) => reduce::top_k(c, &mut inputs, ctx),
        }
    }
}

/// The ONNX op type of a node we do not run (its `Node` variant's name).
pub fn op_type_of(node: &Node) -> String {
    let debug = format!("{node:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("unknown")
        .to_string()
}

/// A node's inputs, taken one by one.
pub struct Inputs<B: Backend>(pub Vec<Option<Value<B>>>);

impl<B: Backend> Inputs<B> {
    /// Input `index`, which the operator needs.
    pub fn take(&mut self, index: usize) -> Result<Value<B>, OpError> {
        self.optional(index)
            .ok_or_else(|| OpError::new(format!("input {index} is missing")))
    }

    /// Input `index`, when given.
    pub fn optional(&mut self, index: usize) -> Option<Value<B>> {
        self.0.get_mut(index).and_then(Option::take)
    }

    /// Every input given, in order.
    pub fn all(self) -> Vec<Value<B>> {
        self.0.into_iter().flatten().collect()
    }

    /// Input `index` read on the host as i64s.
    pub fn host_i64s(&mut self, index: usize) -> Result<Vec<i64>, OpError> {
        self.take(index)?.to_i64s()
    }
}

/// Normalises a possibly negative axis against `rank`.
pub fn axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(OpError::new(format!(
            "axis {axis} is outside a rank-{rank} tensor"
        )))
    }
}
