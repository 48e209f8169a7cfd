//! Triton's `reshape`: a tensor the graph takes or gives in another layout than clients send
//! and receive (same values, other dimensions). Inputs are reshaped to the graph's shape before
//! the pass, outputs back to the declared `shape` after it; the batch dimension stays.

use crate::spec::{ModelSpec, VARIABLE};
use crate::tensor::NamedTensor;

/// The reshaped tensors of a signature.
#[derive(Debug, Clone, Default)]
pub struct Reshapes {
    batched: bool,
    /// Input name → the graph's item shape.
    inputs: Vec<(String, Vec<i64>)>,
    /// Output name → the declared (client) item shape.
    outputs: Vec<(String, Vec<i64>)>,
}

impl Reshapes {
    pub fn of(spec: &ModelSpec) -> Self {
        Self {
            batched: spec.batching.is_batched(),
            inputs: spec
                .inputs
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.reshape.clone()?)))
                .collect(),
            outputs: spec
                .outputs
                .iter()
                .filter(|t| t.reshape.is_some())
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.outputs.is_empty()
    }

    pub fn inputs(&self, tensors: &mut [NamedTensor]) {
        reshape_all(&self.inputs, self.batched, tensors);
    }

    pub fn outputs(&self, tensors: &mut [NamedTensor]) {
        reshape_all(&self.outputs, self.batched, tensors);
    }
}

fn reshape_all(targets: &[(String, Vec<i64>)], batched: bool, tensors: &mut [NamedTensor]) {
    for tensor in tensors {
        if let Some((_, target)) = targets.iter().find(|(n, _)| *n == tensor.name) {
            if let Some(shape) = reshaped(&tensor.shape, batched, target) {
                tensor.shape = shape;
            }
        }
    }
}

/// `shape` as `target` (per item; one `-1` inferred), keeping the batch dimension; `None` when
/// the values do not fit (the graph then says what it got).
pub fn reshaped(shape: &[usize], batched: bool, target: &[i64]) -> Option<Vec<usize>> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len() + 1);
    let mut per_item = total;
    if batched {
        let rows = *shape.first()?;
        out.push(rows);
        per_item = total.checked_div(rows)?;
    }
    let fixed: usize = target
        .iter()
        .filter(|&&d| d != VARIABLE)
        .map(|&d| d as usize)
        .product();
    for &d in target {
        out.push(if d == VARIABLE {
            per_item.checked_div(fixed)?
        } else {
            d as usize
        });
    }
    (out.iter().product::<usize>() == total).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_keeps_rows_and_infers_one_dimension() {
        assert_eq!(
            reshaped(&[5, 28, 28], true, &[1, 28, 28]),
            Some(vec![5, 1, 28, 28])
        );
        assert_eq!(reshaped(&[5, 784], true, &[28, -1]), Some(vec![5, 28, 28]));
        assert_eq!(reshaped(&[1], false, &[]), Some(vec![]));
        assert_eq!(reshaped(&[3, 10], true, &[3, 3]), None);
        assert_eq!(reshaped(&[0, 4], true, &[2, 2]), None);
    }
}
