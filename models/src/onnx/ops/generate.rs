//! Operators that make tensors from shapes and scalars: Shape, ConstantOfShape, Range, and Pad
//! (constant, edge and reflect), bounded so a hostile shape input cannot allocate without end.

use burn::tensor::backend::Backend;
use burn::tensor::Slice;

use super::super::value::{Ctx, Data, Kind, Value};
use super::super::OpError;
use super::layout::empty_like;
use super::shapes::{cat, checked_count, slice_by, MAX_ELEMENTS};
use super::Inputs;

pub fn shape_of<B: Backend>(
    config: &onnx_ir::shape::ShapeConfig,
    x: Value<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let rank = x.rank();
    let (start, end) = (config.start.min(rank), config.end.min(rank));
    let dims: Vec<i64> = x.shape[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    let n = dims.len();
    Value::from_i64s(dims, vec![n], ctx)
}

fn positive_shape(values: Vec<i64>, op: &str) -> Result<Vec<usize>, OpError> {
    values
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| OpError::new(format!("{op}: shape {values:?}"))))
        .collect()
}

pub fn constant_of_shape<B: Backend>(
    config: &onnx_ir::constant_of_shape::ConstantOfShapeConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::constant_of_shape::ConstantOfShapeShape;
    let shape = match &config.shape {
        ConstantOfShapeShape::Static(s) => s.clone(),
        ConstantOfShapeShape::Runtime(r) => inputs.host_i64s(r.input_index)?,
    };
    let shape = positive_shape(shape, "ConstantOfShape")?;
    let n = checked_count(&shape, MAX_ELEMENTS)?;
    let value = match &config.value {
        Some(data) => Value::<B>::from_burn_data(data.clone(), ctx)?,
        None => Value::from_f32s(vec![0.0], vec![1], ctx),
    };
    let kind = value.kind();
    let fill = value.to_f64s()?.first().copied().unwrap_or(0.0);
    let out = Value::from_f32s(vec![fill as f32; n], shape.clone(), ctx);
    Ok(match kind {
        Kind::Float => out,
        Kind::Int => {
            // Integers are filled exactly, not through f32.
            Value::from_i64s(vec![fill as i64; n], shape, ctx)?
        }
        Kind::Bool => out.to_kind(Kind::Bool, ctx),
    })
}

pub fn range<B: Backend>(
    config: &onnx_ir::range::RangeConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::range::RangeInput;
    let mut float = false;
    let mut read = |input: &RangeInput| -> Result<f64, OpError> {
        match input {
            RangeInput::Static(v) => Ok(*v as f64),
            RangeInput::Runtime(r) => {
                let v = inputs.take(r.input_index)?;
                float |= v.kind() == Kind::Float;
                v.to_f64s()?
                    .first()
                    .copied()
                    .ok_or_else(|| OpError::new("Range: empty scalar"))
            }
        }
    };
    let (start, limit, delta) = (
        read(&config.start)?,
        read(&config.limit)?,
        read(&config.delta)?,
    );
    if delta == 0.0 || !delta.is_finite() || !start.is_finite() || !limit.is_finite() {
        return Err(OpError::new(format!(
            "Range: start {start}, limit {limit}, delta {delta}"
        )));
    }
    let count = ((limit - start) / delta).ceil().max(0.0);
    if count > MAX_ELEMENTS as f64 {
        return Err(OpError::new(format!("Range: {count} elements")));
    }
    let count = count as usize;
    if float {
        let values = (0..count)
            .map(|i| (start + i as f64 * delta) as f32)
            .collect();
        Ok(Value::from_f32s(values, vec![count], ctx))
    } else {
        let (s, d) = (start as i64, delta as i64);
        let values = (0..count as i64).map(|i| s + i * d).collect();
        Value::from_i64s(values, vec![count], ctx)
    }
}

pub fn pad<B: Backend>(
    config: &onnx_ir::pad::PadConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::pad::{ConstantValueInput, PadInput, PadMode};
    let x = inputs.take(0)?;
    let rank = x.rank();
    let pads: Vec<(i64, i64)> = match &config.pads {
        PadInput::Static(p) => p.iter().map(|&(a, b)| (a as i64, b as i64)).collect(),
        PadInput::Runtime(r) => {
            let flat = inputs.host_i64s(r.input_index)?;
            if flat.len() != 2 * rank {
                return Err(OpError::new(format!(
                    "Pad: {} pads for a rank-{rank} input",
                    flat.len()
                )));
            }
            (0..rank).map(|i| (flat[i], flat[i + rank])).collect()
        }
    };
    if pads.len() != rank {
        return Err(OpError::new(format!(
            "Pad: {} pads for a rank-{rank} input",
            pads.len()
        )));
    }
    let fill = match &config.constant_value {
        ConstantValueInput::Static(v) => *v as f64,
        ConstantValueInput::Runtime(r) => match inputs.optional(r.input_index) {
            Some(v) => v.to_f64s()?.first().copied().unwrap_or(0.0),
            None => 0.0,
        },
    };
    let mut value = x;
    for (dim, &(before, after)) in pads.iter().enumerate() {
        value = pad_dim(value, dim, before, after, &config.mode, fill, ctx)?;
    }
    let _ = PadMode::Constant;
    Ok(value)
}

fn pad_dim<B: Backend>(
    x: Value<B>,
    dim: usize,
    before: i64,
    after: i64,
    mode: &onnx_ir::pad::PadMode,
    fill: f64,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::pad::PadMode;
    if before == 0 && after == 0 {
        return Ok(x);
    }
    let size = x.shape[dim] as i64;
    // Negative pads crop.
    let (crop_start, crop_end) = ((-before).max(0), (-after).max(0));
    if crop_start + crop_end > size {
        return Err(OpError::new(
            "Pad: negative pads crop more than the dimension",
        ));
    }
    let x = if crop_start > 0 || crop_end > 0 {
        narrow(
            x,
            dim,
            crop_start as usize,
            (size - crop_start - crop_end) as usize,
        )
    } else {
        x
    };
    let (before, after) = (before.max(0) as usize, after.max(0) as usize);
    let size = x.shape[dim];
    let mut out_shape = x.shape.clone();
    out_shape[dim] = size + before + after;
    checked_count(&out_shape, MAX_ELEMENTS)?;
    let kind = x.kind();
    let part = |n: usize, from_start: bool| -> Result<Option<Value<B>>, OpError> {
        if n == 0 {
            return Ok(None);
        }
        let mut shape = x.shape.clone();
        shape[dim] = n;
        let v = match mode {
            PadMode::Constant => {
                let count: usize = shape.iter().product();
                let filled = Value::from_f32s(vec![fill as f32; count], shape, ctx);
                filled.to_kind(kind, ctx)
            }
            PadMode::Edge => {
                if size == 0 {
                    return Err(OpError::new("Pad: edge mode on an empty dimension"));
                }
                let edge = narrow(x.clone(), dim, if from_start { 0 } else { size - 1 }, 1);
                super::shapes::expand_to(edge, shape)
            }
            PadMode::Reflect => {
                if n >= size {
                    return Err(OpError::new(format!(
                        "Pad: reflect pad of {n} on a dimension of {size}"
                    )));
                }
                let start = if from_start { 1 } else { size - 1 - n };
                let mirrored = narrow(x.clone(), dim, start, n);
                flip_dim(mirrored, dim)
            }
        };
        Ok(Some(v))
    };
    let mut parts = Vec::new();
    if let Some(p) = part(before, true)? {
        parts.push(p);
    }
    if size > 0 {
        parts.push(x.clone());
    }
    if let Some(p) = part(after, false)? {
        parts.push(p);
    }
    if parts.is_empty() {
        return Ok(empty_like(kind, out_shape, ctx));
    }
    Ok(cat(parts, dim, out_shape))
}

/// `len` elements of `dim` from `start`.
pub fn narrow<B: Backend>(x: Value<B>, dim: usize, start: usize, len: usize) -> Value<B> {
    let mut slices: Vec<Slice> = x
        .shape
        .iter()
        .map(|&d| Slice::new(0, Some(d as isize), 1))
        .collect();
    slices[dim] = Slice::new(start as isize, Some((start + len) as isize), 1);
    let mut shape = x.shape.clone();
    shape[dim] = len;
    slice_by(x, &slices, shape)
}

fn flip_dim<B: Backend>(x: Value<B>, dim: usize) -> Value<B> {
    let shape = x.shape.clone();
    let data = match x.data {
        Data::Float(t) => Data::Float(B::float_flip(t, &[dim])),
        Data::Int(t) => Data::Int(B::int_flip(t, &[dim])),
        Data::Bool(t) => Data::Bool(B::bool_flip(t, &[dim])),
    };
    Value::new(data, shape)
}
