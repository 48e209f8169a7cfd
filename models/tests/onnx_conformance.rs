//! The ONNX conformance runner: every case of the `onnx` package's backend test data
//! (`pytorch-converted`, `pytorch-operator`, `simple`) and of its operator-level suite (`node`:
//! 1,855 cases generated from the package's definitions), installed by
//! `scripts/install-onnx-testdata.sh`, loaded as an `onnx` version and run on the CPU, each
//! output compared with the case's reference (rtol 1e-3, atol 1e-5 for the model suites, each
//! node case at its own tolerances; exact for integers and booleans). Failures of the node
//! suite are listed; its load refusals are counted per operator. Prints passed / failed / unsupported per operator and per suite,
//! writes the table to `target/onnx-conformance.md`, and fails when a suite passes fewer
//! cases than `models/tests/onnx_conformance.min` records.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burnserve_models::onnx::{complete_spec, default_spec, proto::read_tensor};
use burnserve_models::{load_model, Device, Jail, NamedTensor, Symlinks, TensorData};
use protobuf::Message;

const SUITES: &[&str] = &["pytorch-converted", "pytorch-operator", "simple"];
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-5;

/// Where the installer writes the test data.
pub fn testdata_dir() -> PathBuf {
    std::env::var_os("BURNSERVE_ONNX_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/onnx-testdata"))
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Passed,
    Failed(String),
    Unsupported(String),
}

fn values(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::Bool(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::BF16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::F32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::Bytes(v) => vec![f64::NAN; v.len()],
    }
}

fn is_float(data: &TensorData) -> bool {
    matches!(
        data,
        TensorData::F16(_) | TensorData::BF16(_) | TensorData::F32(_) | TensorData::F64(_)
    )
}

/// `None` when `got` matches `expected`, else why not.
pub fn compare(got: &NamedTensor, expected: &NamedTensor) -> Option<String> {
    compare_within(got, expected, RTOL, ATOL)
}

/// [`compare`] with the given tolerances for floats.
pub fn compare_within(
    got: &NamedTensor,
    expected: &NamedTensor,
    rtol: f64,
    atol: f64,
) -> Option<String> {
    if got.shape != expected.shape {
        return Some(format!(
            "output '{}' has shape {:?}, expected {:?}",
            got.name, got.shape, expected.shape
        ));
    }
    let float = is_float(&expected.data);
    let (a, e) = (values(&got.data), values(&expected.data));
    for (i, (a, e)) in a.iter().zip(&e).enumerate() {
        let close = if float {
            (a.is_nan() && e.is_nan()) || a == e || (a - e).abs() <= atol + rtol * e.abs()
        } else {
            a == e
        };
        if !close {
            return Some(format!(
                "output '{}' element {i}: {a} vs expected {e}",
                got.name
            ));
        }
    }
    None
}

/// The op types of a case's graph.
fn op_types(model: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(model) else {
        return vec!["<unreadable>".into()];
    };
    let Ok(proto) = onnx_ir::ModelProto::parse_from_bytes(&bytes) else {
        return vec!["<not onnx>".into()];
    };
    let mut ops: Vec<String> = proto
        .graph
        .as_ref()
        .map(|g| g.node.iter().map(|n| n.op_type.clone()).collect())
        .unwrap_or_default();
    ops.sort();
    ops.dedup();
    ops
}

fn is_unsupported(msg: &str) -> bool {
    [
        "not supported",
        "burnserve reads opsets",
        "does not run",
        "does not serve",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

/// Loads and runs one case directory (unbatched: the graph's own shapes).
fn run_case(dir: &Path) -> Outcome {
    run_case_within(dir, RTOL, ATOL)
}

fn run_case_within(dir: &Path, rtol: f64, atol: f64) -> Outcome {
    let result = catch_unwind(AssertUnwindSafe(|| -> Outcome {
        let mut spec = match default_spec() {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        spec.batching.max_batch_size = 0;
        let jail = match Jail::open(dir, Symlinks::Inside) {
            Ok(j) => j,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        if let Err(e) = complete_spec(&mut spec, &jail, dir) {
            let msg = e.to_string();
            return if is_unsupported(&msg) {
                Outcome::Unsupported(msg)
            } else {
                Outcome::Failed(msg)
            };
        }
        let mut model = match load_model(&spec, dir, Device::Cpu) {
            Ok(m) => m,
            Err(e) => {
                let msg = e.to_string();
                return if is_unsupported(&msg) {
                    Outcome::Unsupported(msg)
                } else {
                    Outcome::Failed(msg)
                };
            }
        };
        let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        sets.sort();
        if sets.is_empty() {
            return Outcome::Failed("no test_data_set".into());
        }
        let mut compared = 0;
        for set in sets {
            let mut inputs = Vec::new();
            for (k, declared) in spec.inputs.iter().enumerate() {
                let path = set.join(format!("input_{k}.pb"));
                if !path.exists() {
                    continue;
                }
                match read_tensor(&path) {
                    Ok(mut t) => {
                        t.name = declared.name.clone();
                        inputs.push(t);
                    }
                    Err(e) => return Outcome::Failed(format!("reading {}: {e}", path.display())),
                }
            }
            let outputs = match model.forward(inputs, 1) {
                Ok(o) => o.tensors,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            for (k, declared) in spec.outputs.iter().enumerate() {
                let path = set.join(format!("output_{k}.pb"));
                let Ok(mut expected) = read_tensor(&path) else {
                    continue;
                };
                expected.name = declared.name.clone();
                let Some(got) = outputs.iter().find(|t| t.name == declared.name) else {
                    return Outcome::Failed(format!("output '{}' missing", declared.name));
                };
                if let Some(why) = compare_within(got, &expected, rtol, atol) {
                    return Outcome::Failed(why);
                }
                compared += 1;
            }
        }
        if compared == 0 {
            return Outcome::Failed("no reference output was compared".into());
        }
        Outcome::Passed
    }));
    result.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome::Failed(format!("panic: {why}"))
    })
}

#[derive(Default, Clone, Copy)]
struct Tally {
    passed: usize,
    failed: usize,
    unsupported: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Unsupported(_) => self.unsupported += 1,
        }
    }
}

fn minimums() -> BTreeMap<String, usize> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_conformance.min");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn onnx_backend_test_data_passes_at_least_the_recorded_count() {
    let root = testdata_dir().join("backend");
    if !burnserve_models::testdata::require(
        "the ONNX test data",
        root.join("simple").is_dir(),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    let node_root = testdata_dir().join("node");
    if !burnserve_models::testdata::require(
        "the ONNX node test suite",
        node_root.join("manifest.json").is_file(),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(node_root.join("manifest.json")).expect("node manifest"),
    )
    .expect("node manifest JSON");
    let mut per_suite: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut per_op: BTreeMap<String, Tally> = BTreeMap::new();
    let mut node_ops: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    // The operator-level suite, each case at its own tolerances (rtol 1e-3, atol 1e-7).
    let mut node_cases: Vec<PathBuf> = std::fs::read_dir(&node_root)
        .expect("node suite")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    node_cases.sort();
    for case in node_cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let meta = &manifest["cases"][&name];
        let rtol = meta["rtol"].as_f64().unwrap_or(RTOL);
        let atol = meta["atol"].as_f64().unwrap_or(ATOL);
        let outcome = run_case_within(&case, rtol, atol);
        per_suite.entry("node").or_default().add(&outcome);
        let op = meta["op"].as_str().unwrap_or("?").to_string();
        node_ops.entry(op).or_default().add(&outcome);
        if let Outcome::Failed(why) = &outcome {
            failures.push(format!("| node | {name} | failed | {} |", clip(why)));
        }
    }
    for suite in SUITES {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join(suite))
            .expect("suite directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("model.onnx").is_file())
            .collect();
        cases.sort();
        for case in cases {
            let outcome = run_case(&case);
            per_suite.entry(suite).or_default().add(&outcome);
            for op in op_types(&case.join("model.onnx")) {
                per_op.entry(op).or_default().add(&outcome);
            }
            let name = case
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            match &outcome {
                Outcome::Passed => {}
                Outcome::Failed(why) => {
                    failures.push(format!("| {suite} | {name} | failed | {} |", clip(why)))
                }
                Outcome::Unsupported(why) => failures.push(format!(
                    "| {suite} | {name} | unsupported | {} |",
                    clip(why)
                )),
            }
        }
    }
    let mut report =
        String::from("| suite | passed | failed | unsupported | total |\n|---|---|---|---|---|\n");
    let mut total = Tally::default();
    for (suite, t) in &per_suite {
        report += &format!(
            "| {suite} | {} | {} | {} | {} |\n",
            t.passed,
            t.failed,
            t.unsupported,
            t.passed + t.failed + t.unsupported
        );
        total.passed += t.passed;
        total.failed += t.failed;
        total.unsupported += t.unsupported;
    }
    report += &format!(
        "| **all** | {} | {} | {} | {} |\n\n",
        total.passed,
        total.failed,
        total.unsupported,
        total.passed + total.failed + total.unsupported
    );
    report += "| operator | cases passed | failed | unsupported |\n|---|---|---|---|\n";
    for (op, t) in &per_op {
        report += &format!(
            "| {op} | {} | {} | {} |\n",
            t.passed, t.failed, t.unsupported
        );
    }
    report +=
        "\n| operator (node suite) | cases passed | failed | unsupported |\n|---|---|---|---|\n";
    for (op, t) in &node_ops {
        report += &format!(
            "| {op} | {} | {} | {} |\n",
            t.passed, t.failed, t.unsupported
        );
    }
    report += "\n| suite | case | outcome | reason |\n|---|---|---|---|\n";
    report += &failures.join("\n");
    report += "\n";
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/onnx-conformance.md");
    let _ = std::fs::write(&out, &report);
    let minimums = minimums();
    for (suite, t) in &per_suite {
        let min = minimums.get(*suite).copied().unwrap_or(0);
        assert!(
            t.passed >= min,
            "suite {suite}: {} cases passed, fewer than the {min} recorded in tests/onnx_conformance.min",
            t.passed
        );
    }
}

fn clip(s: &str) -> String {
    let one_line = s.replace(['\n', '|'], " ");
    if one_line.chars().count() > 160 {
        format!("{}…", one_line.chars().take(160).collect::<String>())
    } else {
        one_line
    }
}

/// Our own ONNX files (scripts/onnx_testdata.py: the Fashion MLP and CNN exported from our
/// safetensors, a 27-node CNN, an 85-node transformer encoder, external initializers, MiniLM
/// as a 228-node graph from our safetensors) give
/// onnxruntime's outputs within 1e-4.
#[test]
fn our_onnx_files_agree_with_onnxruntime_within_1e_4() {
    let root = testdata_dir();
    if !burnserve_models::testdata::require(
        "the ONNX test data",
        root.join("cnn-zoo").is_dir(),
        "bash scripts/install-onnx-testdata.sh",
    ) {
        return;
    }
    for case in [
        "fashion-mlp",
        "fashion-cnn",
        "cnn-zoo",
        "transformer",
        "external-ok",
        "minilm",
    ] {
        let started = std::time::Instant::now();
        let outcome = run_case_within(&root.join(case), 0.0, 1e-4);
        println!("{case}: {outcome:?} in {:?}", started.elapsed());
        assert_eq!(outcome, Outcome::Passed, "{case}");
    }
}
