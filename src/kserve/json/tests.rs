use super::*;

fn read(datatype: DataType, json: &str) -> Result<JsonData, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    TypedData(datatype)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())
}

#[test]
fn elements_read_exactly_as_their_datatype() {
    let big = read(
        DataType::I64,
        "[[9223372036854775807, -9223372036854775808]]",
    )
    .unwrap();
    assert_eq!(big.nesting, vec![1, 2]);
    assert_eq!(big.data, TensorData::I64(vec![i64::MAX, i64::MIN]));
    assert_eq!(
        read(DataType::U64, "[18446744073709551615]").unwrap().data,
        TensorData::U64(vec![u64::MAX])
    );
    assert_eq!(
        read(DataType::Bool, "[true, false]").unwrap().data,
        TensorData::Bool(vec![true, false])
    );
    assert_eq!(
        read(DataType::Bytes, "[\"a\", \"\"]").unwrap().data,
        TensorData::Bytes(vec![b"a".to_vec(), vec![]])
    );
    let third = 1.0f64 / 3.0;
    let text = serde_json::to_string(&[third]).unwrap();
    assert_eq!(
        read(DataType::F64, &text).unwrap().data,
        TensorData::F64(vec![third])
    );
    assert_eq!(
        read(DataType::F16, "[0.5, 2]").unwrap().data,
        TensorData::F16(vec![f16::from_f32(0.5), f16::from_f32(2.0)])
    );
    assert_eq!(read(DataType::F32, "[]").unwrap().nesting, vec![0]);
}

#[test]
fn elements_of_another_kind_or_range_are_refused_naming_the_element() {
    for (datatype, json, says) in [
        (
            DataType::I8,
            "[1, 128]",
            "element 1 is out of range for INT8 (-128..=127)",
        ),
        (
            DataType::U16,
            "[-1]",
            "element 0 is out of range for UINT16",
        ),
        (
            DataType::I32,
            "[1.5]",
            "element 0 is a number with a fraction",
        ),
        (
            DataType::Bool,
            "[1]",
            "element 0 is an integer, which is not a BOOL",
        ),
        (DataType::Bytes, "[1]", "which is not a BYTES element"),
        (
            DataType::F32,
            "[\"1\"]",
            "element 0 is a string, which is not a FP32",
        ),
        (DataType::F32, "[[1, 2], [3]]", "ragged"),
        (DataType::F32, "[[1, 2], 3]", "ragged"),
        (DataType::F32, "[1, [2]]", "ragged"),
        (DataType::F32, "[null]", "invalid type: null"),
        (DataType::F32, "{\"a\": 1}", "invalid type: map"),
    ] {
        let err = read(datatype, json).unwrap_err();
        assert!(err.contains(says), "{json} as {datatype}: {err}");
    }
}

#[test]
fn data_read_before_its_datatype_converts_the_same() {
    for (datatype, json) in [
        (DataType::I64, "[[9223372036854775807, -1], [2, 3]]"),
        (DataType::Bytes, "[\"a\", \"é\"]"),
        (DataType::F32, "[0.5, 1e39]"),
        (DataType::I8, "[1, 128]"),
        (DataType::Bool, "[1]"),
    ] {
        let mut de = serde_json::Deserializer::from_str(json);
        let deferred = DeferredData.deserialize(&mut de).unwrap();
        match (deferred.typed(datatype), read(datatype, json)) {
            (Ok(later), Ok(first)) => assert_eq!(later, first, "{json}"),
            // serde_json adds where it was to the message of the direct read.
            (Err(later), Err(first)) => assert!(first.starts_with(&later), "{later} / {first}"),
            (later, first) => panic!("{json}: {later:?} / {first:?}"),
        }
    }
}

#[test]
fn outputs_write_as_json_and_read_back_the_same() {
    for data in [
        TensorData::I64(vec![i64::MIN, 0, i64::MAX]),
        TensorData::U8(vec![0, 255]),
        TensorData::F64(vec![0.1, 1e300, -2.5e-300]),
        TensorData::F32(vec![0.1, 3.4e38, f32::from_bits(1)]),
        TensorData::BF16(vec![bf16::from_f32(1.5)]),
        TensorData::Bool(vec![false, true]),
        TensorData::Bytes(vec![b"x".to_vec()]),
    ] {
        let text = serde_json::to_string(&JsonOut(&data)).unwrap();
        assert_eq!(read(data.datatype(), &text).unwrap().data, data, "{text}");
    }
    let nan = serde_json::to_string(&JsonOut(&TensorData::F32(vec![f32::NAN]))).unwrap();
    assert_eq!(nan, "[null]");
    let bytes = TensorData::Bytes(vec![b"ok".to_vec(), vec![0xff]]);
    assert_eq!(first_non_utf8(&bytes), Some(1));
    assert!(serde_json::to_string(&JsonOut(&bytes)).is_err());
}
