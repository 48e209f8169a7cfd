//! Reductions: ReduceMax/Min/Mean/Sum/Prod/SumSquare/L1/L2/LogSum/LogSumExp over any axes,
//! ArgMax/ArgMin (first or last index), and TopK.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::Scalar;

use super::super::value::{Ctx, Data, Kind, Value};
use super::super::OpError;
use super::generate::narrow;
use super::shapes::reshape_to;
use super::Inputs;

/// Which reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Max,
    Min,
    Mean,
    Sum,
    Prod,
    SumSquare,
    L1,
    L2,
    LogSum,
    LogSumExp,
}

fn over<B: Backend>(
    t: FloatTensor<B>,
    dims: &[usize],
    each: impl Fn(FloatTensor<B>, usize) -> FloatTensor<B>,
) -> FloatTensor<B> {
    dims.iter().fold(t, |t, &d| each(t, d))
}

pub fn reduce<B: Backend>(
    op: Reduce,
    config: &onnx_ir::reduce::ReduceConfig,
    x: Value<B>,
    runtime_axes: Option<Vec<i64>>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let rank = x.rank();
    let mut dims: Vec<usize> = match runtime_axes {
        // Axes given as a (non-constant) input since opset 13/18.
        Some(axes) if !axes.is_empty() => axes
            .iter()
            .map(|&a| super::axis(a, rank))
            .collect::<Result<_, _>>()?,
        _ if config.dims.is_empty() => (0..rank).collect(),
        _ => config.dims.clone(),
    };
    dims.sort_unstable();
    dims.dedup();
    if let Some(&d) = dims.iter().find(|&&d| d >= rank.max(1)) {
        return Err(OpError::new(format!(
            "Reduce: axis {d} of a rank-{rank} input"
        )));
    }
    if rank == 0 {
        return Ok(x);
    }
    let kind = x.kind();
    let mut kept = x.shape.clone();
    for &d in &dims {
        kept[d] = 1;
    }
    if dims.iter().any(|&d| x.shape[d] == 0) || x.numel() == 0 {
        // An empty set reduces to the operation's identity.
        let fill = match op {
            Reduce::Max | Reduce::LogSum | Reduce::LogSumExp => f32::NEG_INFINITY,
            Reduce::Min => f32::INFINITY,
            Reduce::Prod => 1.0,
            Reduce::Mean => f32::NAN,
            _ => 0.0,
        };
        let shape: Vec<usize> = if config.keepdims {
            kept.clone()
        } else {
            (0..rank)
                .filter(|d| !dims.contains(d))
                .map(|d| kept[d])
                .collect()
        };
        let n = shape.iter().product();
        let value = Value::from_f32s(vec![fill; n], shape, ctx);
        return Ok(if kind == Kind::Int {
            value.to_kind(Kind::Int, ctx)
        } else {
            value
        });
    }
    let t = x.into_float(ctx);
    let y = match op {
        Reduce::Max => over::<B>(t, &dims, |t, d| B::float_max_dim(t, d)),
        Reduce::Min => over::<B>(t, &dims, |t, d| B::float_min_dim(t, d)),
        Reduce::Mean => over::<B>(t, &dims, |t, d| B::float_mean_dim(t, d)),
        Reduce::Sum => over::<B>(t, &dims, |t, d| B::float_sum_dim(t, d)),
        Reduce::Prod => over::<B>(t, &dims, |t, d| B::float_prod_dim(t, d)),
        Reduce::SumSquare => over::<B>(B::float_mul(t.clone(), t), &dims, |t, d| {
            B::float_sum_dim(t, d)
        }),
        Reduce::L1 => over::<B>(B::float_abs(t), &dims, |t, d| B::float_sum_dim(t, d)),
        Reduce::L2 => B::float_sqrt(over::<B>(B::float_mul(t.clone(), t), &dims, |t, d| {
            B::float_sum_dim(t, d)
        })),
        Reduce::LogSum => B::float_log(over::<B>(t, &dims, |t, d| B::float_sum_dim(t, d))),
        Reduce::LogSumExp => {
            let max = over::<B>(t.clone(), &dims, |t, d| B::float_max_dim(t, d));
            let shifted = B::float_exp(B::float_sub(t, max.clone()));
            B::float_add(
                B::float_log(over::<B>(shifted, &dims, |t, d| B::float_sum_dim(t, d))),
                max,
            )
        }
    };
    let mut value = Value::new(Data::Float(y), kept.clone());
    if kind == Kind::Int && matches!(op, Reduce::Max | Reduce::Min | Reduce::Sum | Reduce::Prod) {
        value = value.to_kind(Kind::Int, ctx);
    }
    if config.keepdims {
        return Ok(value);
    }
    let shape: Vec<usize> = (0..rank)
        .filter(|d| !dims.contains(d))
        .map(|d| kept[d])
        .collect();
    Ok(reshape_to(value, shape))
}

pub fn arg_extreme<B: Backend>(
    max: bool,
    axis: usize,
    keepdims: bool,
    last: bool,
    x: Value<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let rank = x.rank();
    let dim = *x
        .shape
        .get(axis)
        .ok_or_else(|| OpError::new(format!("ArgMax/ArgMin: axis {axis} of {:?}", x.shape)))?;
    if dim == 0 {
        return Err(OpError::new("ArgMax/ArgMin: empty axis"));
    }
    let mut t = x.into_float(ctx);
    if last {
        t = B::float_flip(t, &[axis]);
    }
    let ints = ctx.settings.int_dtype;
    let mut idx = if max {
        B::float_argmax(t, axis, ints)
    } else {
        B::float_argmin(t, axis, ints)
    };
    if last {
        // index in the flipped tensor -> dim - 1 - index
        idx = B::int_add_scalar(B::int_neg(idx), Scalar::Int(dim as i64 - 1));
    }
    let mut kept = Value::int(idx);
    if !keepdims {
        let shape: Vec<usize> = (0..rank)
            .filter(|&d| d != axis)
            .map(|d| kept.shape[d])
            .collect();
        kept = reshape_to(kept, shape);
    }
    Ok(kept)
}

pub fn top_k<B: Backend>(
    config: &onnx_ir::topk::TopKConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Vec<Value<B>>, OpError> {
    use onnx_ir::topk::TopKInput;
    let x = inputs.take(0)?;
    let k = match &config.k {
        TopKInput::Static(k) => *k as i64,
        TopKInput::Runtime(r) => inputs
            .host_i64s(r.input_index)?
            .first()
            .copied()
            .ok_or_else(|| OpError::new("TopK: empty k"))?,
    };
    let axis = config.axis;
    let dim = *x
        .shape
        .get(axis)
        .ok_or_else(|| OpError::new(format!("TopK: axis {axis} of {:?}", x.shape)))?;
    if k < 0 || k as usize > dim {
        return Err(OpError::new(format!(
            "TopK: k = {k} on a dimension of {dim}"
        )));
    }
    let k = k as usize;
    let kind = x.kind();
    let shape = x.shape.clone();
    let (values, indices) =
        B::float_sort_with_indices(x.into_float(ctx), axis, true, ctx.settings.int_dtype);
    let values = narrow(Value::new(Data::Float(values), shape.clone()), axis, 0, k);
    let indices = narrow(Value::new(Data::Int(indices), shape), axis, 0, k);
    let values = if kind == Kind::Int {
        values.to_kind(Kind::Int, ctx)
    } else {
        values
    };
    Ok(vec![values, indices])
}
