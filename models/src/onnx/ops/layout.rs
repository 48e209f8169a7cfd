//! Operators that move elements without arithmetic: Reshape, Flatten, Transpose, Squeeze,
//! Unsqueeze, Concat, Split, Slice, Gather, GatherElements, Expand, Tile. Shapes and indices
//! read from inputs are checked here, before burn sees them.

use burn::tensor::backend::Backend;
use burn::tensor::Slice;

use super::super::value::{Ctx, Data, Value};
use super::super::OpError;
use super::shapes::{
    broadcast_shape, cat, checked_count, expand_to, permute, reshape_to, slice_by, MAX_ELEMENTS,
};
use super::{axis as norm_axis, Inputs};

pub fn reshape<B: Backend>(
    config: &onnx_ir::reshape::ReshapeConfig,
    inputs: &mut Inputs<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::reshape::ReshapeInput;
    let x = inputs.take(0)?;
    let target = match &config.shape {
        ReshapeInput::Static(s) => s.clone(),
        ReshapeInput::Runtime(r) => inputs.host_i64s(r.input_index)?,
    };
    let shape = resolve_reshape(&x.shape, &target)?;
    Ok(reshape_to(x, shape))
}

/// ONNX Reshape's target: `0` copies the input's dimension, `-1` takes what is left.
fn resolve_reshape(input: &[usize], target: &[i64]) -> Result<Vec<usize>, OpError> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            0 => out.push(*input.get(i).ok_or_else(|| {
                OpError::new(format!(
                    "Reshape: 0 at position {i} copies no input dimension"
                ))
            })?),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            d if d > 0 => out.push(d as usize),
            _ => {
                return Err(OpError::new(format!(
                    "Reshape: bad target shape {target:?}"
                )))
            }
        }
    }
    let known = checked_count(&out, MAX_ELEMENTS)?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(OpError::new(format!(
                "Reshape: {input:?} cannot be reshaped to {target:?}"
            )));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(OpError::new(format!(
            "Reshape: {input:?} ({total} elements) cannot be reshaped to {target:?}"
        )));
    }
    Ok(out)
}

pub fn flatten<B: Backend>(x: Value<B>, axis: usize) -> Result<Value<B>, OpError> {
    let axis = axis.min(x.rank());
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis..].iter().product();
    Ok(reshape_to(x, vec![outer, inner]))
}

pub fn transpose<B: Backend>(x: Value<B>, perm: &[i64]) -> Result<Value<B>, OpError> {
    let rank = x.rank();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.iter()
            .map(|&p| norm_axis(p, rank))
            .collect::<Result<_, _>>()?
    };
    let mut seen = vec![false; rank];
    for &p in &perm {
        if p >= rank || std::mem::replace(&mut seen[p], true) {
            return Err(OpError::new(format!(
                "Transpose: {perm:?} is not a permutation"
            )));
        }
    }
    if perm.len() != rank {
        return Err(OpError::new(format!(
            "Transpose: perm {perm:?} for a rank-{rank} input"
        )));
    }
    Ok(permute(x, &perm))
}

pub fn squeeze<B: Backend>(
    config: &onnx_ir::squeeze::SqueezeConfig,
    inputs: &mut Inputs<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::squeeze::SqueezeInput;
    let x = inputs.take(0)?;
    let axes = match &config.axes {
        None => None,
        Some(SqueezeInput::Static(a)) => Some(a.clone()),
        Some(SqueezeInput::Runtime(r)) => match inputs.optional(r.input_index) {
            Some(v) => Some(v.to_i64s()?),
            None => None,
        },
    };
    let rank = x.rank();
    let shape: Vec<usize> = match axes {
        None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_, _>>()?;
            for &a in &axes {
                if x.shape[a] != 1 {
                    return Err(OpError::new(format!(
                        "Squeeze: dimension {a} of {:?} is not 1",
                        x.shape
                    )));
                }
            }
            (0..rank)
                .filter(|i| !axes.contains(i))
                .map(|i| x.shape[i])
                .collect()
        }
    };
    Ok(reshape_to(x, shape))
}

pub fn unsqueeze<B: Backend>(
    config: &onnx_ir::unsqueeze::UnsqueezeConfig,
    inputs: &mut Inputs<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::unsqueeze::UnsqueezeConfig;
    let x = inputs.take(0)?;
    let axes = match config {
        UnsqueezeConfig::Static(a) => a.clone(),
        UnsqueezeConfig::Runtime(r) => inputs.host_i64s(r.input_index)?,
    };
    let rank = x.rank() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()?;
    axes.sort_unstable();
    axes.dedup();
    let mut shape = Vec::with_capacity(rank);
    let mut dims = x.shape.iter();
    for i in 0..rank {
        if axes.contains(&i) {
            shape.push(1);
        } else {
            shape.push(
                *dims
                    .next()
                    .ok_or_else(|| OpError::new("Unsqueeze: repeated axes".to_string()))?,
            );
        }
    }
    Ok(reshape_to(x, shape))
}

pub fn concat<B: Backend>(
    values: Vec<Value<B>>,
    axis: usize,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let first = values
        .first()
        .ok_or_else(|| OpError::new("Concat: no inputs"))?;
    let kind = first.kind();
    let rank = first.rank().max(1);
    let mut shape = if first.shape.is_empty() {
        vec![1]
    } else {
        first.shape.clone()
    };
    if axis >= rank {
        return Err(OpError::new(format!(
            "Concat: axis {axis} of a rank-{rank} input"
        )));
    }
    let mut total = 0;
    let mut parts = Vec::with_capacity(values.len());
    for v in values {
        let v = if v.shape.is_empty() {
            reshape_to(v, vec![1])
        } else {
            v
        };
        let same = v.rank() == rank && (0..rank).all(|d| d == axis || v.shape[d] == shape[d]);
        if !same {
            return Err(OpError::new(format!(
                "Concat: {:?} does not match {:?} outside axis {axis}",
                v.shape, shape
            )));
        }
        total += v.shape[axis];
        if v.shape[axis] > 0 {
            parts.push(v.to_kind(kind, ctx));
        }
    }
    shape[axis] = total;
    if parts.is_empty() {
        return Ok(empty_like(kind, shape, ctx));
    }
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    Ok(cat(parts, axis, shape))
}

/// A tensor of `shape` (holding no elements, or zeros).
pub fn empty_like<B: Backend>(
    kind: super::super::value::Kind,
    shape: Vec<usize>,
    ctx: &Ctx<B>,
) -> Value<B> {
    use super::super::value::Kind;
    let n: usize = shape.iter().product();
    let v = Value::from_f32s(vec![0.0; n], shape, ctx);
    if kind == Kind::Float {
        v
    } else {
        v.to_kind(kind, ctx)
    }
}

pub fn split<B: Backend>(
    config: &onnx_ir::split::SplitConfig,
    outputs: usize,
    inputs: &mut Inputs<B>,
) -> Result<Vec<Value<B>>, OpError> {
    use onnx_ir::split::SplitSizesInput;
    let x = inputs.take(0)?;
    let axis = config.axis;
    let dim = *x
        .shape
        .get(axis)
        .ok_or_else(|| OpError::new(format!("Split: axis {axis} of {:?}", x.shape)))?;
    let sizes: Vec<usize> = match &config.split_sizes {
        Some(SplitSizesInput::Static(s)) => s.clone(),
        Some(SplitSizesInput::Runtime(r)) => inputs
            .host_i64s(r.input_index)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| OpError::new("Split: negative size")))
            .collect::<Result<_, _>>()?,
        None => {
            let parts = config.num_outputs.unwrap_or(outputs).max(1);
            let size = config.split_size.unwrap_or(dim.div_ceil(parts));
            let mut sizes = Vec::new();
            let mut left = dim;
            while left > 0 && size > 0 {
                sizes.push(size.min(left));
                left -= size.min(left);
            }
            while sizes.len() < parts {
                sizes.push(0);
            }
            sizes
        }
    };
    if sizes.iter().sum::<usize>() != dim {
        return Err(OpError::new(format!(
            "Split: sizes {sizes:?} do not add up to dimension {dim}"
        )));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for size in sizes {
        let mut slices: Vec<Slice> = x
            .shape
            .iter()
            .map(|&d| Slice::new(0, Some(d as isize), 1))
            .collect();
        slices[axis] = Slice::new(start as isize, Some((start + size) as isize), 1);
        let mut shape = x.shape.clone();
        shape[axis] = size;
        out.push(slice_by(x.clone(), &slices, shape));
        start += size;
    }
    Ok(out)
}

pub fn slice<B: Backend>(
    config: &onnx_ir::slice::SliceConfig,
    inputs: &mut Inputs<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::slice::SliceInput;
    let mut read = |input: &Option<SliceInput>| -> Result<Option<Vec<i64>>, OpError> {
        match input {
            None => Ok(None),
            Some(SliceInput::Static(v)) => Ok(Some(v.clone())),
            Some(SliceInput::Runtime(r)) => match inputs.optional(r.input_index) {
                Some(v) => Ok(Some(v.to_i64s()?)),
                None => Ok(None),
            },
        }
    };
    let starts = read(&Some(config.starts.clone()))?.unwrap_or_default();
    let ends = read(&Some(config.ends.clone()))?.unwrap_or_default();
    let axes = read(&config.axes)?;
    let steps = read(&config.steps)?;
    let x = inputs.take(0)?;
    let rank = x.rank();
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    if starts.len() != ends.len() || axes.len() != starts.len() {
        return Err(OpError::new(
            "Slice: starts, ends and axes differ in length",
        ));
    }
    let mut slices: Vec<Slice> = x
        .shape
        .iter()
        .map(|&d| Slice::new(0, Some(d as isize), 1))
        .collect();
    let mut shape = x.shape.clone();
    let mut flips = Vec::new();
    for (i, &a) in axes.iter().enumerate() {
        let dim = x.shape[a] as i64;
        let step = steps.as_ref().and_then(|s| s.get(i).copied()).unwrap_or(1);
        if step == 0 {
            return Err(OpError::new("Slice: step 0"));
        }
        let clamp = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
        let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (start, end) = (norm(starts[i]), norm(ends[i]));
        let (first, count) = if step > 0 {
            let (s, e) = (clamp(start, 0, dim), clamp(end, 0, dim));
            (s, if e > s { (e - s + step - 1) / step } else { 0 })
        } else {
            let (s, e) = (clamp(start, 0, dim - 1), clamp(end, -1, dim - 1));
            (
                s,
                if s > e {
                    (s - e + (-step) - 1) / (-step)
                } else {
                    0
                },
            )
        };
        shape[a] = count as usize;
        if count == 0 {
            slices[a] = Slice::new(0, Some(0), 1);
        } else if step > 0 {
            slices[a] = Slice::new(
                first as isize,
                Some((first + (count - 1) * step + 1) as isize),
                step as isize,
            );
        } else {
            let last = first + (count - 1) * step;
            slices[a] = Slice::new(last as isize, Some((first + 1) as isize), (-step) as isize);
            flips.push(a);
        }
    }
    if shape.contains(&0) {
        return Ok(empty_like(x.kind(), shape, &ctx_of(&x)));
    }
    let out = slice_by(x, &slices, shape);
    Ok(flip(out, &flips))
}

fn ctx_of<B: Backend>(x: &Value<B>) -> Ctx<B> {
    let device = match &x.data {
        Data::Float(t) => B::float_device(t),
        Data::Int(t) => B::int_device(t),
        Data::Bool(t) => B::bool_device(t),
    };
    Ctx::new(device)
}

fn flip<B: Backend>(x: Value<B>, axes: &[usize]) -> Value<B> {
    if axes.is_empty() {
        return x;
    }
    let shape = x.shape.clone();
    let data = match x.data {
        Data::Float(t) => Data::Float(B::float_flip(t, axes)),
        Data::Int(t) => Data::Int(B::int_flip(t, axes)),
        Data::Bool(t) => Data::Bool(B::bool_flip(t, axes)),
    };
    Value::new(data, shape)
}

pub fn expand<B: Backend>(
    config: &onnx_ir::expand::ExpandConfig,
    inputs: &mut Inputs<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::expand::ExpandConfig;
    let x = inputs.take(0)?;
    let target = match config {
        ExpandConfig::Static(s) => s.clone(),
        ExpandConfig::Runtime(r) => inputs.host_i64s(r.input_index)?,
    };
    let target: Vec<usize> = target
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| OpError::new(format!("Expand: shape {target:?}"))))
        .collect::<Result<_, _>>()?;
    let shape = broadcast_shape(&x.shape, &target)?;
    checked_count(&shape, MAX_ELEMENTS)?;
    Ok(expand_to(x, shape))
}

pub fn tile<B: Backend>(
    config: &onnx_ir::tile::TileConfig,
    inputs: &mut Inputs<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::tile::TileInput;
    let x = inputs.take(0)?;
    let repeats: Vec<usize> = match &config.repeats {
        TileInput::Static(r) => r.clone(),
        TileInput::Runtime(r) => inputs
            .host_i64s(r.input_index)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| OpError::new("Tile: negative repeat")))
            .collect::<Result<_, _>>()?,
    };
    if repeats.len() != x.rank() {
        return Err(OpError::new(format!(
            "Tile: {} repeats for a rank-{} input",
            repeats.len(),
            x.rank()
        )));
    }
    let shape: Vec<usize> = x.shape.iter().zip(&repeats).map(|(d, r)| d * r).collect();
    checked_count(&shape, MAX_ELEMENTS)?;
    let mut value = x;
    for (dim, &times) in repeats.iter().enumerate() {
        if times == 1 {
            continue;
        }
        let mut s = value.shape.clone();
        s[dim] *= times;
        let data = match value.data {
            Data::Float(t) => Data::Float(B::float_repeat_dim(t, dim, times)),
            Data::Int(t) => Data::Int(B::int_repeat_dim(t, dim, times)),
            Data::Bool(t) => Data::Bool(B::bool_repeat_dim(t, dim, times)),
        };
        value = Value::new(data, s);
    }
    Ok(value)
}
