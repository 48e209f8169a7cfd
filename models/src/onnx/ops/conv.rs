//! Convolutions over burn's module kernels: Conv and ConvTranspose in 1, 2 and 3 spatial
//! dimensions (groups, dilations, explicit, asymmetric and automatic padding), and the padding
//! rules pooling shares.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use onnx_ir::padding::{AutoPad, PaddingConfig1d, PaddingConfig2d, PaddingConfig3d};

use super::super::value::{Ctx, Value};
use super::super::OpError;
use super::Inputs;

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

pub(super) fn pads_1d(p: &PaddingConfig1d) -> Vec<(usize, usize)> {
    match p {
        PaddingConfig1d::Valid => vec![(0, 0)],
        PaddingConfig1d::Explicit(l, r) => vec![(*l, *r)],
    }
}

pub(super) fn pads_2d(p: &PaddingConfig2d) -> Vec<(usize, usize)> {
    match p {
        PaddingConfig2d::Valid => vec![(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            vec![(*top, *bottom), (*left, *right)]
        }
    }
}

pub(super) fn pads_3d(p: &PaddingConfig3d) -> Vec<(usize, usize)> {
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
pub(super) fn resolve_pads(
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
pub(super) fn pre_pad<B: Backend>(
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

pub(super) fn spatial_check<B: Backend>(
    x: &Value<B>,
    dims: usize,
    op: &str,
) -> Result<(), OpError> {
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
    if dims == 2 && super::host::on_cpu::<B>() {
        let (s, d) = ([c.stride[0], c.stride[1]], [c.dilation[0], c.dilation[1]]);
        return super::host::conv2d::<B>(xf, wf, bias, s, [pad[0], pad[1]], d, groups)
            .map(Value::float)
            .ok_or_else(|| OpError::new("Conv: the host kernel could not read its tensors"));
    }
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
