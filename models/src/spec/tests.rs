use super::*;

const MLP: &str = r#"
    architecture = "mlp"
    weights = "model.safetensors"
    params = { hidden = [16] }
    timeout_ms = 500
    [input]
    name = "pixels"
    shape = [4]
    [output]
    name = "probabilities"
    shape = [3]
    labels = ["a", "b", "c"]
    [batching]
    max_batch_size = 8
    max_batch_delay_ms = 1.5
"#;

#[test]
fn parses_a_full_spec_with_defaults() {
    let spec = ModelSpec::from_toml(MLP).expect("valid spec");
    assert_eq!(spec.input().item_len(), 4);
    assert_eq!(spec.input().datatype, crate::DataType::F32);
    assert_eq!(spec.batching.max_batch_size, 8);
    assert_eq!(spec.batching.queue_capacity, 256);
    assert_eq!(spec.batching.max_batch_delay(), Duration::from_micros(1500));
    assert_eq!(
        spec.param::<Vec<usize>>("hidden", vec![]).unwrap(),
        vec![16]
    );
    assert_eq!(spec.param::<u64>("absent", 7).unwrap(), 7);
}

#[test]
fn rejects_inconsistent_specs_with_the_key_named() {
    let bad_labels = MLP.replace(r#"["a", "b", "c"]"#, r#"["a"]"#);
    let err = ModelSpec::from_toml(&bad_labels).unwrap_err().to_string();
    assert!(
        err.contains("outputs 'probabilities': labels has 1 names for 3 values"),
        "{err}"
    );
    for (value, instances) in [
        ("1", Some(crate::Instances::Count(1))),
        ("64", Some(crate::Instances::Count(64))),
        ("\"auto\"", Some(crate::Instances::Auto)),
        ("0", None),
        ("65", None),
        ("-1", None),
        ("2.5", None),
        ("\"two\"", None),
    ] {
        let text = MLP.replace(
            "max_batch_size = 8",
            &format!("max_batch_size = 8\ninstances = {value}"),
        );
        match (ModelSpec::from_toml(&text), instances) {
            (Ok(spec), Some(expected)) => assert_eq!(spec.batching.instances, expected),
            (Err(err), None) => assert!(err.to_string().contains("instances"), "{err}"),
            (got, wanted) => panic!("instances = {value}: {got:?}, wanted {wanted:?}"),
        }
    }
    for (value, threads) in [
        ("1", Some(Threads::Count(1))),
        ("256", Some(Threads::Count(256))),
        ("\"auto\"", Some(Threads::Auto)),
        ("0", None),
        ("257", None),
        ("1e9", None),
        ("\"all\"", None),
    ] {
        let text = MLP.replace(
            "max_batch_size = 8",
            &format!("max_batch_size = 8\nthreads_per_instance = {value}"),
        );
        match (ModelSpec::from_toml(&text), threads) {
            (Ok(spec), Some(expected)) => {
                assert_eq!(spec.batching.threads_per_instance, expected)
            }
            (Err(err), None) => {
                assert!(err.to_string().contains("threads_per_instance"), "{err}")
            }
            (got, wanted) => {
                panic!("threads_per_instance = {value}: {got:?}, wanted {wanted:?}")
            }
        }
    }
    // 64 instances of 256 threads would be 16,384 threads: refused, naming both keys.
    let greedy = MLP.replace(
        "max_batch_size = 8",
        "max_batch_size = 8\ninstances = 2\nthreads_per_instance = 129",
    );
    let err = ModelSpec::from_toml(&greedy).unwrap_err().to_string();
    assert!(
        err.contains("batching.instances (2) times batching.threads_per_instance (129)"),
        "{err}"
    );
    let fits = MLP.replace(
        "max_batch_size = 8",
        "max_batch_size = 8\ninstances = 2\nthreads_per_instance = 128",
    );
    assert!(ModelSpec::from_toml(&fits).is_ok());
    // One instance on "auto" shares the process's pool; several split the cores.
    assert_eq!(Threads::Auto.pool_size(1, 8), None);
    assert_eq!(Threads::Auto.pool_size(2, 8), Some(4));
    assert_eq!(Threads::Auto.pool_size(3, 8), Some(2));
    assert_eq!(Threads::Auto.pool_size(4, 2), Some(1));
    assert_eq!(Threads::Count(3).pool_size(1, 8), Some(3));
    assert_eq!(crate::Instances::Count(3).resolve(), 3);
    assert!(crate::Instances::Auto.resolve() >= 1);
    let bad_batch = MLP.replace("max_batch_size = 8", "max_batch_size = 4097");
    let err = ModelSpec::from_toml(&bad_batch).unwrap_err().to_string();
    assert!(err.contains("max_batch_size"), "{err}");
    let unknown = MLP.replace("timeout_ms = 500", "timeout = 500");
    let err = ModelSpec::from_toml(&unknown).unwrap_err().to_string();
    assert!(err.contains("unknown field"), "{err}");
    let dtype = MLP.replace(
        r#"name = "pixels""#,
        "name = \"pixels\"\ndatatype = \"FP8\"",
    );
    let err = ModelSpec::from_toml(&dtype).unwrap_err().to_string();
    assert!(
        err.contains("datatype 'FP8' is not a KServe v2 datatype"),
        "{err}"
    );
    // 2^60 + 1 times 784 overflows a usize: refused, not wrapped.
    let huge = MLP.replace("shape = [4]", "shape = [1152921504606846977, 784]");
    let err = ModelSpec::from_toml(&huge).unwrap_err().to_string();
    assert!(
        err.contains("inputs[0].shape") && err.contains("more than"),
        "{err}"
    );
}

fn fuzz_cases() -> u32 {
    std::env::var("BURNSERVE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(fuzz_cases()))]

    /// model.toml is read from disk and from admin bodies: any text parses or fails with
    /// an error, never a panic.
    #[test]
    fn any_model_toml_text_parses_or_fails_cleanly(text in "\\PC{0,400}") {
        let _ = ModelSpec::from_toml(&text);
    }

    /// Every shape a file can declare is checked: accepted ones have a sane item length.
    #[test]
    fn any_declared_shape_is_checked(
        dims in proptest::collection::vec(0u64..=i64::MAX as u64, 0..5),
        line in 0usize..12,
        value in "\\PC{0,40}",
    ) {
        let toml = MLP.replace("shape = [4]", &format!("shape = {dims:?}"));
        if let Ok(spec) = ModelSpec::from_toml(&toml) {
            let len = spec.input().item_len();
            proptest::prop_assert!(len > 0 && len <= MAX_ITEM_LEN, "{len}");
        }
        // One line replaced by random text: still a clean answer.
        let mut lines: Vec<String> = MLP.lines().map(str::to_string).collect();
        let index = line % lines.len();
        lines[index] = value;
        let _ = ModelSpec::from_toml(&lines.join("\n"));
    }
}

#[test]
fn signatures_of_many_typed_tensors_load_and_older_files_keep_loading() {
    let many = ModelSpec::from_toml(
        "architecture = \"identity\"\n[batching]\nmax_batch_size = 0\n\
         [[inputs]]\nname = \"ids\"\ndatatype = \"INT64\"\nshape = [-1, 3]\n\
         [[inputs]]\nname = \"mask\"\ndatatype = \"BOOL\"\nshape = [4]\noptional = true\n\
         [[outputs]]\nname = \"a\"\ndatatype = \"INT64\"\nshape = [-1, 3]\n\
         [[outputs]]\nname = \"b\"\ndatatype = \"BOOL\"\nshape = [4]\n",
    )
    .expect("valid");
    assert_eq!(many.inputs.len(), 2);
    assert_eq!(many.input_named("mask").map(|t| t.optional), Some(true));
    assert_eq!(many.inputs[0].fixed_shape(), None);
    assert_eq!(many.inputs[0].item_len(), 0);
    assert!(!many.batching.is_batched());
    assert_eq!(many.batching.max_rows(), 1);
    // A written spec reads back the same.
    let text = toml::to_string(&many).expect("serializes");
    assert_eq!(ModelSpec::from_toml(&text).expect("reads back"), many);
    let legacy = ModelSpec::from_toml(MLP).expect("valid");
    assert_eq!(legacy.inputs.len(), 1);
    assert_eq!(legacy.output().labels.len(), 3);
    for (bad, says) in [
        (
            MLP.replace(
                "[output]",
                "[[outputs]]\nname = \"z\"\nshape = [1]\n[output]",
            ),
            "not both",
        ),
        (MLP.replace("shape = [4]", "shape = [0]"), "dimension 0"),
        (MLP.replace("shape = [4]", "shape = [-2]"), "dimension -2"),
        (
            MLP.replace(
                "shape = [4]",
                "shape = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
            ),
            "0..=16 dimensions",
        ),
    ] {
        let err = ModelSpec::from_toml(&bad)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{says}: {err}");
    }
    let twice = ModelSpec::from_toml(
        "architecture = \"identity\"\n\
         [[inputs]]\nname = \"x\"\nshape = [1]\n[[inputs]]\nname = \"x\"\nshape = [1]\n\
         [[outputs]]\nname = \"y\"\nshape = [1]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(twice.contains("inputs name 'x' appears twice"), "{twice}");
    let none = ModelSpec::from_toml(
        "architecture = \"identity\"\n[[outputs]]\nname = \"y\"\nshape = [1]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(none.contains("1..=64 inputs"), "{none}");
}

#[test]
fn names_are_one_safe_path_component() {
    for good in ["fashion", "1", "minilm-L6_v2.1", &"a".repeat(128)] {
        assert!(is_valid_name(good), "{good}");
    }
    for bad in [
        "",
        ".",
        "..",
        ".hidden",
        "a/b",
        "/tmp",
        "a\\b",
        "-x",
        "a b",
        "a%2Fb",
        &"a".repeat(129),
    ] {
        assert!(!is_valid_name(bad), "{bad}");
    }
}
