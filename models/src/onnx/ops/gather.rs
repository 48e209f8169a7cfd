//! Gather and GatherElements: indices read on the host, negative ones counted from the end,
//! each checked against its dimension before burn selects.

use burn::tensor::backend::Backend;
use burn::tensor::Slice;

use super::super::value::{Ctx, Value};
use super::super::OpError;
use super::layout::empty_like;
use super::shapes::{gather_along, reshape_to, select, slice_by};

/// Indices read on the host, negative ones counted from the end, each checked against `dim`.
fn checked_indices(
    indices: &Value<impl Backend>,
    dim: usize,
    op: &str,
) -> Result<Vec<i64>, OpError> {
    let mut values = indices.to_i64s()?;
    for v in &mut values {
        let i = if *v < 0 { *v + dim as i64 } else { *v };
        if i < 0 || i >= dim as i64 {
            return Err(OpError::new(format!(
                "{op}: index {v} is outside a dimension of {dim}"
            )));
        }
        *v = i;
    }
    Ok(values)
}

pub fn gather<B: Backend>(
    x: Value<B>,
    indices: Value<B>,
    axis: usize,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let axis = if x.shape.is_empty() { 0 } else { axis };
    let dim = *x
        .shape
        .get(axis)
        .ok_or_else(|| OpError::new(format!("Gather: axis {axis} of {:?}", x.shape)))?;
    let values = checked_indices(&indices, dim, "Gather")?;
    let mut shape = x.shape[..axis].to_vec();
    shape.extend_from_slice(&indices.shape);
    shape.extend_from_slice(&x.shape[axis + 1..]);
    let count = values.len();
    if count == 0 {
        return Ok(empty_like(x.kind(), shape, ctx));
    }
    let index = Value::<B>::from_i64s(values, vec![count], ctx)?.into_int(ctx);
    let mut rows = x.shape.clone();
    rows[axis] = count;
    let picked = select(x, axis, index, rows);
    Ok(reshape_to(picked, shape))
}

pub fn gather_elements<B: Backend>(
    x: Value<B>,
    indices: Value<B>,
    axis: usize,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    let dim = *x
        .shape
        .get(axis)
        .ok_or_else(|| OpError::new(format!("GatherElements: axis {axis} of {:?}", x.shape)))?;
    if indices.rank() != x.rank()
        || (0..x.rank()).any(|d| d != axis && indices.shape[d] > x.shape[d])
    {
        return Err(OpError::new(format!(
            "GatherElements: indices {:?} do not fit data {:?}",
            indices.shape, x.shape
        )));
    }
    let shape = indices.shape.clone();
    let values = checked_indices(&indices, dim, "GatherElements")?;
    if values.is_empty() {
        return Ok(empty_like(x.kind(), shape, ctx));
    }
    // burn gathers from a tensor whose other dimensions equal the indices'.
    let mut slices: Vec<Slice> = shape
        .iter()
        .map(|&d| Slice::new(0, Some(d as isize), 1))
        .collect();
    slices[axis] = Slice::new(0, Some(dim as isize), 1);
    let mut source = shape.clone();
    source[axis] = dim;
    let x = slice_by(x, &slices, source);
    let index = Value::<B>::from_i64s(values, shape.clone(), ctx)?.into_int(ctx);
    Ok(gather_along(x, axis, index, shape))
}
