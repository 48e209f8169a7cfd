//! Scaled dot-product self-attention on the CPU backend's buffers: for every (sequence, head),
//! `softmax(q·kᵀ + key mask)·v` with two small GEMMs and a vectorised softmax between them, all
//! (sequence, head) pairs in parallel on the rayon pool. burn-flex 0.21 spends most of a
//! MiniLM pass's single-threaded time splitting heads out (`swap_dims` then a copy per matmul)
//! and merging them back; here the heads are read and written in place through strides.
//! burn 0.21's own fused `attention` op (burn-flex `ops/attention.rs`) was not used: it takes
//! `[b, heads, s, d]`, copies q, k and v to contiguous buffers first, and runs on the calling
//! thread only (no rayon in it). Other backends keep burn's ops ([`attention`] falls back).

use std::any::TypeId;

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Where padding keys are: `[batch · seq]`, 1 for a real token and 0 for padding (the
/// tokenizer's attention mask). Padding keys get `-1e9` added to their scores, so softmax gives
/// them no weight (as BERT's additive mask).
pub type KeyMask<'a> = Option<&'a [f32]>;

/// Attention over the fused projections `qkv`, `[batch · seq, 3 · width]` with
/// `width = heads · head_dim`: q in columns `0..width`, k in `width..2·width`, v in
/// `2·width..3·width`; rows of sequence `i` at `i·seq ..`, head `h` at `h·head_dim` within
/// each; q already scaled by 1/√head_dim. Answers the context, `[batch · seq, width]`.
pub fn attention<B: Backend>(
    qkv: Tensor<B, 2>,
    shape: AttentionShape,
    key_mask: KeyMask<'_>,
) -> Tensor<B, 2> {
    if TypeId::of::<B>() == TypeId::of::<super::CpuBackend>() {
        let device = qkv.device();
        let data = qkv.into_data();
        if let Ok(values) = data.as_slice::<f32>() {
            let context = attention_host(values, shape, key_mask);
            let rows = shape.batch * shape.seq;
            return Tensor::from_data(TensorData::new(context, [rows, shape.width()]), &device);
        }
        // Not f32 (never on the CPU backend's default float): burn's ops on the same values.
        return attention_burn(Tensor::from_data(data, &device), shape, key_mask);
    }
    attention_burn(qkv, shape, key_mask)
}

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Columns of q (and of k, v and the context): `heads · head_dim`.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// The same attention with burn's tensor ops (any backend; the reference for the host kernel).
pub fn attention_burn<B: Backend>(
    qkv: Tensor<B, 2>,
    shape: AttentionShape,
    key_mask: KeyMask<'_>,
) -> Tensor<B, 2> {
    let AttentionShape {
        batch: b,
        seq: s,
        heads,
        head_dim: d,
    } = shape;
    let w = shape.width();
    // columns `part·w ..` of [b·s, 3w] -> [b, heads, s, d]
    let split = |part: usize| {
        qkv.clone()
            .slice([0..b * s, part * w..(part + 1) * w])
            .reshape([b, s, heads, d])
            .swap_dims(1, 2)
    };
    let mut scores = split(0).matmul(split(1).swap_dims(2, 3));
    if let Some(mask) = key_mask {
        let device = scores.device();
        let bias: Vec<f32> = mask.iter().map(|m| (1.0 - m) * -1e9).collect();
        let bias = Tensor::<B, 1>::from_data(TensorData::new(bias, [b * s]), &device)
            .reshape([b, 1, 1, s])
            .repeat_dim(1, heads)
            .repeat_dim(2, s);
        scores = scores + bias;
    }
    softmax(scores, 3)
        .matmul(split(2))
        .swap_dims(1, 2)
        .reshape([b * s, heads * d])
}

/// A pointer the parallel tasks share; each writes only its own (sequence, head) block.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint blocks (see `attention_host`), and the buffer outlives them.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The element `offset` values in (a method, so closures capture the whole `Send` value).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The host kernel over the fused projections as one `f32` slice (layout as [`attention`]).
pub fn attention_host(qkv: &[f32], shape: AttentionShape, key_mask: KeyMask<'_>) -> Vec<f32> {
    let AttentionShape {
        batch,
        seq,
        heads,
        head_dim,
    } = shape;
    let width = shape.width();
    let len = batch * seq * width;
    assert!(
        qkv.len() == 3 * len,
        "attention: projections of {} values for {shape:?}",
        qkv.len()
    );
    if let Some(mask) = key_mask {
        assert_eq!(mask.len(), batch * seq, "attention: key mask length");
    }
    let mut context = vec![0.0f32; len];
    let out = SharedOut(context.as_mut_ptr());
    let one = |scores: &mut Vec<f32>, task: usize| {
        let (sequence, head) = (task / heads, task % heads);
        // The first element of this (sequence, head) block: in the context `[b·s, width]`, and
        // of q in `[b·s, 3·width]` (k and v `width` and `2·width` further on).
        let base = sequence * seq * width + head * head_dim;
        let q = qkv
            .as_ptr()
            .wrapping_add(3 * sequence * seq * width + head * head_dim);
        let (k, v) = (q.wrapping_add(width), q.wrapping_add(2 * width));
        scores.resize(seq * seq, 0.0);
        let (w, w3, s) = (width as isize, 3 * width as isize, seq as isize);
        // SAFETY: every pointer and stride stays inside its buffer: rows `sequence·seq ..
        // +seq` of `3·width` values, columns `head·head_dim .. +head_dim` of q, k or v
        // (asserted length above); `scores` holds seq² values.
        unsafe {
            // scores[i, j] = Σ_c q[i, c] · k[j, c]
            gemm::gemm(
                seq,
                seq,
                head_dim,
                scores.as_mut_ptr(),
                1,
                s,
                false,
                q,
                1,
                w3,
                k,
                w3,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        let mask = key_mask.map(|m| &m[sequence * seq..(sequence + 1) * seq]);
        for row in scores.chunks_exact_mut(seq) {
            if let Some(mask) = mask {
                for (score, m) in row.iter_mut().zip(mask) {
                    *score += (1.0 - m) * -1e9;
                }
            }
            softmax_row(row);
        }
        // SAFETY: as above; the destination block (rows of this sequence, columns of this
        // head) is written by this task only.
        unsafe {
            // context[i, c] = Σ_j p[i, j] · v[j, c]
            gemm::gemm(
                seq,
                head_dim,
                seq,
                out.at(base),
                1,
                w,
                false,
                scores.as_ptr(),
                1,
                s,
                v,
                1,
                w3,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    let tasks = batch * heads;
    if tasks > 1 && len >= PARALLEL_MIN_VALUES {
        (0..tasks)
            .into_par_iter()
            .for_each_init(Vec::new, |scores, task| one(scores, task));
    } else {
        let mut scores = Vec::new();
        (0..tasks).for_each(|task| one(&mut scores, task));
    }
    context
}

/// Below this many projection values a call runs on the calling thread (a short single text
/// is a few microseconds of work, less than waking the pool).
const PARALLEL_MIN_VALUES: usize = 4 * 1024;

/// Softmax of one row in place: `exp(x - max) / Σ exp(x - max)`.
fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    super::kernels::exp_minus_slice(row, max);
    let sum: f32 = row.iter().sum();
    let inverse = 1.0 / sum;
    for x in row {
        *x *= inverse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::CpuBackend;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn compare(shape: AttentionShape, mask: Option<Vec<f32>>) {
        let n = shape.batch * shape.seq * 3 * shape.width();
        let qkv = values(n, 1);
        let host = attention_host(&qkv, shape, mask.as_deref());
        let device = Default::default();
        let tensor = Tensor::<CpuBackend, 2>::from_data(
            TensorData::new(qkv, [shape.batch * shape.seq, 3 * shape.width()]),
            &device,
        );
        let reference = attention_burn(tensor, shape, mask.as_deref())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(host.len(), reference.len());
        let worst = host
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{shape:?}: differs by {worst}");
    }

    #[test]
    fn equals_burns_attention_with_and_without_padding() {
        let shape = |batch, seq| AttentionShape {
            batch,
            seq,
            heads: 12,
            head_dim: 32,
        };
        compare(shape(1, 1), None);
        compare(shape(1, 7), None);
        compare(shape(3, 16), None);
        // Sequence 0 has 5 real tokens of 9, sequence 1 all 9, sequence 2 one.
        let mask: Vec<f32> = [5, 9, 1]
            .iter()
            .flat_map(|&real| (0..9).map(move |i| if i < real { 1.0 } else { 0.0 }))
            .collect();
        compare(shape(3, 9), Some(mask));
    }

    #[test]
    fn padding_keys_get_no_weight() {
        // One sequence of 3 tokens, the last padding: its value must not reach the context.
        let shape = AttentionShape {
            batch: 1,
            seq: 3,
            heads: 1,
            head_dim: 1,
        };
        // Rows of (q, k, v).
        let qkv = [1.0, 0.0, 2.0, 1.0, 0.0, 4.0, 1.0, 50.0, 1000.0];
        let context = attention_host(&qkv, shape, Some(&[1.0, 1.0, 0.0]));
        assert_eq!(context.len(), 3);
        for c in context {
            assert!((c - 3.0).abs() < 1e-6, "{c}");
        }
    }

    #[test]
    #[should_panic(expected = "attention: projections")]
    fn rejects_projections_of_the_wrong_size() {
        let shape = AttentionShape {
            batch: 1,
            seq: 2,
            heads: 1,
            head_dim: 2,
        };
        attention_host(&[0.0; 11], shape, None);
    }
}
