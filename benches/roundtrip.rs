//! Router + actor round trip against a direct call, and dynamic batching on vs off at
//! concurrency 64, measured in-process (no HTTP) with criterion.
//!
//! `cargo bench --bench roundtrip` (add `-- --quick` for a short run).

use std::path::Path;
use std::time::{Duration, Instant};

use actix::{System, SystemRunner};
use burnserve_actors::{InferRequest, InferenceService, LoadOptions, Metrics, Runtime};
use burnserve_models::{arch::mlp, forward_f32, load_model, Device, ModelSpec, RequestInput};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::future::join_all;

const MLP_TOML: &str = r#"
architecture = "mlp"
weights = "model.safetensors"
params = { hidden = [256, 128] }
[input]
name = "pixels"
shape = [784]
[output]
name = "probabilities"
shape = [10]
"#;

fn write_version(root: &Path, model: &str, version: &str, toml: &str) {
    let dir = root.join(model).join(version);
    std::fs::create_dir_all(&dir).expect("version dir");
    std::fs::write(dir.join("model.toml"), toml).expect("model.toml");
    if toml.contains("\"mlp\"") {
        let spec = ModelSpec::from_dir(&dir).expect("spec");
        mlp::write_initialised(&spec, &dir.join("model.safetensors"), 1).expect("weights");
    }
}

/// A repository with the echo fake (no batching delay) and one MLP, batched and unbatched.
fn repository() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    write_version(
        root.path(),
        "echo",
        "1",
        "architecture = \"fake-echo\"\n[input]\nname = \"x\"\nshape = [4]\n[output]\nname = \"y\"\nshape = [4]\n[batching]\nmax_batch_delay_ms = 0",
    );
    write_version(root.path(), "mlp", "batched", &format!("{MLP_TOML}[batching]\nmax_batch_size = 64\nmax_batch_delay_ms = 1\nqueue_capacity = 1024"));
    write_version(root.path(), "mlp", "unbatched", &format!("{MLP_TOML}[batching]\nmax_batch_size = 1\nmax_batch_delay_ms = 0\nqueue_capacity = 1024"));
    root
}

fn start_service(system: &SystemRunner, root: &Path) -> InferenceService {
    let root = root.to_path_buf();
    system.block_on(async move {
        let metrics = Metrics::register(&prometheus::Registry::new(), true).expect("metrics");
        let runtime = Runtime::start(root, metrics);
        for (model, version) in [("echo", "1"), ("mlp", "batched"), ("mlp", "unbatched")] {
            runtime
                .control
                .load(model, version, LoadOptions::default())
                .await
                .expect("load");
        }
        runtime.service
    })
}

fn request(model: &str, version: &str, item: Vec<f32>) -> InferRequest {
    let shape = vec![item.len()];
    InferRequest::new(
        model,
        Some(version.to_string()),
        RequestInput::new(shape, item),
    )
}

fn roundtrip(c: &mut Criterion) {
    let root = repository();
    let system = System::new();
    let service = start_service(&system, root.path());
    let dir = root.path().join("echo").join("1");
    let spec = ModelSpec::from_dir(&dir).expect("spec");
    let mut direct = load_model(&spec, &dir, Device::Cpu).expect("echo");

    let mut group = c.benchmark_group("roundtrip_echo");
    group.bench_function("direct_forward", |b| {
        b.iter(|| forward_f32(direct.as_mut(), &spec, vec![1.0, 2.0, 3.0, 4.0], 1).expect("echo"))
    });
    group.bench_function("router_actor_executor", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    service
                        .infer(request("echo", "1", vec![1.0, 2.0, 3.0, 4.0]))
                        .await
                        .expect("served");
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("mlp_concurrency_64");
    group.throughput(Throughput::Elements(64));
    group.measurement_time(Duration::from_secs(5));
    for version in ["batched", "unbatched"] {
        group.bench_with_input(
            BenchmarkId::from_parameter(version),
            version,
            |b, version| {
                b.iter_custom(|iters| {
                    system.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let calls = (0..64).map(|i| {
                                service.infer(request(
                                    "mlp",
                                    version,
                                    vec![(i % 7) as f32 / 7.0; 784],
                                ))
                            });
                            for reply in join_all(calls).await {
                                reply.expect("served");
                            }
                        }
                        start.elapsed()
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
