//! all-MiniLM-L6-v2 against reference values from sentence-transformers: token ids and the
//! first values of "Hello world"'s embedding, and batch = one-by-one. Needs the files that
//! `scripts/fetch-minilm.sh` installs; fails naming it when they are absent (see `testdata`).

use std::path::{Path, PathBuf};

use burnserve_models::arch::bert::TextEmbedder;
use burnserve_models::arch::CpuBackend;
use burnserve_models::{load_model, Device, ModelSpec, NamedTensor, TensorData};

// Written as sentence-transformers prints them.
#[allow(clippy::excessive_precision)]
const HELLO_WORLD: [f32; 10] = [
    -0.03447727,
    0.03102319,
    0.00673497,
    0.02610900,
    -0.03936204,
    -0.16030248,
    0.06692399,
    -0.00644145,
    -0.04745051,
    0.01475887,
];

fn minilm_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("repository/minilm/1");
    burnserve_models::testdata::require_minilm(&dir).then_some(dir)
}

fn embedder(dir: &Path) -> TextEmbedder<CpuBackend> {
    let spec = ModelSpec::from_dir(dir).expect("minilm model.toml");
    TextEmbedder::load(&spec, dir, Default::default()).expect("minilm loads")
}

#[test]
fn hello_world_matches_sentence_transformers() {
    let Some(dir) = minilm_dir() else { return };
    let mut model = embedder(&dir);
    assert_eq!(
        model.token_ids("Hello world").unwrap(),
        vec![101, 7592, 2088, 102]
    );
    let (values, tokens) = model.embed(vec!["Hello world".into()]).unwrap();
    assert_eq!(values.len(), 384);
    assert_eq!(tokens, vec![4]);
    for (i, (got, want)) in values.iter().zip(HELLO_WORLD).enumerate() {
        assert!((got - want).abs() < 1e-4, "value {i}: {got} vs {want}");
    }
    let norm: f32 = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "L2 norm {norm}");
}

#[test]
fn a_batch_equals_one_by_one_and_long_text_is_truncated() {
    let Some(dir) = minilm_dir() else { return };
    let mut model = embedder(&dir);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(60);
    let texts: Vec<String> = vec![
        "Hello world".into(),
        long.clone(),
        "A man is playing a guitar on stage.".into(),
        "".into(),
        "Rust makes systems programming safer, and burn brings deep learning to it.".into(),
        "hello world".into(),
    ];
    let (batched, tokens) = model.embed(texts.clone()).unwrap();
    assert_eq!(tokens[1], 256, "truncated at max_tokens");
    assert_eq!(tokens[3], 2, "empty text is [CLS] [SEP]");
    for (i, text) in texts.iter().enumerate() {
        let (alone, _) = model.embed(vec![text.clone()]).unwrap();
        let row = &batched[i * 384..(i + 1) * 384];
        let worst = alone
            .iter()
            .zip(row)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-5,
            "text {i}: batch differs from alone by {worst}"
        );
    }
    // The tokenizer lower-cases: both spellings embed identically.
    assert_eq!(&batched[..384], &batched[5 * 384..]);
    // Length grouping: the 256-token text ran in its own pass, so padding stayed low.
    let counts = model.token_counts();
    assert!(counts.forward_passes >= 2, "{counts:?}");
}

#[test]
fn a_huge_text_is_cut_before_tokenizing_and_embeds_as_its_start() {
    let Some(dir) = minilm_dir() else { return };
    let mut model = embedder(&dir);
    // 300 words are past 256 tokens; 2 MB of them would take seconds to tokenize whole.
    let start = "the quick brown fox jumps over the lazy dog ".repeat(34);
    let huge = format!(
        "{start}{}",
        "and then some more words follow ".repeat(65_000)
    );
    assert!(huge.len() > 2_000_000);
    let started = std::time::Instant::now();
    let (cut, tokens) = model.embed(vec![huge]).unwrap();
    let took = started.elapsed();
    let (whole_start, _) = model.embed(vec![start]).unwrap();
    assert_eq!(tokens[0], 256);
    let worst = cut
        .iter()
        .zip(&whole_start)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "the cut text embeds as its start: {worst}");
    println!("a 2 MB text embedded in {took:?}");
    // Cutting keeps whole characters.
    let text = burnserve_models::arch::bert::cut_text("aé€😀".repeat(10), 7);
    assert_eq!(text, "aé€");
}

#[test]
fn serves_through_the_inference_model_seam() {
    let Some(dir) = minilm_dir() else { return };
    let spec = ModelSpec::from_dir(&dir).expect("minilm model.toml");
    let mut model = load_model(&spec, &dir, Device::Cpu).expect("loads");
    let texts = vec![b"Hello world".to_vec(), b"x".to_vec()];
    let out = model
        .forward(
            vec![NamedTensor::new(
                "text",
                vec![2, 1],
                TensorData::Bytes(texts),
            )],
            2,
        )
        .unwrap();
    let values = out.f32_values(&spec.output().name).expect("FP32 output");
    assert_eq!(values.len(), 2 * 384);
    assert_eq!(out.tensors[0].shape, vec![2, 384]);
    assert_eq!(out.tokens, vec![4, 3]);
    assert!((values[0] - HELLO_WORLD[0]).abs() < 1e-4);
    let err = model
        .forward(
            vec![NamedTensor::new(
                "text",
                vec![1, 384],
                TensorData::F32(vec![0.0; 384]),
            )],
            1,
        )
        .unwrap_err();
    assert_eq!(err.error_type().as_str(), "invalid_input");
    assert!(
        model.weight_bytes() > 80_000_000,
        "{}",
        model.weight_bytes()
    );
}

/// The token limit is bounded by the model's position table: past it, the load fails naming
/// `params.max_tokens` (a bigger value would index past the embeddings).
#[test]
fn max_tokens_past_the_position_table_is_refused_naming_the_key() {
    let Some(dir) = minilm_dir() else { return };
    let mut spec = ModelSpec::from_dir(&dir).expect("minilm model.toml");
    for bad in [1_i64, 513, 1 << 40] {
        spec.params
            .insert("max_tokens".into(), toml::Value::Integer(bad));
        let err = TextEmbedder::<CpuBackend>::load(&spec, &dir, Default::default())
            .err()
            .unwrap_or_else(|| panic!("max_tokens = {bad} loaded"));
        assert!(
            err.to_string().contains("params.max_tokens"),
            "max_tokens = {bad}: {err}"
        );
    }
}
