//! Training classifiers on Fashion-MNIST with burn's autodiff on the CPU: seeded (the same seed
//! gives the same weights), mini-batch Adam on cross-entropy, per-epoch loss and accuracy.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::datasets::{FashionMnist, IMAGE_PIXELS};
use burnserve_models::arch::{CpuBackend, Network};

/// The backend training runs on: autodiff over the CPU serving backend.
pub type TrainBackend = Autodiff<CpuBackend>;

#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
}

/// Normalised pixels of `indices` as `[n, 784]` and their labels as `[n]`.
fn batch<B: Backend>(
    data: &FashionMnist,
    indices: &[usize],
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let mut pixels = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &i in indices {
        pixels.extend(data.image(i).iter().map(|&p| f32::from(p) / 255.0));
    }
    let labels: Vec<i64> = indices.iter().map(|&i| i64::from(data.labels[i])).collect();
    let x = Tensor::from_data(
        TensorData::new(pixels, [indices.len(), IMAGE_PIXELS]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
    (x, y)
}

/// How many rows of `[n, classes]` scores pick the label at `indices`.
fn correct(scores: Vec<f32>, classes: usize, data: &FashionMnist, indices: &[usize]) -> usize {
    scores
        .chunks(classes)
        .zip(indices)
        .filter(|(row, &i)| {
            let best = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            best == usize::from(data.labels[i])
        })
        .count()
}

/// Accuracy of a (non-autodiff) network on every item of `data`.
pub fn accuracy<B: Backend, N: Network<B>>(
    network: &N,
    data: &FashionMnist,
    device: &B::Device,
) -> f64 {
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut right = 0;
    for chunk in indices.chunks(500) {
        let (x, _) = batch::<B>(data, chunk, device);
        let scores = network.logits(x);
        let classes = scores.dims()[1];
        let values = scores.into_data().into_vec::<f32>().unwrap_or_default();
        right += correct(values, classes, data, chunk);
    }
    right as f64 / data.len() as f64
}

/// Trains `network` and returns the trained (inner, servable) network and one report per epoch.
pub fn train<N>(
    mut network: N,
    train: &FashionMnist,
    test: &FashionMnist,
    config: &TrainConfig,
    progress: bool,
) -> (N::InnerModule, Vec<EpochReport>)
where
    N: AutodiffModule<TrainBackend> + Network<TrainBackend>,
    N::InnerModule: Network<CpuBackend>,
{
    let device = Default::default();
    let mut optimizer = AdamConfig::new().init::<TrainBackend, N>();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut reports = Vec::new();
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        order.shuffle(&mut rng);
        let steps = order.len().div_ceil(config.batch_size);
        let bar = if progress {
            ProgressBar::new(steps as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", config.epochs));
        let (mut loss_sum, mut right) = (0.0, 0);
        for (step, indices) in order.chunks(config.batch_size).enumerate() {
            let (x, y) = batch::<TrainBackend>(train, indices, &device);
            let logits = network.logits(x);
            let loss = loss_fn.forward(logits.clone(), y);
            let classes = logits.dims()[1];
            right += correct(
                logits.into_data().into_vec::<f32>().unwrap_or_default(),
                classes,
                train,
                indices,
            );
            loss_sum += f64::from(loss.clone().into_scalar()) * indices.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            network = optimizer.step(config.learning_rate, network, grads);
            if step % 20 == 0 {
                bar.set_message(format!(
                    "loss {:.4}",
                    loss_sum / ((step + 1) * config.batch_size) as f64
                ));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let test_accuracy = accuracy(&network.valid(), test, &device);
        let report = EpochReport {
            epoch,
            loss: loss_sum / train.len() as f64,
            train_accuracy: right as f64 / train.len() as f64,
            test_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        if progress {
            println!(
                "epoch {epoch}/{}: loss {:.4}  train accuracy {:.2}%  test accuracy {:.2}%  ({:.1} s)",
                config.epochs,
                report.loss,
                report.train_accuracy * 100.0,
                report.test_accuracy * 100.0,
                report.seconds
            );
        }
        reports.push(report);
    }
    (network.valid(), reports)
}
