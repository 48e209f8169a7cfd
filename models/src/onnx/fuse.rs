//! Fusions applied to a plan after constant folding: a BatchNormalization after a Conv folded
//! into the Conv's weights and bias, as inference engines do (one pass over the activations
//! fewer, and no per-pass work on the statistics).

use burn::tensor::backend::Backend;

use super::ops::Op;
use super::plan::Plan;
use super::value::{Ctx, Value};
use crate::error::ModelError;

/// Folds a BatchNormalization whose input is a Conv's output (read by nothing else), with
/// constant weights and statistics, into the Conv's weights and bias (as inference
/// engines do): `w' = w * a`, `b' = (b - mean) * a + beta`, `a = scale / sqrt(var + eps)`.
pub fn conv_batch_norm<B: Backend>(plan: &mut Plan<B>, ctx: &Ctx<B>) -> Result<(), ModelError> {
    let mut uses = vec![0usize; plan.slots];
    for step in &plan.steps {
        for s in step.inputs.iter().flatten() {
            uses[*s] += 1;
        }
    }
    for (_, s) in &plan.outputs {
        uses[*s] += 1;
    }
    let constant = |slot: Option<usize>, constants: &[(usize, Value<B>)]| {
        slot.and_then(|s| {
            constants
                .iter()
                .find(|(c, _)| *c == s)
                .map(|(_, v)| v.clone())
        })
    };
    let mut removed = Vec::new();
    for i in 0..plan.steps.len() {
        let Op::BatchNorm { epsilon } = plan.steps[i].op else {
            continue;
        };
        let Some(Some(x)) = plan.steps[i].inputs.first().copied() else {
            continue;
        };
        let Some(j) = plan.steps[..i].iter().position(|s| s.outputs.contains(&x)) else {
            continue;
        };
        if !matches!(plan.steps[j].op, Op::Conv(_))
            || uses[x] != 1
            || plan.steps[j].outputs.len() != 1
        {
            continue;
        }
        let params: Vec<Option<Value<B>>> = (1..5)
            .map(|k| {
                constant(
                    plan.steps[i].inputs.get(k).copied().flatten(),
                    &plan.constants,
                )
            })
            .collect();
        let weight = constant(
            plan.steps[j].inputs.get(1).copied().flatten(),
            &plan.constants,
        );
        let bias_slot = plan.steps[j].inputs.get(2).copied().flatten();
        let bias = constant(bias_slot, &plan.constants);
        if bias_slot.is_some() && bias.is_none() {
            continue;
        }
        let (Some(weight), [Some(scale), Some(beta), Some(mean), Some(var)]) = (
            weight,
            [
                params[0].clone(),
                params[1].clone(),
                params[2].clone(),
                params[3].clone(),
            ],
        ) else {
            continue;
        };
        let read = |v: &Value<B>| v.to_f64s().map_err(|e| ModelError::Load(e.0));
        let (w, s, b, m, v) = (
            read(&weight)?,
            read(&scale)?,
            read(&beta)?,
            read(&mean)?,
            read(&var)?,
        );
        let out_channels = weight.shape.first().copied().unwrap_or(0);
        if out_channels == 0
            || [s.len(), b.len(), m.len(), v.len()]
                .iter()
                .any(|&n| n != out_channels)
        {
            continue;
        }
        let conv_bias = match &bias {
            Some(bv) => read(bv)?,
            None => vec![0.0; out_channels],
        };
        let per = w.len() / out_channels;
        let a: Vec<f64> = (0..out_channels)
            .map(|c| s[c] / (v[c] + epsilon).sqrt())
            .collect();
        let fused_w: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(k, x)| (x * a[k / per]) as f32)
            .collect();
        let fused_b: Vec<f32> = (0..out_channels)
            .map(|c| ((conv_bias[c] - m[c]) * a[c] + b[c]) as f32)
            .collect();
        let w_slot = plan.slots;
        let b_slot = plan.slots + 1;
        plan.slots += 2;
        plan.constants
            .push((w_slot, Value::from_f32s(fused_w, weight.shape.clone(), ctx)));
        plan.constants
            .push((b_slot, Value::from_f32s(fused_b, vec![out_channels], ctx)));
        let bn_outputs = plan.steps[i].outputs.clone();
        let conv = &mut plan.steps[j];
        conv.inputs.resize(3, None);
        conv.inputs[1] = Some(w_slot);
        conv.inputs[2] = Some(b_slot);
        conv.outputs = bn_outputs;
        removed.push(i);
    }
    let mut index = 0;
    plan.steps.retain(|_| {
        index += 1;
        !removed.contains(&(index - 1))
    });
    plan.drop_unused_constants();
    Ok(())
}
