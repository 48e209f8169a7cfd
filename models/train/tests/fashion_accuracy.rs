//! Held-out accuracy of the bundled `fashion` versions on the 10,000 Fashion-MNIST test images,
//! loaded exactly as the server loads them (model.toml + safetensors from the repository).

use std::path::Path;

use burnserve_models::{forward_f32, load_model, Device, ModelSpec};
use burnserve_train::datasets::{fashion_mnist_available, FashionMnist, Split, IMAGE_PIXELS};

fn accuracy(version: &str) -> Option<f64> {
    if !burnserve_models::testdata::require_fashion_mnist(fashion_mnist_available()) {
        return None;
    }
    let test = FashionMnist::load(Split::Test).expect("test split");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../repository/fashion")
        .join(version);
    let spec = ModelSpec::from_dir(&dir).expect("bundled model.toml");
    let mut model = load_model(&spec, &dir, Device::Cpu).expect("bundled weights load");
    let (mut right, batch) = (0, 500);
    for start in (0..test.len()).step_by(batch) {
        let end = (start + batch).min(test.len());
        let pixels: Vec<f32> = (start..end).flat_map(|i| test.normalised(i)).collect();
        assert_eq!(pixels.len(), (end - start) * IMAGE_PIXELS);
        let probabilities =
            forward_f32(model.as_mut(), &spec, pixels, end - start).expect("forward");
        for (row, label) in probabilities.chunks(10).zip(&test.labels[start..end]) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "softmax rows sum to 1, got {sum}");
            let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            right += usize::from(best == usize::from(*label));
        }
    }
    let accuracy = right as f64 / test.len() as f64;
    println!(
        "fashion/{version}: {right}/{} = {:.2}%",
        test.len(),
        accuracy * 100.0
    );
    Some(accuracy)
}

#[test]
fn mlp_version_1_reaches_85_percent() {
    if let Some(accuracy) = accuracy("1") {
        assert!(accuracy >= 0.85, "MLP accuracy {accuracy}");
    }
}

#[test]
fn cnn_version_2_reaches_89_percent() {
    if let Some(accuracy) = accuracy("2") {
        assert!(accuracy >= 0.89, "CNN accuracy {accuracy}");
    }
}
