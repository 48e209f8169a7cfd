//! Element-wise operators: unary maths and activations, binary arithmetic, comparisons and
//! logic with numpy broadcasting, variadic Sum/Max/Min/Mean, Where, Clip and Cast.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Scalar};

use super::super::value::{Ctx, Data, Kind, Value};
use super::super::OpError;
use super::shapes::{broadcast_shape, expand_to, to_rank};
use super::Inputs;

/// A one-input element-wise operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Ceil,
    Floor,
    Round,
    Sign,
    Erf,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Relu,
    Sigmoid,
    Reciprocal,
    Softplus,
    Softsign,
    HardSwish,
    Gelu,
    Mish,
    IsNaN,
    Not,
    LeakyRelu(f64),
    HardSigmoid(f64, f64),
    Elu(f64),
    Selu(f64, f64),
    Celu(f64),
    /// (lambda, bias)
    Shrink(f64, f64),
}

/// A two-input element-wise operator (broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    And,
    Or,
    Xor,
    PRelu,
}

fn f(x: f64) -> Scalar {
    Scalar::Float(x)
}

pub fn unary<B: Backend>(op: Unary, x: Value<B>, ctx: &Ctx<B>) -> Result<Value<B>, OpError> {
    let shape = x.shape.clone();
    let bools = ctx.settings.bool_dtype;
    // Integer-preserving operators.
    if let Data::Int(t) = &x.data {
        let t = t.clone();
        let int = match op {
            Unary::Neg => Some(B::int_neg(t)),
            Unary::Abs => Some(B::int_abs(t)),
            Unary::Sign => Some(B::int_sign(t)),
            Unary::Relu => Some(B::int_clamp_min(t, Scalar::Int(0))),
            Unary::Ceil | Unary::Floor | Unary::Round => Some(t),
            _ => None,
        };
        if let Some(t) = int {
            return Ok(Value::new(Data::Int(t), shape));
        }
    }
    if op == Unary::Not {
        return Ok(Value::new(Data::Bool(B::bool_not(x.into_bool(ctx))), shape));
    }
    let t = x.into_float(ctx);
    let out = match op {
        Unary::IsNaN => return Ok(Value::new(Data::Bool(B::float_is_nan(t, bools)), shape)),
        Unary::Neg => B::float_neg(t),
        Unary::Abs => B::float_abs(t),
        Unary::Sqrt => B::float_sqrt(t),
        Unary::Exp => B::float_exp(t),
        Unary::Log => B::float_log(t),
        Unary::Ceil => B::float_ceil(t),
        Unary::Floor => B::float_floor(t),
        Unary::Round => B::float_round(t),
        Unary::Sign => B::float_sign(t),
        Unary::Erf => super::host::erf::<B>(t).unwrap_or_else(B::float_erf),
        Unary::Sin => B::float_sin(t),
        Unary::Cos => B::float_cos(t),
        Unary::Tan => B::float_tan(t),
        Unary::Asin => B::float_asin(t),
        Unary::Acos => B::float_acos(t),
        Unary::Atan => B::float_atan(t),
        Unary::Sinh => B::float_sinh(t),
        Unary::Cosh => B::float_cosh(t),
        Unary::Tanh => B::float_tanh(t),
        Unary::Asinh => B::float_asinh(t),
        Unary::Acosh => B::float_acosh(t),
        Unary::Atanh => B::float_atanh(t),
        Unary::Relu => B::relu(t),
        Unary::Sigmoid => B::sigmoid(t),
        Unary::Reciprocal => B::float_recip(t),
        Unary::Softplus => softplus::<B>(t),
        Unary::Softsign => {
            let denominator = B::float_add_scalar(B::float_abs(t.clone()), f(1.0));
            B::float_div(t, denominator)
        }
        Unary::HardSwish => {
            let gate = B::hard_sigmoid(t.clone(), f(1.0 / 6.0), f(0.5));
            B::float_mul(t, gate)
        }
        Unary::Gelu => super::host::gelu::<B>(t).unwrap_or_else(B::gelu),
        Unary::Mish => {
            let gate = B::float_tanh(softplus::<B>(t.clone()));
            B::float_mul(t, gate)
        }
        Unary::LeakyRelu(alpha) => B::leaky_relu(t, f(alpha)),
        Unary::HardSigmoid(alpha, beta) => B::hard_sigmoid(t, f(alpha), f(beta)),
        Unary::Elu(alpha) => elu::<B>(t, alpha, 1.0, ctx),
        Unary::Selu(alpha, gamma) => elu::<B>(t, alpha, gamma, ctx),
        Unary::Celu(alpha) => {
            // max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
            let positive = B::float_clamp_min(t.clone(), f(0.0));
            let scaled = B::float_exp(B::float_div_scalar(t, f(alpha)));
            let negative = B::float_mul_scalar(B::float_sub_scalar(scaled, f(1.0)), f(alpha));
            B::float_add(positive, B::float_clamp_max(negative, f(0.0)))
        }
        Unary::Shrink(lambda, bias) => {
            let low = B::float_lower_elem(t.clone(), f(-lambda), bools);
            let high = B::float_greater_elem(t.clone(), f(lambda), bools);
            let zero = B::float_mul_scalar(t.clone(), f(0.0));
            let out = B::float_mask_where(zero, low, B::float_add_scalar(t.clone(), f(bias)));
            B::float_mask_where(out, high, B::float_sub_scalar(t, f(bias)))
        }
        Unary::Not => return Err(OpError::new("Not reached the float path")),
    };
    Ok(Value::new(Data::Float(out), shape))
}

fn softplus<B: Backend>(t: burn::tensor::ops::FloatTensor<B>) -> burn::tensor::ops::FloatTensor<B> {
    B::float_log1p(B::float_exp(t))
}

/// `gamma * (x > 0 ? x : alpha * (exp(x) - 1))`.
fn elu<B: Backend>(
    t: burn::tensor::ops::FloatTensor<B>,
    alpha: f64,
    gamma: f64,
    ctx: &Ctx<B>,
) -> burn::tensor::ops::FloatTensor<B> {
    let negative = B::float_lower_equal_elem(t.clone(), f(0.0), ctx.settings.bool_dtype);
    let curve = B::float_mul_scalar(
        B::float_sub_scalar(B::float_exp(t.clone()), f(1.0)),
        f(alpha),
    );
    let out = B::float_mask_where(t, negative, curve);
    if gamma == 1.0 {
        out
    } else {
        B::float_mul_scalar(out, f(gamma))
    }
}

/// Two operands and the shape they broadcast to.
type Aligned<B> = (Value<B>, Value<B>, Vec<usize>);

/// Both operands at the broadcast rank and a common kind.
fn align<B: Backend>(
    a: Value<B>,
    b: Value<B>,
    kind: Kind,
    ctx: &Ctx<B>,
) -> Result<Aligned<B>, OpError> {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let rank = shape.len();
    let a = to_rank(a.to_kind(kind, ctx), rank);
    let b = to_rank(b.to_kind(kind, ctx), rank);
    Ok((a, b, shape))
}

pub fn binary<B: Backend>(
    op: Binary,
    a: Value<B>,
    b: Value<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let bools = ctx.settings.bool_dtype;
    let both_int = a.kind() != Kind::Float && b.kind() != Kind::Float;
    match op {
        Binary::And | Binary::Or | Binary::Xor => {
            let (a, b, shape) = align(a, b, Kind::Bool, ctx)?;
            let (a, b) = (a.into_bool(ctx), b.into_bool(ctx));
            let out = match op {
                Binary::And => B::bool_and(a, b),
                Binary::Or => B::bool_or(a, b),
                _ => B::bool_xor(a, b),
            };
            Ok(Value::new(Data::Bool(out), shape))
        }
        Binary::Equal
        | Binary::Greater
        | Binary::GreaterOrEqual
        | Binary::Less
        | Binary::LessOrEqual => {
            if a.kind() == Kind::Bool && b.kind() == Kind::Bool && op == Binary::Equal {
                let (a, b, shape) = align(a, b, Kind::Bool, ctx)?;
                let out = B::bool_equal(a.into_bool(ctx), b.into_bool(ctx));
                return Ok(Value::new(Data::Bool(out), shape));
            }
            if both_int {
                let (a, b, shape) = align(a, b, Kind::Int, ctx)?;
                let (a, b) = (a.into_int(ctx), b.into_int(ctx));
                let out = match op {
                    Binary::Equal => B::int_equal(a, b, bools),
                    Binary::Greater => B::int_greater(a, b, bools),
                    Binary::GreaterOrEqual => B::int_greater_equal(a, b, bools),
                    Binary::Less => B::int_lower(a, b, bools),
                    _ => B::int_lower_equal(a, b, bools),
                };
                return Ok(Value::new(Data::Bool(out), shape));
            }
            let (a, b, shape) = align(a, b, Kind::Float, ctx)?;
            let (a, b) = (a.into_float(ctx), b.into_float(ctx));
            let out = match op {
                Binary::Equal => B::float_equal(a, b, bools),
                Binary::Greater => B::float_greater(a, b, bools),
                Binary::GreaterOrEqual => B::float_greater_equal(a, b, bools),
                Binary::Less => B::float_lower(a, b, bools),
                _ => B::float_lower_equal(a, b, bools),
            };
            Ok(Value::new(Data::Bool(out), shape))
        }
        Binary::PRelu => {
            // Older exports give one slope per channel, `[C]` against `[N, C, ...]`.
            let b = if b.rank() == 1
                && a.rank() > 2
                && b.shape[0] == a.shape[1]
                && b.shape[0] != *a.shape.last().unwrap_or(&0)
            {
                let mut shape = vec![1; a.rank() - 1];
                shape[0] = b.shape[0];
                super::shapes::reshape_to(b, shape)
            } else {
                b
            };
            let (x, slope, shape) = align(a, b, Kind::Float, ctx)?;
            let x = expand_to(x, shape.clone()).into_float(ctx);
            let slope = expand_to(slope, shape.clone()).into_float(ctx);
            let negative = B::float_lower_elem(x.clone(), f(0.0), bools);
            let scaled = B::float_mul(x.clone(), slope);
            Ok(Value::new(
                Data::Float(B::float_mask_where(x, negative, scaled)),
                shape,
            ))
        }
        Binary::Max | Binary::Min => {
            let kind = if both_int { Kind::Int } else { Kind::Float };
            let (a, b, shape) = align(a, b, kind, ctx)?;
            let a = expand_to(a, shape.clone());
            let b = expand_to(b, shape.clone());
            let data = if kind == Kind::Int {
                let (a, b) = (a.into_int(ctx), b.into_int(ctx));
                let take_b = if op == Binary::Max {
                    B::int_greater(b.clone(), a.clone(), bools)
                } else {
                    B::int_lower(b.clone(), a.clone(), bools)
                };
                Data::Int(B::int_mask_where(a, take_b, b))
            } else {
                let (a, b) = (a.into_float(ctx), b.into_float(ctx));
                let take_b = if op == Binary::Max {
                    B::float_greater(b.clone(), a.clone(), bools)
                } else {
                    B::float_lower(b.clone(), a.clone(), bools)
                };
                // NaN propagates: a NaN in `b` is taken too.
                let nan_b = B::float_is_nan(b.clone(), bools);
                let take_b = B::bool_or(take_b, nan_b);
                Data::Float(B::float_mask_where(a, take_b, b))
            };
            Ok(Value::new(data, shape))
        }
        Binary::Add | Binary::Sub | Binary::Mul | Binary::Div | Binary::Pow => {
            if both_int && op != Binary::Pow {
                let (a, b, shape) = align(a, b, Kind::Int, ctx)?;
                let (a, b) = (a.into_int(ctx), b.into_int(ctx));
                let out = match op {
                    Binary::Add => B::int_add(a, b),
                    Binary::Sub => B::int_sub(a, b),
                    Binary::Mul => B::int_mul(a, b),
                    _ => {
                        if b_has_zero::<B>(&b)? {
                            return Err(OpError::new("integer division by zero"));
                        }
                        B::int_div(a, b)
                    }
                };
                return Ok(Value::new(Data::Int(out), shape));
            }
            let int_result = both_int && a.kind() == Kind::Int;
            let (a, b, shape) = align(a, b, Kind::Float, ctx)?;
            let (a, b) = (a.into_float(ctx), b.into_float(ctx));
            let out = match op {
                Binary::Add => B::float_add(a, b),
                Binary::Sub => B::float_sub(a, b),
                Binary::Mul => B::float_mul(a, b),
                Binary::Div => B::float_div(a, b),
                _ => B::float_powf(a, b),
            };
            let value = Value::new(Data::Float(out), shape);
            Ok(if int_result {
                value.to_kind(Kind::Int, ctx)
            } else {
                value
            })
        }
    }
}

fn b_has_zero<B: Backend>(b: &burn::tensor::ops::IntTensor<B>) -> Result<bool, OpError> {
    let v = Value::<B>::int(b.clone());
    Ok(v.to_i64s()?.contains(&0))
}

pub fn variadic<B: Backend>(
    op: Binary,
    mean: bool,
    values: Vec<Value<B>>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let count = values.len();
    let mut iter = values.into_iter();
    let mut acc = iter
        .next()
        .ok_or_else(|| OpError::new("needs at least one input"))?;
    for v in iter {
        acc = binary(op, acc, v, ctx)?;
    }
    if mean && count > 1 {
        let shape = acc.shape.clone();
        let t = B::float_div_scalar(acc.into_float(ctx), f(count as f64));
        acc = Value::new(Data::Float(t), shape);
    }
    Ok(acc)
}

pub fn select_where<B: Backend>(
    condition: Value<B>,
    x: Value<B>,
    y: Value<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let shape = broadcast_shape(&broadcast_shape(&condition.shape, &x.shape)?, &y.shape)?;
    let kind = if x.kind() == y.kind() {
        x.kind()
    } else {
        Kind::Float
    };
    let mask = expand_to(condition.to_kind(Kind::Bool, ctx), shape.clone()).into_bool(ctx);
    let x = expand_to(x.to_kind(kind, ctx), shape.clone());
    let y = expand_to(y.to_kind(kind, ctx), shape.clone());
    let data = match (y.data, x.data) {
        (Data::Float(y), Data::Float(x)) => Data::Float(B::float_mask_where(y, mask, x)),
        (Data::Int(y), Data::Int(x)) => Data::Int(B::int_mask_where(y, mask, x)),
        (Data::Bool(y), Data::Bool(x)) => Data::Bool(B::bool_mask_where(y, mask, x)),
        _ => return Err(OpError::new("Where: x and y of different kinds")),
    };
    Ok(Value::new(data, shape))
}

pub fn clip<B: Backend>(
    config: &onnx_ir::clip::ClipConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::clip::ClipInput;
    let x = inputs.take(0)?;
    let mut bound = |b: &Option<ClipInput>| -> Result<Option<f64>, OpError> {
        match b {
            None => Ok(None),
            Some(ClipInput::Static(v)) => Ok(Some(*v)),
            Some(ClipInput::Runtime(r)) => match inputs.optional(r.input_index) {
                Some(v) => Ok(v.to_f64s()?.first().copied()),
                None => Ok(None),
            },
        }
    };
    let (min, max) = (bound(&config.min)?, bound(&config.max)?);
    let shape = x.shape.clone();
    let data = match x.data {
        Data::Int(t) => {
            let t = match min {
                Some(m) => B::int_clamp_min(t, Scalar::Int(m as i64)),
                None => t,
            };
            Data::Int(match max {
                Some(m) => B::int_clamp_max(t, Scalar::Int(m as i64)),
                None => t,
            })
        }
        _ => {
            let t = x.into_float(ctx);
            let t = match min {
                Some(m) => B::float_clamp_min(t, f(m)),
                None => t,
            };
            Data::Float(match max {
                Some(m) => B::float_clamp_max(t, f(m)),
                None => t,
            })
        }
    };
    Ok(Value::new(data, shape))
}

pub fn cast<B: Backend>(x: Value<B>, to: DType, ctx: &Ctx<B>) -> Value<B> {
    let kind = match to {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::Flex32 => Kind::Float,
        DType::Bool(_) => Kind::Bool,
        _ => Kind::Int,
    };
    x.to_kind(kind, ctx)
}
