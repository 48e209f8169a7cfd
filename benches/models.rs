//! Forward latency of the bundled `fashion` versions in-process, at batch 1, 8 and 32,
//! exactly as an executor calls them (plain `Vec<f32>` in and out).
//!
//! `cargo bench --bench models`

use std::path::Path;

use burnserve_models::{forward_f32, load_model, Device, ModelSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("fashion_forward");
    for version in ["1", "2"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/repository/fashion")
            .join(version);
        let spec = ModelSpec::from_dir(&dir).expect("bundled model.toml");
        let mut model = load_model(&spec, &dir, Device::Cpu).expect("bundled weights");
        for batch in [1usize, 8, 32] {
            // A deterministic, image-like input in [0, 1].
            let input: Vec<f32> = (0..batch * 784)
                .map(|i| ((i * 37) % 256) as f32 / 255.0)
                .collect();
            group.throughput(Throughput::Elements(batch as u64));
            let name = format!("v{version}_{}", spec.architecture);
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                b.iter(|| {
                    forward_f32(model.as_mut(), &spec, input.clone(), batch).expect("forward")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
