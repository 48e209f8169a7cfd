//! In-process forward throughput of a repository model at batch sizes 1, 8, 32 and 64 (the
//! runtime's ceiling for that model) on the CPU backend this build was made with, as one JSON
//! line on stdout, for `benches/run.sh` and `benches/backends.sh`. Text (BYTES) models get short
//! sentences of about 16 tokens, at batch sizes up to 32.
//! `cargo run --release --example raw_forward -- models/repository/fashion/1 [SECONDS_PER_BATCH] [DEVICE]`
//! (DEVICE: `cpu`, the default, or `cuda:N` in a `--features cuda` build).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burnserve_models::arch::CPU_BACKEND;
use burnserve_models::{load_model, DataType, Device, ModelSpec, NamedTensor, TensorData};

/// Sample sentences for text models, cycled to fill a batch.
const SENTENCES: [&str; 4] = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A model server should be fast, observable and boringly reliable.",
    "Dynamic batching gathers concurrent requests into one forward pass.",
    "Prometheus scrapes the metrics endpoint every fifteen seconds or so.",
];

/// A deterministic batch of `batch` items for the model's (one) input.
fn sample_input(spec: &ModelSpec, batch: usize) -> Vec<NamedTensor> {
    let input = spec.input();
    let mut shape = vec![batch];
    shape.extend(input.fixed_shape().unwrap_or_default());
    let data = if input.datatype == DataType::Bytes {
        TensorData::Bytes(
            (0..batch)
                .map(|i| SENTENCES[i % SENTENCES.len()].as_bytes().to_vec())
                .collect(),
        )
    } else {
        let item = input.item_len();
        TensorData::F32(
            (0..batch * item)
                .map(|i| (i % 255) as f32 / 255.0)
                .collect(),
        )
    };
    vec![NamedTensor::new(input.name.clone(), shape, data)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: raw_forward VERSION_DIR [SECONDS] [DEVICE]")?,
    );
    let seconds: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let device: Device = args.next().map_or(Ok(Device::Cpu), |s| s.parse())?;
    let spec = ModelSpec::from_dir(&dir)?;
    let mut model = load_model(&spec, &dir, device)?;
    let batches: &[usize] = if spec.input().datatype == DataType::Bytes {
        &[1, 8, 32]
    } else {
        &[1, 8, 32, 64]
    };
    let mut rates = serde_json::Map::new();
    let mut best = (0usize, 0f64);
    for &batch in batches {
        let input = sample_input(&spec, batch);
        model.forward(input.clone(), batch)?;
        let start = Instant::now();
        let mut items = 0usize;
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            model.forward(input.clone(), batch)?;
            items += batch;
        }
        let rate = items as f64 / start.elapsed().as_secs_f64();
        rates.insert(format!("batch_{batch}"), rate.into());
        if rate > best.1 {
            best = (batch, rate);
        }
    }
    let report = serde_json::json!({
        "model": dir.display().to_string(),
        "architecture": spec.architecture,
        "backend": if device == Device::Cpu { CPU_BACKEND } else { "cuda" },
        "device": device.to_string(),
        "items_per_s": rates,
        "best_batch": best.0,
        "best_items_per_s": best.1,
    });
    println!("{report}");
    Ok(())
}
