//! `mlp`: a multilayer perceptron classifier, `[N, input] -> [N, classes]` probabilities
//! (Linear + ReLU per hidden layer, softmax over the last layer's logits).

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{backend::Backend, Tensor};

use super::{load_network, Network};
use crate::error::ModelError;
use crate::model::InferenceModel;
use crate::spec::ModelSpec;
use crate::weights;

/// Hidden layer sizes used when `params.hidden` is absent.
pub const DEFAULT_HIDDEN: &[usize] = &[128];

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    layers: Vec<Linear<B>>,
    activation: Relu,
}

impl<B: Backend> Mlp<B> {
    /// A freshly initialised network (weights from the backend's seeded RNG).
    pub fn new(device: &B::Device, input: usize, hidden: &[usize], classes: usize) -> Self {
        let mut sizes = vec![input];
        sizes.extend_from_slice(hidden);
        sizes.push(classes);
        let layers = sizes
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(device))
            .collect();
        Self {
            layers,
            activation: Relu::new(),
        }
    }

    /// Builds the network `spec` describes, uninitialised weights included.
    pub fn from_spec(spec: &ModelSpec, device: &B::Device) -> Result<Self, ModelError> {
        let hidden: Vec<usize> = spec.param("hidden", DEFAULT_HIDDEN.to_vec())?;
        Ok(Self::new(
            device,
            spec.input.item_len(),
            &hidden,
            spec.output.item_len(),
        ))
    }

    /// `[N, input] -> [N, classes]` unnormalised scores.
    fn scores(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(input, |x, (i, layer)| {
            let y = layer.forward(x);
            if i < last {
                self.activation.forward(y)
            } else {
                y
            }
        })
    }
}

impl<B: Backend> Network<B> for Mlp<B> {
    fn logits(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        self.scores(input)
    }
}

/// Loads an `mlp` version: the network from `spec`, its weights from the safetensors file.
pub fn load(
    spec: &ModelSpec,
    dir: &Path,
    device: crate::Device,
) -> Result<Box<dyn InferenceModel>, ModelError> {
    load_network!(Mlp, "mlp", spec, dir, device)
}

/// Writes the weights of a freshly initialised `mlp` for `spec`, seeded, to `path` (fixtures,
/// and the starting point of training).
pub fn write_initialised(spec: &ModelSpec, path: &Path, seed: u64) -> Result<(), ModelError> {
    type B = super::CpuBackend;
    let device = Default::default();
    <B as Backend>::seed(&device, seed);
    let network = Mlp::<B>::from_spec(spec, &device)?;
    weights::save_safetensors(&network, path)
}
