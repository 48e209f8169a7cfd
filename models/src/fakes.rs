//! Fake models for tests and benches (feature `test-util`): they echo their input and can be
//! slow, panic, or fail fatally on a marker value, so the runtime's failure paths can be driven.
//!
//! | architecture | behaviour | params |
//! |---|---|---|
//! | `fake-echo`  | output = input | `delay_ms` (0) |
//! | `fake-slow`  | sleeps, then echoes | `delay_ms` (200) |
//! | `fake-panic` | panics when an item starts with `marker` | `marker` (-1.0), `delay_ms` (0) |
//! | `fake-fail`  | returns a fatal error when an item starts with `marker` | `marker` (-1.0) |
//! | `fake-threads` | answers every value with the number of threads its pass may use (rayon's current pool) | `delay_ms` (0) |
//!
//! Every fake also takes `load_delay_ms` (0): how long building it takes (a slow load), and
//! `warm_up_delay_ms` (`delay_ms`): the delay of its first two passes (the executor's warm-up),
//! so a test can give the runtime's cost estimate a wrong start.

use std::time::Duration;

use crate::error::ModelError;
use crate::input::{take_f32, ModelOutput};
use crate::model::InferenceModel;
use crate::spec::ModelSpec;
use crate::tensor::{DataType, NamedTensor};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Misbehaviour {
    None,
    Panic(f32),
    Fatal(f32),
    /// Answers the size of the thread pool the pass runs on.
    ReportThreads,
}

#[derive(Debug, Clone)]
pub struct FakeModel {
    item_len: usize,
    /// The output's name and item shape.
    output: (String, Vec<usize>),
    delay: Duration,
    warm_up_delay: Duration,
    passes: u64,
    misbehaviour: Misbehaviour,
}

pub fn load(spec: &ModelSpec) -> Result<Box<dyn InferenceModel>, ModelError> {
    spec.require_single(&spec.architecture, &[DataType::F32], DataType::F32)?;
    if spec.input().item_len() != spec.output().item_len() {
        return Err(ModelError::Load(
            "fake models echo: input and output sizes must match".into(),
        ));
    }
    let (default_delay, misbehaviour) = match spec.architecture.as_str() {
        "fake-echo" => (0, Misbehaviour::None),
        "fake-slow" => (200, Misbehaviour::None),
        "fake-panic" => (0, Misbehaviour::Panic(spec.param("marker", -1.0)?)),
        "fake-fail" => (0, Misbehaviour::Fatal(spec.param("marker", -1.0)?)),
        "fake-threads" => (0, Misbehaviour::ReportThreads),
        other => {
            return Err(ModelError::Load(format!(
                "unknown fake architecture '{other}'"
            )))
        }
    };
    let delay_ms: u64 = spec.param("delay_ms", default_delay)?;
    let load_delay_ms: u64 = spec.param("load_delay_ms", 0)?;
    let warm_up_delay_ms: u64 = spec.param("warm_up_delay_ms", delay_ms)?;
    if load_delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(load_delay_ms));
    }
    Ok(Box::new(FakeModel {
        item_len: spec.input().item_len(),
        output: (
            spec.output().name.clone(),
            spec.output().fixed_shape().unwrap_or_default(),
        ),
        delay: Duration::from_millis(delay_ms),
        warm_up_delay: Duration::from_millis(warm_up_delay_ms),
        passes: 0,
        misbehaviour,
    }))
}

impl InferenceModel for FakeModel {
    fn forward(
        &mut self,
        inputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<ModelOutput, ModelError> {
        let input = take_f32(inputs)?;
        if input.len() != rows * self.item_len {
            return Err(ModelError::Inference(
                "batch size does not match its rows".into(),
            ));
        }
        let marked = |marker: f32| input.chunks(self.item_len).any(|item| item[0] == marker);
        match self.misbehaviour {
            Misbehaviour::Panic(marker) if marked(marker) => {
                panic!("fake-panic model hit its marker input {marker}")
            }
            Misbehaviour::Fatal(marker) if marked(marker) => {
                return Err(ModelError::Fatal(format!(
                    "fake-fail model hit its marker input {marker}"
                )))
            }
            _ => {}
        }
        self.passes += 1;
        let delay = if self.passes <= 2 {
            self.warm_up_delay
        } else {
            self.delay
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let values = if self.misbehaviour == Misbehaviour::ReportThreads {
            vec![rayon::current_num_threads() as f32; input.len()]
        } else {
            input
        };
        Ok(ModelOutput::f32(
            &self.output.0,
            rows,
            &self.output.1,
            values,
        ))
    }

    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        Some(Box::new(self.clone()))
    }
}
