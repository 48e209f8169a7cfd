//! Network operators: Batch/Instance/Layer normalisation, Gemm, Linear, MatMul (numpy
//! batching), Softmax, LogSoftmax and LRN. Convolutions live in `conv`, pooling in `pool`,
//! Resize in `resize`.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::Scalar;

use super::super::value::{Ctx, Data, Value};
use super::super::OpError;
use super::generate::narrow;
use super::shapes::{broadcast_shape, expand_to, reshape_to, to_rank};
use super::Inputs;

fn f(x: f64) -> Scalar {
    Scalar::Float(x)
}

/// A per-channel parameter `[C]` shaped to broadcast over `[N, C, ...]` of `rank`.
fn channel<B: Backend>(v: Value<B>, rank: usize, ctx: &Ctx<B>) -> FloatTensor<B> {
    let c = v.numel();
    let mut shape = vec![1; rank];
    shape[1] = c;
    reshape_to(v, shape).into_float(ctx)
}

pub fn batch_norm<B: Backend>(
    eps: f64,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let x = inputs.take(0)?;
    let (scale, bias, mean, var) = (
        inputs.take(1)?,
        inputs.take(2)?,
        inputs.take(3)?,
        inputs.take(4)?,
    );
    let rank = x.rank();
    let c = *x
        .shape
        .get(1)
        .ok_or_else(|| OpError::new("BatchNormalization: input has no channels"))?;
    for p in [&scale, &bias, &mean, &var] {
        if p.numel() != c {
            return Err(OpError::new(format!(
                "BatchNormalization: a parameter of {:?} for {c} channels",
                p.shape
            )));
        }
    }
    let shape = x.shape.clone();
    if super::host::on_cpu::<B>() {
        let (s, b, m, v) = (
            scale.to_f64s()?,
            bias.to_f64s()?,
            mean.to_f64s()?,
            var.to_f64s()?,
        );
        let a: Vec<f32> = (0..c)
            .map(|i| (s[i] / (v[i] + eps).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|i| (b[i] - m[i] * f64::from(a[i])) as f32)
            .collect();
        return super::host::channel_affine::<B>(x.into_float(ctx), &a, &shift)
            .map(|y| Value::new(Data::Float(y), shape))
            .ok_or_else(|| OpError::new("BatchNormalization: the host kernel could not run"));
    }
    let inv = B::float_recip(B::float_sqrt(B::float_add_scalar(
        channel(var, rank, ctx),
        f(eps),
    )));
    let a = B::float_mul(channel(scale, rank, ctx), inv);
    let b = B::float_sub(
        channel(bias, rank, ctx),
        B::float_mul(channel(mean, rank, ctx), a.clone()),
    );
    let y = B::float_add(B::float_mul(x.into_float(ctx), a), b);
    Ok(Value::new(Data::Float(y), shape))
}

pub fn instance_norm<B: Backend>(
    eps: f64,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let x = inputs.take(0)?;
    let (scale, bias) = (inputs.take(1)?, inputs.take(2)?);
    let rank = x.rank();
    if rank < 3 || scale.numel() != x.shape[1] || bias.numel() != x.shape[1] {
        return Err(OpError::new(format!(
            "InstanceNormalization: input {:?}",
            x.shape
        )));
    }
    let shape = x.shape.clone();
    let n: usize = shape[2..].iter().product();
    let flat = reshape_to(x, vec![shape[0], shape[1], n]).into_float(ctx);
    let mean = B::float_mean_dim(flat.clone(), 2);
    let centered = B::float_sub(flat, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 2);
    let normed = B::float_div(centered, B::float_sqrt(B::float_add_scalar(var, f(eps))));
    let normed = Value::new(Data::Float(normed), vec![shape[0], shape[1], n]);
    let normed = reshape_to(normed, shape.clone()).into_float(ctx);
    let y = B::float_add(
        B::float_mul(normed, channel(scale, rank, ctx)),
        channel(bias, rank, ctx),
    );
    Ok(Value::new(Data::Float(y), shape))
}

pub fn layer_norm<B: Backend>(
    eps: f64,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let x = inputs.take(0)?;
    let gamma = inputs.take(1)?;
    let beta = inputs.optional(2);
    let last = *x
        .shape
        .last()
        .ok_or_else(|| OpError::new("LayerNormalization: scalar input"))?;
    if gamma.numel() != last || beta.as_ref().is_some_and(|b| b.numel() != last) {
        return Err(OpError::new(format!(
            "LayerNormalization: scale {:?} for an input {:?}",
            gamma.shape, x.shape
        )));
    }
    let shape = x.shape.clone();
    // burn's fused kernel where the backend has one (burn-flex does), else its generic one.
    let g = reshape_to(gamma, vec![last]).into_float(ctx);
    let b = beta.map(|b| reshape_to(b, vec![last]).into_float(ctx));
    let y = B::layer_norm(x.into_float(ctx), g, b, eps);
    Ok(Value::new(Data::Float(y), shape))
}

fn transpose2<B: Backend>(v: Value<B>) -> Value<B> {
    super::shapes::permute(v, &[1, 0])
}

pub fn gemm<B: Backend>(
    c: &onnx_ir::gemm::GemmConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let a = inputs.take(0)?;
    let b = inputs.take(1)?;
    let bias = inputs.optional(2);
    if a.rank() != 2 || b.rank() != 2 {
        return Err(OpError::new(format!(
            "Gemm: inputs {:?} and {:?} are not matrices",
            a.shape, b.shape
        )));
    }
    // The common export (alpha = beta = 1, A as is, C one row or absent): one host GEMM.
    let n = if c.trans_b != 0 {
        b.shape[0]
    } else {
        b.shape[1]
    };
    let plain = c.trans_a == 0 && c.alpha == 1.0 && c.beta == 1.0;
    if super::host::on_cpu::<B>()
        && plain
        && a.shape[1]
            == (if c.trans_b != 0 {
                b.shape[1]
            } else {
                b.shape[0]
            })
        && bias
            .as_ref()
            .is_none_or(|v| v.numel() == n && v.shape.last() == Some(&n))
    {
        let wf = b.into_float(ctx);
        let bf = bias.map(|v| v.into_float(ctx));
        return super::host::linear::<B>(a.into_float(ctx), &wf, bf.as_ref(), c.trans_b != 0)
            .map(Value::float)
            .ok_or_else(|| OpError::new("Gemm: the host kernel could not read its tensors"));
    }
    let a = if c.trans_a != 0 { transpose2(a) } else { a };
    let b = if c.trans_b != 0 { transpose2(b) } else { b };
    let mut y = matmul(a, b, ctx)?;
    if c.alpha != 1.0 {
        let shape = y.shape.clone();
        y = Value::new(
            Data::Float(B::float_mul_scalar(y.into_float(ctx), f(c.alpha as f64))),
            shape,
        );
    }
    if let Some(bias) = bias {
        let shape = broadcast_shape(&y.shape, &bias.shape)?;
        if shape != y.shape {
            return Err(OpError::new(format!(
                "Gemm: C {:?} does not broadcast to {:?}",
                bias.shape, y.shape
            )));
        }
        let mut bias = to_rank(bias, 2).into_float(ctx);
        if c.beta != 1.0 {
            bias = B::float_mul_scalar(bias, f(c.beta as f64));
        }
        y = Value::new(Data::Float(B::float_add(y.into_float(ctx), bias)), shape);
    }
    Ok(y)
}

pub fn linear<B: Backend>(
    transpose_weight: bool,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let x = inputs.take(0)?;
    let w = inputs.take(1)?;
    let bias = inputs.optional(2);
    if w.rank() != 2 {
        return Err(OpError::new(format!("Linear: weight {:?}", w.shape)));
    }
    let k = *x.shape.last().unwrap_or(&0);
    let (k_w, n) = if transpose_weight {
        (w.shape[1], w.shape[0])
    } else {
        (w.shape[0], w.shape[1])
    };
    if super::host::on_cpu::<B>() && x.rank() >= 2 && k == k_w {
        let bias_ok = bias.as_ref().is_none_or(|b| b.numel() == n);
        if bias_ok {
            let wf = w.into_float(ctx);
            let bf = bias.map(|b| b.into_float(ctx));
            return super::host::linear::<B>(x.into_float(ctx), &wf, bf.as_ref(), transpose_weight)
                .map(Value::float)
                .ok_or_else(|| OpError::new("Linear: the host kernel could not read its tensors"));
        }
    }
    let w = if transpose_weight { transpose2(w) } else { w };
    let y = matmul(x, w, ctx)?;
    match bias {
        None => Ok(y),
        Some(b) => super::elementwise::binary(super::Binary::Add, y, b, ctx),
    }
}

/// numpy `matmul`: 1-D operands promoted, batch dimensions broadcast.
pub fn matmul<B: Backend>(a: Value<B>, b: Value<B>, ctx: &Ctx<B>) -> Result<Value<B>, OpError> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(OpError::new("MatMul: scalar operand"));
    }
    let (a_vec, b_vec) = (a.rank() == 1, b.rank() == 1);
    let a = if a_vec {
        reshape_to(a.clone(), vec![1, a.shape[0]])
    } else {
        a
    };
    let b = if b_vec {
        reshape_to(b.clone(), vec![b.shape[0], 1])
    } else {
        b
    };
    // A weight without batch dimensions: one GEMM over every leading row of `a`.
    if !b_vec && b.rank() == 2 && a.rank() > 2 {
        let mut shape = a.shape.clone();
        let k = shape[shape.len() - 1];
        let rows: usize = shape[..shape.len() - 1].iter().product();
        if k != b.shape[0] {
            return Err(OpError::new(format!(
                "MatMul: {:?} and {:?} differ in the inner dimension",
                a.shape, b.shape
            )));
        }
        let flat = reshape_to(a, vec![rows, k]);
        let n = b.shape[1];
        let y = Value::float(B::float_matmul(flat.into_float(ctx), b.into_float(ctx)));
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        return Ok(reshape_to(y, shape));
    }
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.shape[ra - 2], a.shape[ra - 1]);
    let (k2, n) = (b.shape[rb - 2], b.shape[rb - 1]);
    if k != k2 {
        return Err(OpError::new(format!(
            "MatMul: {:?} and {:?} differ in the inner dimension",
            a.shape, b.shape
        )));
    }
    let batch = broadcast_shape(&a.shape[..ra - 2], &b.shape[..rb - 2])?;
    let mut sa = batch.clone();
    sa.extend([m, k]);
    let mut sb = batch.clone();
    sb.extend([k, n]);
    let a = expand_to(to_rank(a, sa.len()), sa);
    let b = expand_to(to_rank(b, sb.len()), sb);
    let y = B::float_matmul(a.into_float(ctx), b.into_float(ctx));
    let mut shape = batch;
    if !a_vec {
        shape.push(m);
    }
    if !b_vec {
        shape.push(n);
    }
    let y = Value::float(y);
    Ok(reshape_to(y, shape))
}

pub fn softmax<B: Backend>(
    x: Value<B>,
    axis: usize,
    log: bool,
    legacy: bool,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let rank = x.rank();
    if rank == 0 {
        return Err(OpError::new("Softmax: scalar input"));
    }
    let axis = axis.min(rank - 1);
    let shape = x.shape.clone();
    let run = |t: FloatTensor<B>, dim| {
        if log {
            B::log_softmax(t, dim)
        } else {
            B::softmax(t, dim)
        }
    };
    if legacy && axis + 1 < rank {
        // Opsets before 13 take the softmax over everything from `axis` on, flattened.
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis..].iter().product();
        let flat = reshape_to(x, vec![outer, inner]).into_float(ctx);
        let y = Value::new(Data::Float(run(flat, 1)), vec![outer, inner]);
        return Ok(reshape_to(y, shape));
    }
    Ok(Value::new(Data::Float(run(x.into_float(ctx), axis)), shape))
}

pub fn lrn<B: Backend>(
    c: &onnx_ir::lrn::LrnConfig,
    x: Value<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    if x.rank() < 3 || c.size < 1 {
        return Err(OpError::new(format!(
            "LRN: input {:?}, size {}",
            x.shape, c.size
        )));
    }
    let size = c.size as usize;
    let channels = x.shape[1];
    let shape = x.shape.clone();
    let t = x.into_float(ctx);
    let square = Value::new(
        Data::Float(B::float_mul(t.clone(), t.clone())),
        shape.clone(),
    );
    let (before, after) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let mut padded_shape = shape.clone();
    padded_shape[1] = channels + before + after;
    let mut parts = Vec::new();
    for n in [before, 0, after] {
        if n == 0 {
            continue;
        }
        let mut s = shape.clone();
        s[1] = n;
        parts.push(Value::from_f32s(vec![0.0; s.iter().product()], s, ctx));
    }
    let padded = if before + after == 0 {
        square
    } else {
        let mut all = Vec::new();
        let mut it = parts.into_iter();
        if before > 0 {
            all.extend(it.next());
        }
        all.push(square);
        if after > 0 {
            all.extend(it.next());
        }
        super::shapes::cat(all, 1, padded_shape)
    };
    let mut sum: Option<FloatTensor<B>> = None;
    for i in 0..size {
        let window = narrow(padded.clone(), 1, i, channels).into_float(ctx);
        sum = Some(match sum {
            None => window,
            Some(s) => B::float_add(s, window),
        });
    }
    let sum = sum.ok_or_else(|| OpError::new("LRN: empty window"))?;
    let scale = B::float_add_scalar(
        B::float_mul_scalar(sum, f(c.alpha as f64 / size as f64)),
        f(c.bias as f64),
    );
    let denominator = B::float_powf_scalar(scale, f(c.beta as f64));
    Ok(Value::new(Data::Float(B::float_div(t, denominator)), shape))
}
