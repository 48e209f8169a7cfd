use half::{bf16, f16};

use super::*;

fn every_datatype() -> Vec<TensorData> {
    vec![
        TensorData::Bool(vec![true, false, true]),
        TensorData::U8(vec![0, 7, 255]),
        TensorData::U16(vec![0, 513, u16::MAX]),
        TensorData::U32(vec![0, 70_000, u32::MAX]),
        TensorData::U64(vec![0, 1 << 40, u64::MAX]),
        TensorData::I8(vec![i8::MIN, -1, i8::MAX]),
        TensorData::I16(vec![i16::MIN, -300, i16::MAX]),
        TensorData::I32(vec![i32::MIN, -70_000, i32::MAX]),
        TensorData::I64(vec![i64::MIN, -(1 << 40), i64::MAX]),
        TensorData::F16(vec![f16::NAN, f16::INFINITY, f16::from_f32(-0.5)]),
        TensorData::BF16(vec![
            bf16::NEG_INFINITY,
            bf16::from_f32(3.0),
            bf16::MIN_POSITIVE_SUBNORMAL,
        ]),
        TensorData::F32(vec![f32::NAN, f32::from_bits(1), -0.0]),
        TensorData::F64(vec![f64::INFINITY, f64::MIN_POSITIVE, 1.0 / 3.0]),
        TensorData::Bytes(vec![b"abc".to_vec(), vec![], vec![0xff, 0]]),
    ]
}

#[test]
fn every_datatype_round_trips_through_its_wire_form_bit_for_bit() {
    for data in every_datatype() {
        let bytes = encode_le(&data);
        assert_eq!(bytes.len(), data.byte_size(), "{data:?}");
        let back = decode_le(data.datatype(), data.len(), &bytes).expect("decodes");
        // NaN != NaN: compare the wire bytes.
        assert_eq!(encode_le(&back), bytes, "{:?}", data.datatype());
        assert_eq!(
            DataType::parse(data.datatype().as_str()),
            Some(data.datatype())
        );
    }
    assert_eq!(DataType::parse("FP8"), None);
}

#[test]
fn lying_sizes_and_framing_are_refused() {
    assert!(matches!(
        decode_le(DataType::F32, 3, &[0; 11]),
        Err(WireError::Size {
            bytes: 11,
            count: 3,
            ..
        })
    ));
    assert!(matches!(
        decode_le(DataType::I64, usize::MAX, &[0; 8]),
        Err(WireError::Size { .. })
    ));
    assert_eq!(
        decode_le(DataType::Bool, 2, &[1, 2]),
        Err(WireError::Bool { index: 1, byte: 2 })
    );
    let lying = [255u8, 255, 255, 255, b'a'];
    assert!(matches!(
        decode_le(DataType::Bytes, 1, &lying),
        Err(WireError::Overrun { index: 0, .. })
    ));
    assert!(matches!(
        decode_le(DataType::Bytes, 2, &[1, 0, 0, 0, b'a']),
        Err(WireError::MissingLength { index: 1, count: 2 })
    ));
    assert!(matches!(
        decode_le(DataType::Bytes, 1, &[0, 0, 0, 0, 9]),
        Err(WireError::Trailing { bytes: 1, count: 1 })
    ));
    // A huge count over a few bytes allocates for what the bytes can hold.
    assert!(decode_le(DataType::Bytes, usize::MAX, &[0, 0, 0, 0]).is_err());
}

#[test]
fn buffers_join_split_and_check_values() {
    let mut a = TensorData::I32(vec![1, 2]);
    assert!(a.extend_from(&TensorData::I32(vec![3])));
    assert!(!a.extend_from(&TensorData::I64(vec![4])));
    let tail = a.split_off(1);
    assert_eq!(
        (a, tail),
        (TensorData::I32(vec![1]), TensorData::I32(vec![2, 3]))
    );
    let f = TensorData::F32(vec![0.5, f32::NAN, 2.0]);
    assert_eq!(f.first_non_finite().map(|(i, _)| i), Some(1));
    assert_eq!(f.first_outside(0.0, 1.0).map(|(i, _)| i), Some(1));
    assert_eq!(
        TensorData::I64(vec![5, -1]).first_outside(0.0, 10.0),
        Some((1, -1.0))
    );
    assert_eq!(TensorData::Bool(vec![true]).first_non_finite(), None);
    assert_eq!(TensorData::with_capacity(DataType::F16, 4).len(), 0);
}
