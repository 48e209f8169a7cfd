//! Malformed ONNX files, made by mutating valid ones (bit flips anywhere, bytes overwritten in
//! the graph's structure, truncation at random points): every load answers `Ok` or a load
//! error and never panics or hangs, and a model that does load answers every request with
//! outputs or an error, never a panic. Deterministic (a fixed seed), bounded (400 files).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burnserve_models::onnx::{complete_spec, default_spec};
use burnserve_models::{load_model, Device, Jail, NamedTensor, Symlinks, TensorData};

fn testdata_dir() -> PathBuf {
    std::env::var_os("BURNSERVE_ONNX_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/onnx-testdata"))
}

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(original: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(3) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        1 => {
            // The graph's structure (names, types, attributes) sits outside the big
            // initializers: overwrite bytes near the start and the end.
            for _ in 0..1 + rng.below(4) {
                let window = bytes.len().min(2048);
                let at = if rng.below(2) == 0 {
                    rng.below(window)
                } else {
                    bytes.len() - 1 - rng.below(window)
                };
                bytes[at] = rng.next() as u8;
            }
        }
        _ => bytes.truncate(rng.below(original.len())),
    }
    bytes
}

#[test]
fn mutated_onnx_files_load_or_fail_cleanly_and_never_panic() {
    let root = testdata_dir();
    let sources = ["cnn-zoo", "transformer", "fashion-mlp"];
    if !burnserve_models::testdata::require(
        "the ONNX test data",
        sources
            .iter()
            .all(|s| root.join(s).join("model.onnx").is_file()),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    let work = tempfile_dir();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..400 {
        let source = sources[case % sources.len()];
        let original = std::fs::read(root.join(source).join("model.onnx")).expect("model");
        let dir = work.join(format!("case{case}"));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("model.onnx"), mutate(&original, &mut rng)).expect("write");
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut spec = default_spec().expect("spec");
            spec.batching.max_batch_size = 0;
            let jail = Jail::open(&dir, Symlinks::Inside).expect("jail");
            complete_spec(&mut spec, &jail, &dir)?;
            let mut model = load_model(&spec, &dir, Device::Cpu)?;
            // Requests of the signature's datatypes, dims of -1 taken as 2.
            let inputs: Vec<NamedTensor> = spec
                .inputs
                .iter()
                .map(|t| {
                    let shape: Vec<usize> = t
                        .shape
                        .iter()
                        .map(|&d| if d < 0 { 2 } else { d as usize })
                        .collect();
                    let n = shape.iter().product::<usize>().min(1 << 20);
                    NamedTensor::new(t.name.clone(), shape, TensorData::zeros(t.datatype, n))
                })
                .collect();
            let _ = model.forward(inputs, 1);
            Ok::<_, burnserve_models::ModelError>(())
        }));
        match outcome {
            Ok(Ok(())) => loaded += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("case {case} ({source}) panicked"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("mutated files: {loaded} loaded and ran, {refused} refused");
    assert!(refused > 100, "most mutations must be refused ({refused})");
    let _ = std::fs::remove_dir_all(&work);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burnserve-onnx-mutations-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
