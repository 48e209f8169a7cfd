//! Pooling over burn's module kernels: Max and Average pooling in 1, 2 and 3 spatial
//! dimensions (3-D as separable 2-D then 1-D passes) and Global Average/Max pooling.

use burn::tensor::backend::Backend;
use onnx_ir::padding::AutoPad;

use super::super::value::{Ctx, Data, Value};
use super::super::OpError;
use super::conv::{pads_1d, pads_2d, pads_3d, pre_pad, resolve_pads, spatial_check};
use super::shapes::reshape_to;

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
    let t = if dims == 2 && p.max {
        let k = [p.kernel[0], p.kernel[1]];
        let (s, d) = ([p.stride[0], p.stride[1]], [p.dilation[0], p.dilation[1]]);
        if super::host::on_cpu::<B>() {
            return super::host::max_pool2d::<B>(t, k, s, [pad[0], pad[1]], d, p.ceil_mode)
                .map(Value::float)
                .ok_or_else(|| OpError::new("MaxPool: the host kernel could not read its input"));
        }
        t
    } else {
        t
    };
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
