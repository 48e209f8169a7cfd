//! `mlp`: a multilayer perceptron classifier, `[N, input] -> [N, classes]` probabilities
//! (Linear + ReLU per hidden layer, softmax over the last layer's logits).

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{backend::Backend, Tensor};

use super::bounds::{check as bounded, MAX_LAYERS, MAX_WIDTH};
use super::{load_network, Network};
use crate::error::ModelError;
use crate::header::{describe_indices, WeightsHeader};
use crate::load::LoadContext;
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
            spec.input().item_len(),
            &hidden,
            spec.output().item_len(),
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
pub fn load(ctx: &LoadContext) -> Result<Box<dyn InferenceModel>, ModelError> {
    load_network!(Mlp, "mlp", check_weights, ctx)
}

/// Compares `params.hidden` (and the input and output sizes) with the tensors the weights hold
/// (`layers.N.weight` `[in, out]`, `layers.N.bias` `[out]`), then with the absolute bounds;
/// answers one instance's working memory for a full batch (every layer's activations, twice).
pub fn check_weights(spec: &ModelSpec, header: &WeightsHeader) -> Result<u64, ModelError> {
    let hidden: Vec<usize> = spec.param("hidden", DEFAULT_HIDDEN.to_vec())?;
    let because = || format!("params.hidden = {hidden:?}");
    let held = header.indices("layers.");
    let layers = hidden.len() + 1;
    if held.len() != layers || held.last() != Some(&(layers - 1)) {
        return Err(ModelError::Load(format!(
            "{} gives {layers} layers; the weights hold {}",
            because(),
            describe_indices("layers.", &held)
        )));
    }
    let mut sizes = vec![spec.input().item_len()];
    sizes.extend_from_slice(&hidden);
    sizes.push(spec.output().item_len());
    for (i, pair) in sizes.windows(2).enumerate() {
        header.expect_shape(&format!("layers.{i}.weight"), pair, &because)?;
        header.expect_shape(&format!("layers.{i}.bias"), &pair[1..], &because)?;
    }
    bounded("params.hidden's length", layers, MAX_LAYERS)?;
    for (i, &width) in hidden.iter().enumerate() {
        bounded(&format!("params.hidden[{i}]"), width, MAX_WIDTH)?;
    }
    let values: u64 = sizes.iter().map(|&n| n as u64).sum();
    Ok(values * 2 * 4 * spec.batching.max_batch_size as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled Fashion-MNIST MLP (hidden [256, 128]) and its weights' header.
    fn fashion() -> (ModelSpec, WeightsHeader) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("repository/fashion/1");
        let spec = ModelSpec::from_dir(&dir).expect("bundled spec");
        let header = WeightsHeader::read(&dir.join("model.safetensors")).expect("header");
        (spec, header)
    }

    #[test]
    fn hidden_sizes_must_be_what_the_weights_hold() {
        let (mut spec, header) = fashion();
        let working = check_weights(&spec, &header).expect("the bundled version matches");
        // 64 rows × (784 + 256 + 128 + 10) values, twice, as f32.
        assert_eq!(working, 64 * 1178 * 2 * 4);
        let mut with_hidden = |hidden: Vec<i64>| {
            let values = hidden.into_iter().map(toml::Value::Integer).collect();
            spec.params
                .insert("hidden".into(), toml::Value::Array(values));
            check_weights(&spec, &header).unwrap_err().to_string()
        };
        let err = with_hidden(vec![512, 128]);
        assert!(
            err.contains("params.hidden = [512, 128]")
                && err.contains("'layers.0.weight' of shape [784, 256]")
                && err.contains("[784, 512]"),
            "{err}"
        );
        let err = with_hidden(vec![256, 128, 64]);
        assert!(
            err.contains("gives 4 layers; the weights hold 3 (layers.0 … layers.2)"),
            "{err}"
        );
        let started = std::time::Instant::now();
        let err = with_hidden(vec![1_000_000; 20_000]);
        assert!(
            err.contains("gives 20001 layers; the weights hold 3"),
            "{}",
            &err[err.len() - 80..]
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The input and output sizes come from model.toml: checked too.
        let (mut spec, header) = fashion();
        spec.outputs[0].shape = vec![11];
        spec.outputs[0].labels.clear();
        let err = check_weights(&spec, &header).unwrap_err().to_string();
        assert!(
            err.contains("'layers.2.weight' of shape [128, 10]"),
            "{err}"
        );
    }
}
