//! Shape arithmetic shared by the operators: numpy broadcasting, rank alignment, and the
//! per-kind structural primitives (reshape, permute, slice, concatenate, expand, select) that
//! work on float, int and bool values alike.

use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Slice};

use super::super::value::{physical, Data, Value};
use super::super::OpError;

/// The broadcast shape of `a` and `b` (numpy rules), or `Err` naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OpError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(OpError::new(format!(
                "shapes {a:?} and {b:?} cannot be broadcast together"
            )));
        };
    }
    Ok(out)
}

/// `value` reshaped to `rank` dimensions by leading 1s (for broadcasting).
pub fn to_rank<B: Backend>(value: Value<B>, rank: usize) -> Value<B> {
    if value.rank() >= rank {
        return value;
    }
    let mut shape = vec![1; rank - value.rank()];
    shape.extend_from_slice(&value.shape);
    reshape_to(value, shape)
}

/// `value` with the same elements under `shape` (the element count must agree).
pub fn reshape_to<B: Backend>(value: Value<B>, shape: Vec<usize>) -> Value<B> {
    let dims = physical(&shape);
    let data = match value.data {
        Data::Float(t) => Data::Float(B::float_reshape(t, dims)),
        Data::Int(t) => Data::Int(B::int_reshape(t, dims)),
        Data::Bool(t) => Data::Bool(B::bool_reshape(t, dims)),
    };
    Value::new(data, shape)
}

/// Axes permuted (`perm` a permutation of the rank).
pub fn permute<B: Backend>(value: Value<B>, perm: &[usize]) -> Value<B> {
    if value.rank() < 2 {
        return value;
    }
    let shape = perm.iter().map(|&p| value.shape[p]).collect();
    let data = match value.data {
        Data::Float(t) => Data::Float(B::float_permute(t, perm)),
        Data::Int(t) => Data::Int(B::int_permute(t, perm)),
        Data::Bool(t) => Data::Bool(B::bool_permute(t, perm)),
    };
    Value::new(data, shape)
}

/// Sliced by one `Slice` per dimension (checked by the caller); `shape` is the result's.
pub fn slice_by<B: Backend>(value: Value<B>, slices: &[Slice], shape: Vec<usize>) -> Value<B> {
    let data = match value.data {
        Data::Float(t) => Data::Float(B::float_slice(t, slices)),
        Data::Int(t) => Data::Int(B::int_slice(t, slices)),
        Data::Bool(t) => Data::Bool(B::bool_slice(t, slices)),
    };
    Value::new(data, shape)
}

/// Broadcast to `shape` (a broadcast of the value's shape, same rank).
pub fn expand_to<B: Backend>(value: Value<B>, shape: Vec<usize>) -> Value<B> {
    if value.shape == shape {
        return value;
    }
    let value = to_rank(value, shape.len());
    let dims = Shape::from(shape.clone());
    let data = match value.data {
        Data::Float(t) => Data::Float(B::float_expand(t, dims)),
        Data::Int(t) => Data::Int(B::int_expand(t, dims)),
        Data::Bool(t) => Data::Bool(B::bool_expand(t, dims)),
    };
    Value::new(data, shape)
}

/// Concatenated along `axis` (same kind, same rank, other dims equal: checked by the caller).
pub fn cat<B: Backend>(values: Vec<Value<B>>, axis: usize, shape: Vec<usize>) -> Value<B> {
    let data = match values[0].data {
        Data::Float(_) => Data::Float(B::float_cat(
            values
                .into_iter()
                .filter_map(|v| match v.data {
                    Data::Float(t) => Some(t),
                    _ => None,
                })
                .collect(),
            axis,
        )),
        Data::Int(_) => Data::Int(B::int_cat(
            values
                .into_iter()
                .filter_map(|v| match v.data {
                    Data::Int(t) => Some(t),
                    _ => None,
                })
                .collect(),
            axis,
        )),
        Data::Bool(_) => Data::Bool(B::bool_cat(
            values
                .into_iter()
                .filter_map(|v| match v.data {
                    Data::Bool(t) => Some(t),
                    _ => None,
                })
                .collect(),
            axis,
        )),
    };
    Value::new(data, shape)
}

/// Rows `indices` (an int primitive, in range) of `axis`.
pub fn select<B: Backend>(
    value: Value<B>,
    axis: usize,
    indices: burn::tensor::ops::IntTensor<B>,
    shape: Vec<usize>,
) -> Value<B> {
    let data = match value.data {
        Data::Float(t) => Data::Float(B::float_select(t, axis, indices)),
        Data::Int(t) => Data::Int(B::int_select(t, axis, indices)),
        Data::Bool(t) => Data::Bool(B::bool_select(t, axis, indices)),
    };
    Value::new(data, shape)
}

/// Element `indices` along `axis` (same shape as `indices`, in range).
pub fn gather_along<B: Backend>(
    value: Value<B>,
    axis: usize,
    indices: burn::tensor::ops::IntTensor<B>,
    shape: Vec<usize>,
) -> Value<B> {
    let data = match value.data {
        Data::Float(t) => Data::Float(B::float_gather(axis, t, indices)),
        Data::Int(t) => Data::Int(B::int_gather(axis, t, indices)),
        Data::Bool(t) => Data::Bool(B::bool_gather(axis, t, indices)),
    };
    Value::new(data, shape)
}

/// Element count of a shape, refusing one past `limit` elements (a hostile shape input).
pub fn checked_count(shape: &[usize], limit: usize) -> Result<usize, OpError> {
    let mut n: usize = 1;
    for &d in shape {
        n = n.checked_mul(d).filter(|&n| n <= limit).ok_or_else(|| {
            OpError::new(format!("shape {shape:?} holds more than {limit} elements"))
        })?;
    }
    Ok(n)
}

/// The most elements one intermediate tensor may hold (1 Gi elements, 4 GiB of FP32).
pub const MAX_ELEMENTS: usize = 1 << 30;
