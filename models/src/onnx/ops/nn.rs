//! Network operators over burn's module kernels: Conv and ConvTranspose (1-D, 2-D, groups,
//! dilations, explicit, asymmetric and automatic padding), Max/Average/Global pooling,
//! Batch/Instance/Layer normalisation, Gemm, Linear, MatMul (numpy batching), Softmax,
//! LogSoftmax and LRN. Resize lives in `resize`.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::Scalar;
use onnx_ir::padding::{AutoPad, PaddingConfig1d, PaddingConfig2d, PaddingConfig3d};

use super::super::value::{Ctx, Data, Value};
use super::super::OpError;
use super::generate::narrow;
use super::shapes::{broadcast_shape, expand_to, reshape_to, to_rank};
use super::Inputs;

fn f(x: f64) -> Scalar {
    Scalar::Float(x)
}

/// A convolution's settings over 1 or 2 spatial dimensions.
#[derive(Debug, Clone)]
pub struct Conv {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    groups: usize,
    /// (begin, end) per spatial dimension.
    pads: Vec<(usize, usize)>,
    auto_pad: AutoPad,
}

fn pads_1d(p: &PaddingConfig1d) -> Vec<(usize, usize)> {
    match p {
        PaddingConfig1d::Valid => vec![(0, 0)],
        PaddingConfig1d::Explicit(l, r) => vec![(*l, *r)],
    }
}

fn pads_2d(p: &PaddingConfig2d) -> Vec<(usize, usize)> {
    match p {
        PaddingConfig2d::Valid => vec![(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            vec![(*top, *bottom), (*left, *right)]
        }
    }
}

fn pads_3d(p: &PaddingConfig3d) -> Vec<(usize, usize)> {
    match p {
        PaddingConfig3d::Valid => vec![(0, 0); 3],
        PaddingConfig3d::Explicit(front, top, left, back, bottom, right) => {
            vec![(*front, *back), (*top, *bottom), (*left, *right)]
        }
    }
}

impl Conv {
    pub fn from_3d(c: &onnx_ir::conv3d::Conv3dConfig) -> Self {
        Self {
            kernel: c.kernel_size.to_vec(),
            stride: c.stride.to_vec(),
            dilation: c.dilation.to_vec(),
            groups: c.groups,
            pads: pads_3d(&c.padding),
            auto_pad: c.auto_pad.clone(),
        }
    }

    pub fn from_1d(c: &onnx_ir::conv1d::Conv1dConfig) -> Self {
        Self {
            kernel: vec![c.kernel_size],
            stride: vec![c.stride],
            dilation: vec![c.dilation],
            groups: c.groups,
            pads: pads_1d(&c.padding),
            auto_pad: c.auto_pad.clone(),
        }
    }

    pub fn from_2d(c: &onnx_ir::conv2d::Conv2dConfig) -> Self {
        Self {
            kernel: c.kernel_size.to_vec(),
            stride: c.stride.to_vec(),
            dilation: c.dilation.to_vec(),
            groups: c.groups,
            pads: pads_2d(&c.padding),
            auto_pad: c.auto_pad.clone(),
        }
    }
}

/// The (begin, end) pads of each spatial dimension for an input of `spatial` sizes.
fn resolve_pads(
    auto_pad: &AutoPad,
    explicit: &[(usize, usize)],
    spatial: &[usize],
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
) -> Vec<(usize, usize)> {
    match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => (0..spatial.len())
            .map(|i| {
                let s = stride[i].max(1);
                let out = spatial[i].div_ceil(s);
                let span = (kernel[i] - 1) * dilation[i] + 1;
                let total = ((out.saturating_sub(1)) * s + span).saturating_sub(spatial[i]);
                let small = total / 2;
                if matches!(auto_pad, AutoPad::SameUpper) {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            })
            .collect(),
        AutoPad::Valid => vec![(0, 0); spatial.len()],
        AutoPad::NotSet => explicit.to_vec(),
    }
}

/// Pads the spatial dimensions (from dim 2) with `fill` where begin and end differ, and answers
/// the symmetric padding left for the kernel.
fn pre_pad<B: Backend>(
    x: Value<B>,
    pads: &[(usize, usize)],
    fill: f32,
    ctx: &Ctx<B>,
) -> Result<(Value<B>, Vec<usize>), OpError> {
    if pads.iter().all(|(a, b)| a == b) {
        return Ok((x, pads.iter().map(|p| p.0).collect()));
    }
    let mut x = x;
    for (i, &(begin, end)) in pads.iter().enumerate() {
        let dim = i + 2;
        for (n, at_start) in [(begin, true), (end, false)] {
            if n == 0 {
                continue;
            }
            let mut shape = x.shape.clone();
            shape[dim] = n;
            let count = shape.iter().product();
            let part = Value::from_f32s(vec![fill; count], shape, ctx);
            let mut out = x.shape.clone();
            out[dim] += n;
            let parts = if at_start {
                vec![part, x]
            } else {
                vec![x, part]
            };
            x = super::shapes::cat(parts, dim, out);
        }
    }
    Ok((x, vec![0; pads.len()]))
}

fn spatial_check<B: Backend>(x: &Value<B>, dims: usize, op: &str) -> Result<(), OpError> {
    if x.rank() != dims + 2 {
        return Err(OpError::new(format!(
            "{op}: input {:?} is not [N, C, {}]",
            x.shape,
            vec!["D"; dims].join(", ")
        )));
    }
    Ok(())
}

pub fn conv<B: Backend>(
    c: &Conv,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let x = inputs.take(0)?;
    let w = inputs.take(1)?;
    let bias = inputs.optional(2);
    let dims = c.kernel.len();
    spatial_check(&x, dims, "Conv")?;
    let groups = c.groups.max(1);
    if w.rank() != dims + 2
        || x.shape[1] != w.shape[1] * groups
        || w.shape[0] % groups != 0
        || w.shape[2..] != c.kernel[..]
    {
        return Err(OpError::new(format!(
            "Conv: input {:?} does not fit weight {:?} with {groups} groups",
            x.shape, w.shape
        )));
    }
    let pads = resolve_pads(
        &c.auto_pad,
        &c.pads,
        &x.shape[2..],
        &c.kernel,
        &c.stride,
        &c.dilation,
    );
    let (x, pad) = pre_pad(x, &pads, 0.0, ctx)?;
    for (i, p) in pad.iter().enumerate() {
        let span = (c.kernel[i] - 1) * c.dilation[i] + 1;
        if x.shape[i + 2] + 2 * p < span {
            return Err(OpError::new(format!(
                "Conv: input {:?} is smaller than the kernel {:?}",
                x.shape, c.kernel
            )));
        }
    }
    let bias = bias.map(|b| b.into_float(ctx));
    let (xf, wf) = (x.into_float(ctx), w.into_float(ctx));
    let out = if dims == 1 {
        B::conv1d(
            xf,
            wf,
            bias,
            ConvOptions::new([c.stride[0]], [pad[0]], [c.dilation[0]], groups),
        )
    } else if dims == 3 {
        let [s, d] = [&c.stride, &c.dilation].map(|v| [v[0], v[1], v[2]]);
        B::conv3d(
            xf,
            wf,
            bias,
            ConvOptions::new(s, [pad[0], pad[1], pad[2]], d, groups),
        )
    } else {
        B::conv2d(
            xf,
            wf,
            bias,
            ConvOptions::new(
                [c.stride[0], c.stride[1]],
                [pad[0], pad[1]],
                [c.dilation[0], c.dilation[1]],
                groups,
            ),
        )
    };
    Ok(Value::float(out))
}

/// A transposed convolution's settings over 1 or 2 spatial dimensions.
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    stride: Vec<usize>,
    dilation: Vec<usize>,
    padding: Vec<usize>,
    padding_out: Vec<usize>,
    groups: usize,
}

impl ConvTranspose {
    pub fn from_1d(c: &onnx_ir::conv_transpose1d::ConvTranspose1dConfig) -> Self {
        Self {
            stride: vec![c.stride],
            dilation: vec![c.dilation],
            padding: vec![c.padding],
            padding_out: vec![c.padding_out],
            groups: c.groups,
        }
    }

    pub fn from_2d(c: &onnx_ir::conv_transpose2d::ConvTranspose2dConfig) -> Self {
        Self {
            stride: c.stride.to_vec(),
            dilation: c.dilation.to_vec(),
            padding: c.padding.to_vec(),
            padding_out: c.padding_out.to_vec(),
            groups: c.groups,
        }
    }
}

pub fn conv_transpose<B: Backend>(
    c: &ConvTranspose,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let x = inputs.take(0)?;
    let w = inputs.take(1)?;
    let bias = inputs.optional(2).map(|b| b.into_float(ctx));
    let dims = c.stride.len();
    spatial_check(&x, dims, "ConvTranspose")?;
    let groups = c.groups.max(1);
    if w.rank() != dims + 2 || x.shape[1] != w.shape[0] || w.shape[0] % groups != 0 {
        return Err(OpError::new(format!(
            "ConvTranspose: input {:?} does not fit weight {:?}",
            x.shape, w.shape
        )));
    }
    for i in 0..dims {
        let full = (x.shape[i + 2].saturating_sub(1)) * c.stride[i]
            + (w.shape[i + 2] - 1) * c.dilation[i]
            + 1
            + c.padding_out[i];
        if full <= 2 * c.padding[i] {
            return Err(OpError::new("ConvTranspose: padding leaves no output"));
        }
    }
    let (xf, wf) = (x.into_float(ctx), w.into_float(ctx));
    let out = if dims == 1 {
        B::conv_transpose1d(
            xf,
            wf,
            bias,
            ConvTransposeOptions::new(
                [c.stride[0]],
                [c.padding[0]],
                [c.padding_out[0]],
                [c.dilation[0]],
                groups,
            ),
        )
    } else {
        B::conv_transpose2d(
            xf,
            wf,
            bias,
            ConvTransposeOptions::new(
                [c.stride[0], c.stride[1]],
                [c.padding[0], c.padding[1]],
                [c.padding_out[0], c.padding_out[1]],
                [c.dilation[0], c.dilation[1]],
                groups,
            ),
        )
    };
    Ok(Value::float(out))
}

/// A max or average pooling's settings over 1 or 2 spatial dimensions.
#[derive(Debug, Clone)]
pub struct Pool {
    max: bool,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    pads: Vec<(usize, usize)>,
    auto_pad: AutoPad,
    ceil_mode: bool,
    count_include_pad: bool,
}

impl Pool {
    pub fn max_3d(c: &onnx_ir::max_pool3d::MaxPool3dConfig) -> Self {
        Self {
            max: true,
            kernel: c.kernel_size.to_vec(),
            stride: c.strides.to_vec(),
            dilation: c.dilation.to_vec(),
            pads: pads_3d(&c.padding),
            auto_pad: c.auto_pad.clone(),
            ceil_mode: c.ceil_mode,
            count_include_pad: false,
        }
    }

    pub fn avg_3d(c: &onnx_ir::avg_pool3d::AvgPool3dConfig) -> Self {
        Self {
            max: false,
            kernel: c.kernel_size.to_vec(),
            stride: c.strides.to_vec(),
            dilation: c.dilation.to_vec(),
            pads: pads_3d(&c.padding),
            auto_pad: c.auto_pad.clone(),
            ceil_mode: c.ceil_mode,
            count_include_pad: c.count_include_pad,
        }
    }

    pub fn max_1d(c: &onnx_ir::max_pool1d::MaxPool1dConfig) -> Self {
        Self {
            max: true,
            kernel: vec![c.kernel_size],
            stride: vec![c.stride],
            dilation: vec![c.dilation],
            pads: pads_1d(&c.padding),
            auto_pad: c.auto_pad.clone(),
            ceil_mode: c.ceil_mode,
            count_include_pad: false,
        }
    }

    pub fn max_2d(c: &onnx_ir::max_pool2d::MaxPool2dConfig) -> Self {
        Self {
            max: true,
            kernel: c.kernel_size.to_vec(),
            stride: c.strides.to_vec(),
            dilation: c.dilation.to_vec(),
            pads: pads_2d(&c.padding),
            auto_pad: c.auto_pad.clone(),
            ceil_mode: c.ceil_mode,
            count_include_pad: false,
        }
    }

    pub fn avg_1d(c: &onnx_ir::avg_pool1d::AvgPool1dConfig) -> Self {
        Self {
            max: false,
            kernel: vec![c.kernel_size],
            stride: vec![c.stride],
            dilation: vec![c.dilation],
            pads: pads_1d(&c.padding),
            auto_pad: c.auto_pad.clone(),
            ceil_mode: c.ceil_mode,
            count_include_pad: c.count_include_pad,
        }
    }

    pub fn avg_2d(c: &onnx_ir::avg_pool2d::AvgPool2dConfig) -> Self {
        Self {
            max: false,
            kernel: c.kernel_size.to_vec(),
            stride: c.strides.to_vec(),
            dilation: c.dilation.to_vec(),
            pads: pads_2d(&c.padding),
            auto_pad: c.auto_pad.clone(),
            ceil_mode: c.ceil_mode,
            count_include_pad: c.count_include_pad,
        }
    }
}

pub fn pool<B: Backend>(p: &Pool, x: Value<B>, ctx: &Ctx<B>) -> Result<Value<B>, OpError> {
    let dims = p.kernel.len();
    spatial_check(&x, dims, if p.max { "MaxPool" } else { "AveragePool" })?;
    if !p.max && p.dilation.iter().any(|&d| d != 1) {
        return Err(OpError::new(
            "AveragePool: dilations other than 1 are not supported",
        ));
    }
    let pads = resolve_pads(
        &p.auto_pad,
        &p.pads,
        &x.shape[2..],
        &p.kernel,
        &p.stride,
        &p.dilation,
    );
    let asymmetric = pads.iter().any(|(a, b)| a != b);
    if asymmetric && !p.max && !p.count_include_pad {
        return Err(OpError::new(
            "AveragePool: asymmetric pads with count_include_pad = 0 are not supported",
        ));
    }
    let fill = if p.max { f32::NEG_INFINITY } else { 0.0 };
    let (x, pad) = pre_pad(x, &pads, fill, ctx)?;
    for (i, side) in pad.iter().enumerate() {
        let span = (p.kernel[i] - 1) * p.dilation[i] + 1;
        if x.shape[i + 2] + 2 * side < span {
            return Err(OpError::new(format!(
                "Pool: input {:?} is smaller than the kernel {:?}",
                x.shape, p.kernel
            )));
        }
    }
    if dims == 3 {
        return pool3d(p, x, &pad, ctx);
    }
    let t = x.into_float(ctx);
    let out = match (dims, p.max) {
        (1, true) => B::max_pool1d(
            t,
            p.kernel[0],
            p.stride[0],
            pad[0],
            p.dilation[0],
            p.ceil_mode,
        ),
        (1, false) => B::avg_pool1d(
            t,
            p.kernel[0],
            p.stride[0],
            pad[0],
            p.count_include_pad,
            p.ceil_mode,
        ),
        (_, true) => B::max_pool2d(
            t,
            [p.kernel[0], p.kernel[1]],
            [p.stride[0], p.stride[1]],
            [pad[0], pad[1]],
            [p.dilation[0], p.dilation[1]],
            p.ceil_mode,
        ),
        (_, false) => B::avg_pool2d(
            t,
            [p.kernel[0], p.kernel[1]],
            [p.stride[0], p.stride[1]],
            [pad[0], pad[1]],
            p.count_include_pad,
            p.ceil_mode,
        ),
    };
    Ok(Value::float(out))
}

/// A 3-D pooling as a 2-D pooling over (H, W) then a 1-D pooling over D: max and sum (and the
/// count of cells inside the input) are separable, so both kinds are exact.
fn pool3d<B: Backend>(
    p: &Pool,
    x: Value<B>,
    pad: &[usize],
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let [n, c, d, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]];
    let plane = reshape_to(x, vec![n, c * d, h, w]).into_float(ctx);
    let (k, s, dl) = (&p.kernel, &p.stride, &p.dilation);
    let plane = if p.max {
        B::max_pool2d(
            plane,
            [k[1], k[2]],
            [s[1], s[2]],
            [pad[1], pad[2]],
            [dl[1], dl[2]],
            p.ceil_mode,
        )
    } else {
        B::avg_pool2d(
            plane,
            [k[1], k[2]],
            [s[1], s[2]],
            [pad[1], pad[2]],
            p.count_include_pad,
            p.ceil_mode,
        )
    };
    let plane = Value::float(plane);
    let (h2, w2) = (plane.shape[2], plane.shape[3]);
    let cells = h2 * w2;
    let depth = reshape_to(plane, vec![n, c, d, cells]);
    let depth = super::shapes::permute(depth, &[0, 1, 3, 2]);
    let depth = reshape_to(depth, vec![n, c * cells, d]).into_float(ctx);
    let depth = if p.max {
        B::max_pool1d(depth, k[0], s[0], pad[0], dl[0], p.ceil_mode)
    } else {
        B::avg_pool1d(depth, k[0], s[0], pad[0], p.count_include_pad, p.ceil_mode)
    };
    let depth = Value::float(depth);
    let d2 = depth.shape[2];
    let out = reshape_to(depth, vec![n, c, cells, d2]);
    let out = super::shapes::permute(out, &[0, 1, 3, 2]);
    Ok(reshape_to(out, vec![n, c, d2, h2, w2]))
}

pub fn global_pool<B: Backend>(max: bool, x: Value<B>, ctx: &Ctx<B>) -> Result<Value<B>, OpError> {
    if x.rank() < 3 {
        return Err(OpError::new(format!(
            "GlobalPool: input {:?} is not [N, C, ..]",
            x.shape
        )));
    }
    let mut shape = x.shape.clone();
    let mut t = x.into_float(ctx);
    for (d, size) in shape.iter_mut().enumerate().skip(2) {
        t = if max {
            B::float_max_dim(t, d)
        } else {
            B::float_mean_dim(t, d)
        };
        *size = 1;
    }
    Ok(Value::new(Data::Float(t), shape))
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
    let rank = x.rank();
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
    let t = x.into_float(ctx);
    let mean = B::float_mean_dim(t.clone(), rank - 1);
    let centered = B::float_sub(t, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), rank - 1);
    let normed = B::float_div(centered, B::float_sqrt(B::float_add_scalar(var, f(eps))));
    let g = to_rank(gamma, rank).into_float(ctx);
    let mut y = B::float_mul(normed, g);
    if let Some(b) = beta {
        y = B::float_add(y, to_rank(b, rank).into_float(ctx));
    }
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
