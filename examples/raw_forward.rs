//! In-process forward throughput of a repository model at batch sizes 1, 8, 32 and 64 (the
//! runtime's ceiling for that model), as one JSON line on stdout, for `benches/run.sh`.
//! `cargo run --release --example raw_forward -- models/repository/fashion/1 [SECONDS_PER_BATCH]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burnserve_models::{load_model, Device, InputData, ModelSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: raw_forward VERSION_DIR [SECONDS]")?,
    );
    let seconds: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let spec = ModelSpec::from_dir(&dir)?;
    let mut model = load_model(&spec, &dir, Device::Cpu)?;
    let item = spec.input.item_len();
    let mut rates = serde_json::Map::new();
    let mut best = (0usize, 0f64);
    for batch in [1usize, 8, 32, 64] {
        let input: Vec<f32> = (0..batch * item)
            .map(|i| (i % 255) as f32 / 255.0)
            .collect();
        model.forward(InputData::Fp32(input.clone()), batch)?;
        let start = Instant::now();
        let mut items = 0usize;
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            model.forward(InputData::Fp32(input.clone()), batch)?;
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
        "items_per_s": rates,
        "best_batch": best.0,
        "best_items_per_s": best.1,
    });
    println!("{report}");
    Ok(())
}
