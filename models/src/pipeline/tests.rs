use super::*;
use crate::tensor::DataType;

fn fashion_like() -> ModelSpec {
    ModelSpec::from_toml(
        r#"
        architecture = "mlp"
        [input]
        name = "x"
        shape = [2, 2]
        min = 0.0
        max = 1.0
        accept_uint8 = true
        [output]
        name = "y"
        shape = [3]
        labels = ["a", "b", "c"]
        [batching]
        max_batch_size = 4
        "#,
    )
    .expect("valid spec")
}

fn multi(max_batch_size: usize) -> ModelSpec {
    ModelSpec::from_toml(&format!(
        r#"
        architecture = "identity"
        [[inputs]]
        name = "ids"
        datatype = "INT64"
        shape = [-1]
        [[inputs]]
        name = "mask"
        datatype = "BOOL"
        shape = [-1]
        [[inputs]]
        name = "scale"
        datatype = "FP16"
        shape = [1]
        optional = true
        [[inputs]]
        name = "text"
        datatype = "BYTES"
        shape = [1]
        optional = true
        [[outputs]]
        name = "ids_out"
        datatype = "INT64"
        shape = [-1]
        [[outputs]]
        name = "mask_out"
        datatype = "BOOL"
        shape = [-1]
        [batching]
        max_batch_size = {max_batch_size}
        "#
    ))
    .expect("valid spec")
}

fn tensor(name: &str, shape: &[usize], data: TensorData) -> RequestTensor {
    RequestTensor {
        name: Some(name.into()),
        shape: shape.to_vec(),
        data,
    }
}

fn request(tensors: Vec<RequestTensor>) -> RequestInput {
    RequestInput { tensors }
}

#[test]
fn single_inputs_take_item_batched_and_flat_shapes() {
    let s = fashion_like();
    let rows = |shape: Vec<usize>, n: usize| {
        prepare_input(&s, RequestInput::new(shape, vec![0.5; n])).map(|p| (p.rows, p.tensors))
    };
    let (r, t) = rows(vec![2, 2], 4).unwrap();
    assert_eq!(
        (r, t[0].shape.clone(), t[0].name.as_str()),
        (1, vec![1, 2, 2], "x")
    );
    assert_eq!(rows(vec![3, 2, 2], 12).unwrap().0, 3);
    assert_eq!(rows(vec![4], 4).unwrap().1[0].shape, vec![1, 2, 2]);
    assert_eq!(rows(vec![2, 4], 8).unwrap().1[0].shape, vec![2, 2, 2]);
    assert!(matches!(
        rows(vec![3], 3),
        Err(ModelError::SchemaMismatch(_))
    ));
    assert!(matches!(
        rows(vec![2, 2], 3),
        Err(ModelError::InvalidInput(_))
    ));
    let too_many = rows(vec![5, 2, 2], 20).unwrap_err();
    assert!(
        too_many.to_string().contains("max_batch_size"),
        "{too_many}"
    );
    assert!(matches!(
        rows(vec![0, 2, 2], 0),
        Err(ModelError::SchemaMismatch(_))
    ));
}

#[test]
fn value_checks_apply_only_where_declared() {
    let s = fashion_like();
    let nan = prepare_input(
        &s,
        RequestInput::new(vec![2, 2], vec![0.5, f32::NAN, 0.5, 0.5]),
    )
    .unwrap_err();
    assert_eq!(nan.error_type().as_str(), "invalid_input");
    assert!(
        nan.to_string().contains("flat index 1 is not finite"),
        "{nan}"
    );
    let out =
        prepare_input(&s, RequestInput::new(vec![2, 2], vec![0.5, 0.5, 1.5, 0.5])).unwrap_err();
    assert!(matches!(out, ModelError::SchemaMismatch(_)));
    assert!(
        out.to_string().contains("value 1.5 at flat index 2"),
        "{out}"
    );
    // UINT8 pixels are scaled for an input that accepts them.
    let pixels = prepare_input(
        &s,
        request(vec![tensor(
            "x",
            &[2, 2],
            TensorData::U8(vec![0, 255, 51, 0]),
        )]),
    )
    .unwrap();
    assert_eq!(
        pixels.tensors[0].data,
        TensorData::F32(vec![0.0, 1.0, 0.2, 0.0])
    );
    // Without a check, NaN and infinities are data.
    let m = multi(8);
    let mut plain = ModelSpec::from_toml(
        "architecture = \"identity\"\n[input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [2]",
    )
    .unwrap();
    let weird = vec![f32::NAN, f32::INFINITY];
    assert_eq!(
        prepare_input(&plain, RequestInput::new(vec![2], weird.clone()))
            .unwrap()
            .rows,
        1
    );
    plain.inputs[0].finite = true;
    assert!(prepare_input(&plain, RequestInput::new(vec![2], weird)).is_err());
    // A range implies finite: +inf is refused even with only `min` set.
    plain.inputs[0].finite = false;
    plain.inputs[0].min = Some(0.0);
    let inf = prepare_input(&plain, RequestInput::new(vec![2], vec![0.5, f32::INFINITY]));
    assert!(inf.unwrap_err().to_string().contains("not finite"));
    let f64s = RequestInput::unnamed(vec![2], TensorData::F64(vec![1.0, f64::INFINITY]));
    plain.inputs[0].datatype = DataType::F64;
    assert!(prepare_input(&plain, f64s)
        .unwrap_err()
        .to_string()
        .contains("not finite"));
    drop(m);
}

#[test]
fn many_inputs_are_checked_by_name_and_put_in_signature_order() {
    let s = multi(8);
    let ids = |n: usize, len: usize| tensor("ids", &[n, len], TensorData::I64(vec![7; n * len]));
    let mask =
        |n: usize, len: usize| tensor("mask", &[n, len], TensorData::Bool(vec![true; n * len]));
    let ok = prepare_input(&s, request(vec![mask(2, 3), ids(2, 3)])).unwrap();
    assert_eq!(ok.rows, 2);
    let order: Vec<&str> = ok.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(order, vec!["ids", "mask"]);
    let err = |tensors: Vec<RequestTensor>| prepare_input(&s, request(tensors)).unwrap_err();
    let missing = err(vec![ids(1, 2)]);
    assert!(
        missing.to_string().contains("input 'mask' is missing"),
        "{missing}"
    );
    let twice = err(vec![ids(1, 2), ids(1, 2), mask(1, 2)]);
    assert!(matches!(twice, ModelError::InvalidInput(_)), "{twice}");
    let unknown = err(vec![
        ids(1, 2),
        mask(1, 2),
        tensor("zzz", &[1], TensorData::U8(vec![1])),
    ]);
    assert!(
        unknown.to_string().contains("unknown input 'zzz'"),
        "{unknown}"
    );
    let rows = err(vec![ids(1, 2), mask(2, 2)]);
    assert!(
        rows.to_string()
            .contains("holds 2 items but input 'ids' holds 1"),
        "{rows}"
    );
    let dtype = err(vec![
        ids(1, 2),
        tensor("mask", &[1, 2], TensorData::U8(vec![1, 0])),
    ]);
    assert!(
        dtype
            .to_string()
            .contains("has datatype UINT8; this model takes BOOL"),
        "{dtype}"
    );
    let rank = err(vec![
        ids(1, 2),
        tensor("mask", &[2], TensorData::Bool(vec![true; 2])),
    ]);
    assert!(rank.to_string().contains("takes [n, -1]"), "{rank}");
    let fixed = err(vec![
        ids(1, 2),
        mask(1, 2),
        tensor("scale", &[1, 2], TensorData::F16(vec![half::f16::ONE; 2])),
    ]);
    assert!(
        fixed.to_string().contains("input 'scale' has shape [1, 2]"),
        "{fixed}"
    );
    let unnamed = prepare_input(&s, RequestInput::new(vec![1], vec![1.0])).unwrap_err();
    assert!(unnamed.to_string().contains("unnamed input"), "{unnamed}");
    // Optional inputs may come or not.
    let with = prepare_input(
        &s,
        request(vec![
            ids(1, 2),
            mask(1, 2),
            tensor("text", &[1, 1], TensorData::Bytes(vec![vec![0xff]])),
        ]),
    )
    .unwrap();
    assert_eq!(with.tensors.len(), 3);
    assert_eq!(with.tensors[2].datatype(), DataType::Bytes);
}

#[test]
fn models_without_a_batch_dimension_take_their_shape_exactly() {
    let s = multi(0);
    let ok = prepare_input(
        &s,
        request(vec![
            tensor("ids", &[5], TensorData::I64(vec![1; 5])),
            tensor("mask", &[3], TensorData::Bool(vec![false; 3])),
        ]),
    )
    .unwrap();
    assert_eq!((ok.rows, ok.tensors[0].shape.clone()), (1, vec![5]));
    let batched = prepare_input(
        &s,
        request(vec![
            tensor("ids", &[1, 5], TensorData::I64(vec![1; 5])),
            tensor("mask", &[3], TensorData::Bool(vec![false; 3])),
        ]),
    )
    .unwrap_err();
    assert!(
        batched.to_string().contains("no batch dimension"),
        "{batched}"
    );
}

#[test]
fn text_models_need_utf8_and_n_strings() {
    let text = ModelSpec::from_toml(
        r#"
        architecture = "bert-embedding"
        [input]
        name = "text"
        datatype = "BYTES"
        shape = [1]
        [output]
        name = "embedding"
        shape = [4]
        [batching]
        max_batch_size = 2
        "#,
    )
    .expect("valid spec");
    let texts = |n: usize| RequestInput::texts(vec!["hi".to_string(); n]);
    assert_eq!(prepare_input(&text, texts(2)).unwrap().rows, 2);
    let mut column = texts(2);
    column.tensors[0].shape = vec![2, 1];
    assert_eq!(prepare_input(&text, column).unwrap().rows, 2);
    let mut square = RequestInput::texts(vec!["a".into(); 4]);
    square.tensors[0].shape = vec![2, 2];
    assert!(matches!(
        prepare_input(&text, square),
        Err(ModelError::SchemaMismatch(_))
    ));
    assert!(prepare_input(&text, texts(3))
        .unwrap_err()
        .to_string()
        .contains("max_batch_size"));
    let numbers = prepare_input(&text, RequestInput::new(vec![1], vec![0.5])).unwrap_err();
    assert!(numbers.to_string().contains("takes BYTES"), "{numbers}");
    let latin1 = RequestInput::unnamed(vec![1], TensorData::Bytes(vec![vec![0xe9]]));
    let err = prepare_input(&text, latin1).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}
