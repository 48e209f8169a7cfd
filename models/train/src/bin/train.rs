//! `train`: trains a bundled model with burn on the CPU and writes it into the model repository.
//!
//! `cargo run --release -p burnserve-train --bin train -- fashion-mlp` (version 1) or
//! `-- fashion-cnn` (version 2). Deterministic for a seed; needs scripts/install-datasets.sh.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burnserve_models::arch::cnn::Cnn;
use burnserve_models::arch::mlp::Mlp;
use burnserve_models::spec::{sha256_of, BatchingSpec, ModelSpec, TensorSpec, SPEC_FILE};
use burnserve_models::weights::save_safetensors;
use burnserve_models::{DataType, ModelError};
use burnserve_train::datasets::{FashionMnist, Split, FASHION_CLASSES};
use burnserve_train::train::{train, TrainBackend, TrainConfig};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Recipe {
    /// Version 1 of `fashion`: an MLP 784-256-128-10.
    FashionMlp,
    /// Version 2 of `fashion`: conv(16) → pool → conv(32) → pool → dense(128) → 10.
    FashionCnn,
}

/// Train a bundled model and write `<repository>/<model>/<version>/`.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    recipe: Recipe,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    #[arg(long, default_value = "models/repository")]
    repository: PathBuf,
    /// Version directory to write (default: 1 for the MLP, 2 for the CNN).
    #[arg(long)]
    version: Option<String>,
}

fn fashion_spec(architecture: &str, params: toml::Table, description: String) -> ModelSpec {
    ModelSpec {
        architecture: architecture.into(),
        weights: Some("model.safetensors".into()),
        sha256: None,
        files: Default::default(),
        description,
        params,
        inputs: vec![TensorSpec {
            min: Some(0.0),
            max: Some(1.0),
            accept_uint8: true,
            ..TensorSpec::new("pixels", DataType::F32, &[28, 28])
        }],
        outputs: vec![TensorSpec {
            labels: FASHION_CLASSES.iter().map(|c| c.to_string()).collect(),
            ..TensorSpec::new("probabilities", DataType::F32, &[10])
        }],
        legacy_input: None,
        legacy_output: None,
        batching: BatchingSpec {
            max_batch_size: 64,
            max_batch_delay_ms: 1.0,
            queue_capacity: 512,
            adaptive_delay: true,
            instances: Default::default(),
            threads_per_instance: Default::default(),
            preferred_batch_sizes: Vec::new(),
        },
        timeout_ms: 5000,
        restart_after_failed_batches: 20,
        allow_timeout_override: true,
        warmup: Vec::new(),
        triton: None,
    }
}

fn run(cli: Cli) -> Result<(), ModelError> {
    let started = Instant::now();
    let train_set = FashionMnist::load(Split::Train)?;
    let test_set = FashionMnist::load(Split::Test)?;
    println!(
        "Fashion-MNIST: {} training and {} test images",
        train_set.len(),
        test_set.len()
    );
    let (architecture, default_version, default_epochs, params) = match cli.recipe {
        Recipe::FashionMlp => ("mlp", "1", 8, toml::toml! { hidden = [256, 128] }),
        Recipe::FashionCnn => (
            "cnn",
            "2",
            5,
            toml::toml! { channels = [16, 32]
            hidden = 128 },
        ),
    };
    let config = TrainConfig {
        epochs: cli.epochs.unwrap_or(default_epochs),
        batch_size: cli.batch_size,
        learning_rate: cli.learning_rate,
        seed: cli.seed,
    };
    let version = cli.version.unwrap_or_else(|| default_version.to_string());
    let dir = cli.repository.join("fashion").join(&version);
    std::fs::create_dir_all(&dir)
        .map_err(|e| ModelError::Load(format!("{}: {e}", dir.display())))?;
    let mut spec = fashion_spec(architecture, params, String::new());
    let device = Default::default();
    <TrainBackend as burn::tensor::backend::Backend>::seed(&device, config.seed);
    let weights_path = dir.join("model.safetensors");
    let reports = match cli.recipe {
        Recipe::FashionMlp => {
            let (network, reports) = train(
                Mlp::<TrainBackend>::from_spec(&spec, &device)?,
                &train_set,
                &test_set,
                &config,
                true,
            );
            save_safetensors(&network, &weights_path)?;
            reports
        }
        Recipe::FashionCnn => {
            let (network, reports) = train(
                Cnn::<TrainBackend>::from_spec(&spec, &device)?,
                &train_set,
                &test_set,
                &config,
                true,
            );
            save_safetensors(&network, &weights_path)?;
            reports
        }
    };
    let last = reports
        .last()
        .ok_or_else(|| ModelError::Load("no epoch ran".into()))?;
    let took = started.elapsed().as_secs_f64();
    spec.description = format!(
        "Fashion-MNIST {architecture}: test accuracy {:.2}% after {} epochs (seed {}, batch {}, Adam lr {}), trained in {took:.0} s",
        last.test_accuracy * 100.0,
        config.epochs,
        config.seed,
        config.batch_size,
        config.learning_rate
    );
    spec.sha256 = Some(sha256_of(&weights_path)?);
    let body = toml::to_string(&spec).map_err(|e| ModelError::Load(e.to_string()))?;
    let header = format!(
        "# Written by `cargo run --release -p burnserve-train --bin train -- {}`; edit batching and\n# timeout freely, the rest describes the weights.\n",
        match cli.recipe {
            Recipe::FashionMlp => "fashion-mlp",
            Recipe::FashionCnn => "fashion-cnn",
        }
    );
    let spec_path = dir.join(SPEC_FILE);
    std::fs::write(&spec_path, header + &body)
        .map_err(|e| ModelError::Load(format!("{}: {e}", spec_path.display())))?;
    let bytes = std::fs::metadata(&weights_path)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "wrote {} ({bytes} bytes of weights): test accuracy {:.2}%, {took:.1} s in all",
        dir.display(),
        last.test_accuracy * 100.0
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("train: {err}");
            ExitCode::FAILURE
        }
    }
}
