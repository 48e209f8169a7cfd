//! Host kernels for the CPU backend where burn-flex 0.21 is slow on the shapes ONNX graphs
//! give: Erf and GELU (a scalar `erff` loop there), a per-channel scale and shift (broadcast
//! multiply-add, BatchNormalization), max pooling (flex computes indices it then drops), and
//! 2-D convolution as im2col and one GEMM per image and group (the GEMM burn-flex itself
//! calls). Each works on the tensor's own buffer (handed over without a copy when it is not
//! shared) and runs on the rayon pool; on any other backend it answers `None` and the caller
//! uses burn's op.

use std::any::TypeId;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Float, Shape, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use crate::arch::kernels::{erf_scalar, gelu_slice};
use crate::arch::CpuBackend;

/// Elements per rayon task for element-wise kernels.
const CHUNK: usize = 16 * 1024;

/// Work (multiply-adds, or elements) below which a kernel stays on the calling thread: waking
/// the pool costs more than it saves.
const PARALLEL_WORK: usize = 1 << 18;

/// A read-only view of a CPU tensor's f32 values: borrowed from burn-flex's buffer when it
/// is contiguous, else a copy.
fn read<B: Backend>(t: &FloatTensor<B>) -> Option<std::borrow::Cow<'_, [f32]>> {
    #[cfg(all(feature = "flex", not(feature = "ndarray")))]
    if let Some(flex) = (t as &dyn std::any::Any).downcast_ref::<burn_flex::FlexTensor>() {
        if let Some(values) = flex.as_slice::<f32>() {
            return Some(std::borrow::Cow::Borrowed(values));
        }
    }
    let (data, _) = host::<B>(t.clone()).ok()?;
    data.into_vec::<f32>().ok().map(std::borrow::Cow::Owned)
}

/// `x · w (+ bias)` for `x` `[.., k]` and a weight `w` `[k, n]` (or `[n, k]` when
/// `transposed`), as one GEMM over every row of `x`, the bias added in the GEMM; `None` off
/// the CPU backend.
pub fn linear<B: Backend>(
    x: FloatTensor<B>,
    w: &FloatTensor<B>,
    bias: Option<&FloatTensor<B>>,
    transposed: bool,
) -> Option<FloatTensor<B>> {
    if !on_cpu::<B>() {
        return None;
    }
    let dev = B::float_device(&x);
    let shape: Vec<usize> = burn::tensor::TensorMetadata::shape(&x).to_vec();
    let wshape: Vec<usize> = burn::tensor::TensorMetadata::shape(w).to_vec();
    let (&k, lead) = shape.split_last()?;
    let rows: usize = lead.iter().product();
    let n = if transposed { wshape[0] } else { wshape[1] };
    let xs = read::<B>(&x)?;
    let ws = read::<B>(w)?;
    let mut out = vec![0f32; rows * n];
    let bias = match bias {
        Some(b) => {
            let b = read::<B>(b)?;
            if b.len() != n {
                return None;
            }
            Some(b)
        }
        None => None,
    };
    // Row-major w [k, n]: column stride 1, row stride n; stored [n, k]: the transpose.
    let (w_cs, w_rs) = if transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let parallel = if rows * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: x is rows x k row-major, w is k x n with the strides above, out is rows x n.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            xs.as_ptr(),
            1,
            k as isize,
            ws.as_ptr(),
            w_cs,
            w_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallel,
        );
    }
    if let Some(b) = bias {
        let add = |row: &mut [f32]| row.iter_mut().zip(b.iter()).for_each(|(o, b)| *o += b);
        if rows * n >= PARALLEL_WORK {
            out.par_chunks_mut(n).for_each(add);
        } else {
            out.chunks_mut(n).for_each(add);
        }
    }
    let mut out_shape = lead.to_vec();
    out_shape.push(n);
    Some(device::<B>(out, &out_shape, &dev))
}

/// Whether `B` is the CPU backend these kernels run on.
pub fn on_cpu<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<CpuBackend>()
}

/// The data of `t` (row-major) and its shape, or `None` off the CPU backend or when its
/// floats are not f32 (never on the CPU backend's default float).
fn host<B: Backend>(t: FloatTensor<B>) -> Result<(TensorData, Vec<usize>), FloatTensor<B>> {
    if !on_cpu::<B>() || burn::tensor::TensorMetadata::dtype(&t) != DType::F32 {
        return Err(t);
    }
    let shape: Vec<usize> = burn::tensor::TensorMetadata::shape(&t).to_vec();
    let n: usize = shape.iter().product();
    let flat = B::float_reshape(t, Shape::new([n]));
    let data = Tensor::<B, 1, Float>::from_primitive(TensorPrimitive::Float(flat)).into_data();
    Ok((data, shape))
}

/// Data back into a tensor of `shape` on `device`.
fn to_device<B: Backend>(data: TensorData, shape: &[usize], device: &B::Device) -> FloatTensor<B> {
    let n: usize = shape.iter().product();
    let flat = B::float_from_data(data, device);
    if burn::tensor::TensorMetadata::shape(&flat).num_elements() == n {
        B::float_reshape(flat, Shape::from(shape.to_vec()))
    } else {
        flat
    }
}

/// Values back into a tensor of `shape` on `device`.
fn device<B: Backend>(values: Vec<f32>, shape: &[usize], device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, Shape::from(shape.to_vec())), device)
}

fn erf_slice(values: &mut [f32]) {
    for v in values {
        *v = erf_scalar(*v);
    }
}

fn elementwise<B: Backend>(
    t: FloatTensor<B>,
    f: fn(&mut [f32]),
) -> Result<FloatTensor<B>, FloatTensor<B>> {
    let dev = B::float_device(&t);
    let (mut data, shape) = host::<B>(t)?;
    match data.as_mut_slice::<f32>() {
        Ok(values) if values.len() >= 2 * CHUNK => values.par_chunks_mut(CHUNK).for_each(f),
        Ok(values) => f(values),
        Err(_) => return Err(to_device::<B>(data, &shape, &dev)),
    }
    Ok(to_device::<B>(data, &shape, &dev))
}

/// erf of every element, or the tensor back (`Err`) off the CPU backend.
pub fn erf<B: Backend>(t: FloatTensor<B>) -> Result<FloatTensor<B>, FloatTensor<B>> {
    elementwise::<B>(t, erf_slice)
}

/// GELU (exact, erf form) of every element, or the tensor back off the CPU backend.
pub fn gelu<B: Backend>(t: FloatTensor<B>) -> Result<FloatTensor<B>, FloatTensor<B>> {
    elementwise::<B>(t, gelu_slice)
}

/// `x[n, c, ..] * a[c] + b[c]` over `[N, C, ..]`, or `None` off the CPU backend.
pub fn channel_affine<B: Backend>(
    x: FloatTensor<B>,
    a: &[f32],
    b: &[f32],
) -> Option<FloatTensor<B>> {
    let dev = B::float_device(&x);
    let (mut data, shape) = host::<B>(x).ok()?;
    let channels = *shape.get(1)?;
    let plane: usize = shape[2..].iter().product::<usize>().max(1);
    if a.len() != channels || b.len() != channels {
        return None;
    }
    let values = data.as_mut_slice::<f32>().ok()?;
    values
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(i, chunk)| {
            let c = i % channels;
            let (scale, shift) = (a[c], b[c]);
            for v in chunk {
                *v = *v * scale + shift;
            }
        });
    Some(to_device::<B>(data, &shape, &dev))
}

/// Output length of a pooled or convolved dimension.
pub fn out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil: bool,
) -> usize {
    let span = dilation * (kernel - 1) + 1;
    let room = (input + 2 * pad).saturating_sub(span);
    let mut out = if ceil {
        room.div_ceil(stride)
    } else {
        room / stride
    } + 1;
    // A last window that starts in the right padding is dropped (ceil mode).
    if ceil && (out - 1) * stride >= input + pad {
        out -= 1;
    }
    out
}

/// 2-D max pooling of `[N, C, H, W]` (padding is -inf), or `None` off the CPU backend.
pub fn max_pool2d<B: Backend>(
    x: FloatTensor<B>,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    ceil: bool,
) -> Option<FloatTensor<B>> {
    let dev = B::float_device(&x);
    let (data, shape) = host::<B>(x).ok()?;
    let values = data.as_slice::<f32>().ok()?;
    let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    let oh = out_len(h, kernel[0], stride[0], pad[0], dilation[0], ceil);
    let ow = out_len(w, kernel[1], stride[1], pad[1], dilation[1], ceil);
    let mut out = vec![0f32; n * c * oh * ow];
    let inside = pad == [0, 0] && !ceil;
    let pool_plane = |(o, plane): (&mut [f32], &[f32])| {
        if inside {
            // Every window lies inside the plane: no bounds to check.
            for y in 0..oh {
                for x in 0..ow {
                    let mut best = f32::NEG_INFINITY;
                    for ky in 0..kernel[0] {
                        let row = (y * stride[0] + ky * dilation[0]) * w + x * stride[1];
                        for kx in 0..kernel[1] {
                            let v = plane[row + kx * dilation[1]];
                            if v > best || v.is_nan() {
                                best = v;
                            }
                        }
                    }
                    o[y * ow + x] = best;
                }
            }
            return;
        }
        for y in 0..oh {
            for x in 0..ow {
                let mut best = f32::NEG_INFINITY;
                for ky in 0..kernel[0] {
                    let iy = (y * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let row = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for kx in 0..kernel[1] {
                        let ix = (x * stride[1] + kx * dilation[1]) as isize - pad[1] as isize;
                        if ix >= 0 && ix < w as isize {
                            let v = row[ix as usize];
                            if v > best || v.is_nan() {
                                best = v;
                            }
                        }
                    }
                }
                o[y * ow + x] = best;
            }
        }
    };
    if out.len() * kernel[0] * kernel[1] >= PARALLEL_WORK {
        out.par_chunks_mut(oh * ow)
            .zip(values.par_chunks(h * w))
            .for_each(pool_plane);
    } else {
        out.chunks_mut(oh * ow)
            .zip(values.chunks(h * w))
            .for_each(pool_plane);
    }
    Some(device::<B>(out, &[n, c, oh, ow], &dev))
}

/// 2-D convolution of `[N, C, H, W]` by `[M, C/groups, KH, KW]` (symmetric padding), as
/// im2col and one GEMM per image and group, or `None` off the CPU backend.
#[allow(clippy::too_many_arguments)]
pub fn conv2d<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Option<FloatTensor<B>> {
    let dev = B::float_device(&x);
    let (data, shape) = host::<B>(x).ok()?;
    let values = data.as_slice::<f32>().ok()?;
    let wshape: Vec<usize> = burn::tensor::TensorMetadata::shape(&weight).to_vec();
    let weights = read::<B>(&weight)?;
    let bias: Option<Vec<f32>> = match &bias {
        Some(b) => Some(read::<B>(b)?.into_owned()),
        None => None,
    };
    let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    let [m, cg, kh, kw] = [wshape[0], wshape[1], wshape[2], wshape[3]];
    let mg = m / groups;
    let oh = out_len(h, kh, stride[0], pad[0], dilation[0], false);
    let ow = out_len(w, kw, stride[1], pad[1], dilation[1], false);
    let (p, k) = (oh * ow, cg * kh * kw);
    let pointwise = kh == 1 && kw == 1 && stride == [1, 1] && pad == [0, 0];
    let mut out = vec![0f32; n * m * p];
    let threads = rayon::current_num_threads();
    let per_image = |(image, o): (usize, &mut [f32]), parallel: gemm::Parallelism| {
        let input = &values[image * c * h * w..(image + 1) * c * h * w];
        let mut col = if pointwise {
            Vec::new()
        } else {
            vec![0f32; k * p]
        };
        for g in 0..groups {
            let source = &input[g * cg * h * w..(g + 1) * cg * h * w];
            if !pointwise {
                for ci in 0..cg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let row = &mut col[((ci * kh + ky) * kw + kx) * p..][..p];
                            for y in 0..oh {
                                let iy =
                                    (y * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                                let dst = &mut row[y * ow..(y + 1) * ow];
                                if iy < 0 || iy >= h as isize {
                                    dst.fill(0.0);
                                    continue;
                                }
                                let src = &source[(ci * h + iy as usize) * w..][..w];
                                if stride[1] == 1 {
                                    // x reads src[x + shift]: one copy between zero margins.
                                    let shift = (kx * dilation[1]) as isize - pad[1] as isize;
                                    let first = (-shift).clamp(0, ow as isize) as usize;
                                    let last = (w as isize - shift)
                                        .clamp(first as isize, ow as isize)
                                        as usize;
                                    dst[..first].fill(0.0);
                                    dst[last..].fill(0.0);
                                    let from = (first as isize + shift) as usize;
                                    dst[first..last]
                                        .copy_from_slice(&src[from..from + (last - first)]);
                                } else {
                                    for (x, d) in dst.iter_mut().enumerate() {
                                        let ix = (x * stride[1] + kx * dilation[1]) as isize
                                            - pad[1] as isize;
                                        *d = if ix >= 0 && ix < w as isize {
                                            src[ix as usize]
                                        } else {
                                            0.0
                                        };
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let rhs = if pointwise { source } else { &col[..] };
            let lhs = &weights[g * mg * k..(g + 1) * mg * k];
            let dst = &mut o[g * mg * p..(g + 1) * mg * p];
            if let Some(b) = &bias {
                for (mi, row) in dst.chunks_mut(p).enumerate() {
                    row.fill(b[g * mg + mi]);
                }
            }
            // SAFETY: the three buffers are row-major with the strides given and the sizes
            // m x k, k x n and m x n checked by construction above.
            unsafe {
                gemm::gemm(
                    mg,
                    p,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    p as isize,
                    bias.is_some(),
                    lhs.as_ptr(),
                    1,
                    k as isize,
                    rhs.as_ptr(),
                    1,
                    p as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallel,
                );
            }
        }
    };
    let work = m * p * k;
    if n == 1 || work * n < PARALLEL_WORK {
        let parallel = if work >= PARALLEL_WORK {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        for (image, o) in out.chunks_mut(m * p).enumerate() {
            per_image((image, o), parallel);
        }
    } else {
        out.par_chunks_mut(m * p)
            .enumerate()
            .for_each(|job| per_image(job, gemm::Parallelism::None));
    }
    Some(device::<B>(out, &[n, m, oh, ow], &dev))
}
