//! The execution plan of an ONNX graph: built once at load from onnx-ir's nodes (already in
//! topological order), it numbers every value (slots), uploads initializers once, folds every
//! node whose inputs are all constants, and records where each value is used last so its
//! buffer is released (or handed to the kernel to reuse) as soon as it is dead. Running it
//! walks the steps over a vector of slots: nothing is parsed or looked up by name per request.

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use onnx_ir::ir::{Node, OnnxGraph};

use super::ops::Op;
use super::value::{Ctx, Value};
use super::OpError;
use crate::error::ModelError;

/// The names a file gives its graph inputs (initializers left out) and outputs, in order.
#[derive(Debug, Clone, Default)]
pub struct GraphNames {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// One node to run: its operator, where its inputs come from and its outputs go.
pub struct Step {
    pub op: Op,
    /// The node's name and op type, for errors.
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
    /// Input slots whose last use this is: moved into the kernel, not cloned.
    pub last_use: Vec<usize>,
}

/// A graph ready to run on one backend.
pub struct Plan<B: Backend> {
    pub steps: Vec<Step>,
    /// Values known at load (initializers, folded nodes), by slot.
    pub constants: Vec<(usize, Value<B>)>,
    pub slots: usize,
    /// Graph inputs and outputs by name.
    pub inputs: Vec<(String, usize)>,
    pub outputs: Vec<(String, usize)>,
}

/// Builds the plan of `graph` (opset `opset`) on `ctx`'s device.
/// `names` are the file's own names of the graph inputs and outputs, in order (onnx-ir
/// renames values to Rust identifiers).
pub fn build<B: Backend>(
    graph: &OnnxGraph,
    opset: i64,
    names: &GraphNames,
    ctx: &Ctx<B>,
) -> Result<Plan<B>, ModelError> {
    if names.inputs.len() != graph.inputs.len() || names.outputs.len() != graph.outputs.len() {
        return Err(ModelError::Load(format!(
            "onnx-ir reads {} inputs and {} outputs; the file lists {} and {}",
            graph.inputs.len(),
            graph.outputs.len(),
            names.inputs.len(),
            names.outputs.len()
        )));
    }
    let file_names = names;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut slots = 0usize;
    let mut next = || {
        slots += 1;
        slots - 1
    };
    let mut inputs = Vec::new();
    for (input, file_name) in graph.inputs.iter().zip(&file_names.inputs) {
        let slot = next();
        names.insert(input.name.clone(), slot);
        inputs.push((file_name.clone(), slot));
    }
    let mut constants: Vec<(usize, Value<B>)> = Vec::new();
    let mut steps = Vec::new();
    let load_error = |node: &str, kind: &str, e: String| {
        ModelError::Load(format!("node '{node}' ({kind}, opset {opset}): {e}"))
    };
    for node in &graph.nodes {
        if matches!(node, Node::Constant(_)) {
            // Its consumers read the value through their own arguments.
            for out in node.outputs() {
                if let Some(data) = out.value() {
                    let slot = next();
                    let value = Value::from_burn_data(data, ctx)
                        .map_err(|e| load_error(node.name(), "Constant", e.0))?;
                    constants.push((slot, value));
                    names.insert(out.name.clone(), slot);
                }
            }
            continue;
        }
        let kind = super::ops::op_type_of(node);
        if matches!(
            node,
            Node::MaxPool1d(_) | Node::MaxPool2d(_) | Node::MaxPool3d(_)
        ) && node.outputs().len() > 1
        {
            return Err(load_error(
                node.name(),
                &kind,
                "the Indices output of MaxPool is not supported".into(),
            ));
        }
        let op = Op::from_node(node, opset as usize).map_err(|t| {
            ModelError::Load(format!(
                "operator '{t}' (node '{}', opset {opset}) is not supported",
                node.name()
            ))
        })?;
        let mut step_inputs = Vec::with_capacity(node.inputs().len());
        let captured = op.static_inputs();
        for (index, arg) in node.inputs().iter().enumerate() {
            let captured = captured.contains(&index) && arg.value().is_some();
            if captured || arg.is_optional() || arg.name.is_empty() && arg.value().is_none() {
                step_inputs.push(None);
                continue;
            }
            if let Some(data) = arg.value() {
                let slot = next();
                let value = Value::from_burn_data(data, ctx)
                    .map_err(|e| load_error(node.name(), &kind, e.0))?;
                constants.push((slot, value));
                step_inputs.push(Some(slot));
                continue;
            }
            let slot = names.get(&arg.name).copied().ok_or_else(|| {
                load_error(
                    node.name(),
                    &kind,
                    format!("reads '{}', which no earlier node makes", arg.name),
                )
            })?;
            step_inputs.push(Some(slot));
        }
        let mut step_outputs = Vec::with_capacity(node.outputs().len());
        for out in node.outputs() {
            let slot = next();
            names.insert(out.name.clone(), slot);
            step_outputs.push(slot);
        }
        steps.push(Step {
            op,
            name: node.name().to_string(),
            op_type: kind,
            inputs: step_inputs,
            outputs: step_outputs,
            last_use: Vec::new(),
        });
    }
    let mut outputs = Vec::new();
    for (out, file_name) in graph.outputs.iter().zip(&file_names.outputs) {
        let slot = match names.get(&out.name) {
            Some(&slot) => slot,
            None => {
                let data = out.value().ok_or_else(|| {
                    ModelError::Load(format!("graph output '{}' is made by no node", out.name))
                })?;
                let slot = next();
                let value = Value::from_burn_data(data, ctx).map_err(|e| {
                    ModelError::Load(format!("graph output '{}': {}", out.name, e.0))
                })?;
                constants.push((slot, value));
                slot
            }
        };
        outputs.push((file_name.clone(), slot));
    }
    let mut plan = Plan {
        steps,
        constants,
        slots,
        inputs,
        outputs,
    };
    plan.fold(ctx)?;
    super::fuse::conv_batch_norm(&mut plan, ctx)?;
    plan.mark_last_uses();
    Ok(plan)
}

impl<B: Backend> Plan<B> {
    /// Runs every step whose inputs are all constants once, at load, keeping its outputs.
    fn fold(&mut self, ctx: &Ctx<B>) -> Result<(), ModelError> {
        let mut known: Vec<Option<Value<B>>> = vec![None; self.slots];
        for (slot, value) in &self.constants {
            known[*slot] = Some(value.clone());
        }
        let mut kept = Vec::with_capacity(self.steps.len());
        for step in std::mem::take(&mut self.steps) {
            let foldable = step
                .inputs
                .iter()
                .all(|s| s.is_none_or(|s| known[s].is_some()));
            if !foldable {
                kept.push(step);
                continue;
            }
            let args = step
                .inputs
                .iter()
                .map(|s| s.and_then(|s| known[s].clone()))
                .collect();
            let outputs = step.op.run(args, ctx).map_err(|e| {
                ModelError::Load(format!("node '{}' ({}): {}", step.name, step.op_type, e.0))
            })?;
            for (slot, value) in step.outputs.iter().zip(outputs) {
                known[*slot] = Some(value.clone());
                self.constants.push((*slot, value));
            }
        }
        self.steps = kept;
        self.drop_unused_constants();
        Ok(())
    }

    /// Drops the constants no step and no output reads (folded or fused nodes' inputs).
    pub(super) fn drop_unused_constants(&mut self) {
        let mut used = vec![false; self.slots];
        for step in &self.steps {
            for s in step.inputs.iter().flatten() {
                used[*s] = true;
            }
        }
        for (_, s) in &self.outputs {
            used[*s] = true;
        }
        self.constants.retain(|(slot, _)| used[*slot]);
    }

    /// Records at each step the inputs it reads for the last time (never a graph output).
    fn mark_last_uses(&mut self) {
        let mut last: Vec<Option<usize>> = vec![None; self.slots];
        for (i, step) in self.steps.iter().enumerate() {
            for s in step.inputs.iter().flatten() {
                last[*s] = Some(i);
            }
        }
        for (_, s) in &self.outputs {
            last[*s] = None;
        }
        for (i, step) in self.steps.iter_mut().enumerate() {
            let mut dead: Vec<usize> = step
                .inputs
                .iter()
                .flatten()
                .copied()
                .filter(|s| last[*s] == Some(i))
                .collect();
            dead.sort_unstable();
            dead.dedup();
            step.last_use = dead;
        }
    }

    /// Bytes the constants hold on the device.
    pub fn constant_bytes(&self) -> usize {
        self.constants.iter().map(|(_, v)| v.device_bytes()).sum()
    }

    /// Which steps the outputs in `wanted` need (`None`: every step).
    pub fn needed(&self, wanted: Option<&[String]>) -> Option<Vec<bool>> {
        let wanted = wanted?;
        let mut live = vec![false; self.slots];
        for (name, slot) in &self.outputs {
            if wanted.iter().any(|w| w == name) {
                live[*slot] = true;
            }
        }
        let mut needed = vec![false; self.steps.len()];
        for (i, step) in self.steps.iter().enumerate().rev() {
            if step.outputs.iter().any(|s| live[*s]) {
                needed[i] = true;
                for s in step.inputs.iter().flatten() {
                    live[*s] = true;
                }
            }
        }
        Some(needed)
    }

    /// Runs the plan on `inputs` (graph input slots' values, by name) and answers the values
    /// of the outputs in `wanted` (every output when `None`).
    pub fn run(
        &self,
        mut inputs: HashMap<String, Value<B>>,
        wanted: Option<&[String]>,
        ctx: &Ctx<B>,
    ) -> Result<Vec<(String, Value<B>)>, ModelError> {
        let mut values: Vec<Option<Value<B>>> = vec![None; self.slots];
        for (slot, value) in &self.constants {
            values[*slot] = Some(value.clone());
        }
        for (name, slot) in &self.inputs {
            values[*slot] = inputs.remove(name);
        }
        let needed = self.needed(wanted);
        for (i, step) in self.steps.iter().enumerate() {
            if needed.as_ref().is_some_and(|n| !n[i]) {
                continue;
            }
            let args: Vec<Option<Value<B>>> = step
                .inputs
                .iter()
                .enumerate()
                .map(|(at, s)| {
                    s.and_then(|s| {
                        // Moved at its last read only (a node may read one value twice: x * x).
                        let read_again = step.inputs[at + 1..].contains(&Some(s));
                        if step.last_use.contains(&s) && !read_again {
                            values[s].take()
                        } else {
                            values[s].clone()
                        }
                    })
                })
                .collect();
            let started = super::profile::enabled().then(std::time::Instant::now);
            let outputs = step.op.run(args, ctx).map_err(|e| step_error(step, e))?;
            if let Some(started) = started {
                super::profile::record(&step.op_type, started.elapsed());
            }
            if outputs.len() < step.outputs.len() {
                return Err(step_error(
                    step,
                    OpError::new(format!(
                        "made {} of {} outputs",
                        outputs.len(),
                        step.outputs.len()
                    )),
                ));
            }
            for (slot, value) in step.outputs.iter().zip(outputs) {
                values[*slot] = Some(value);
            }
        }
        let mut out = Vec::new();
        for (name, slot) in &self.outputs {
            if wanted.is_some_and(|w| !w.iter().any(|n| n == name)) {
                continue;
            }
            let value = values[*slot].clone().ok_or_else(|| {
                ModelError::Inference(format!("output '{name}' was not computed"))
            })?;
            out.push((name.clone(), value));
        }
        Ok(out)
    }
}

fn step_error(step: &Step, e: OpError) -> ModelError {
    ModelError::InvalidInput(format!(
        "node '{}' ({}) cannot run on this request: {}",
        step.name, step.op_type, e.0
    ))
}
