//! Triton's classification extension: an output asked for with `classification: k` is
//! answered as its `k` largest values per item, each the BYTES string `value:index` or
//! `value:index:label` (the label from the output's labels, e.g. a `label_filename`), largest
//! first, in a `[rows, k]` tensor (`[k]` for a model without a batch dimension).

use burnserve_actors::InferError;
use burnserve_models::{NamedTensor, TensorData};

/// The most classes one output may be asked for.
pub const MAX_CLASSES: i64 = 65_536;

/// Every value of a numeric tensor as `f64`; `None` for BYTES.
fn values(data: &TensorData) -> Option<Vec<f64>> {
    fn all<T: Copy>(v: &[T], f: impl Fn(T) -> f64) -> Option<Vec<f64>> {
        Some(v.iter().map(|&x| f(x)).collect())
    }
    match data {
        TensorData::Bool(v) => all(v, |x| f64::from(u8::from(x))),
        TensorData::U8(v) => all(v, f64::from),
        TensorData::U16(v) => all(v, f64::from),
        TensorData::U32(v) => all(v, f64::from),
        TensorData::U64(v) => all(v, |x| x as f64),
        TensorData::I8(v) => all(v, f64::from),
        TensorData::I16(v) => all(v, f64::from),
        TensorData::I32(v) => all(v, f64::from),
        TensorData::I64(v) => all(v, |x| x as f64),
        TensorData::F16(v) => all(v, f64::from),
        TensorData::BF16(v) => all(v, f64::from),
        TensorData::F32(v) => all(v, f64::from),
        TensorData::F64(v) => all(v, |x| x),
        TensorData::Bytes(_) => None,
    }
}

/// `tensor` as its top `k` classes per item (`batched`: its first dimension is the rows).
pub fn classify(
    tensor: NamedTensor,
    k: usize,
    labels: &[String],
    batched: bool,
) -> Result<NamedTensor, InferError> {
    let values = values(&tensor.data).ok_or_else(|| {
        InferError::InvalidInput(format!(
            "output '{}' is BYTES; classification needs numbers",
            tensor.name
        ))
    })?;
    let rows = if batched {
        tensor.shape.first().copied().unwrap_or(1)
    } else {
        1
    };
    let per_row = values.len().checked_div(rows).unwrap_or(0);
    let k = k.min(per_row);
    let mut classes = Vec::with_capacity(rows * k);
    for row in values.chunks(per_row.max(1)).take(rows) {
        let mut order: Vec<usize> = (0..row.len()).collect();
        // Largest first; NaN last; ties by index.
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &index in order.iter().take(k) {
            let text = match labels.get(index) {
                Some(label) => format!("{:.6}:{index}:{label}", row[index]),
                None => format!("{:.6}:{index}", row[index]),
            };
            classes.push(text.into_bytes());
        }
    }
    let shape = if batched { vec![rows, k] } else { vec![k] };
    Ok(NamedTensor::new(
        tensor.name,
        shape,
        TensorData::Bytes(classes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(t: &NamedTensor) -> Vec<String> {
        match &t.data {
            TensorData::Bytes(v) => v
                .iter()
                .map(|b| String::from_utf8_lossy(b).into())
                .collect(),
            _ => panic!("not BYTES"),
        }
    }

    #[test]
    fn top_k_per_row_with_labels() {
        let tensor = NamedTensor::new(
            "p",
            vec![2, 3],
            TensorData::F32(vec![0.1, 0.7, 0.2, 0.5, 0.5, 0.0]),
        );
        let labels = vec!["a".to_string(), "b".into(), "c".into()];
        let out = classify(tensor.clone(), 2, &labels, true).expect("numbers");
        assert_eq!(out.shape, vec![2, 2]);
        assert_eq!(
            strings(&out),
            [
                "0.700000:1:b",
                "0.200000:2:c",
                "0.500000:0:a",
                "0.500000:1:b"
            ]
        );
        let out = classify(tensor, 10, &[], false).expect("numbers");
        assert_eq!(out.shape, vec![6]);
        assert_eq!(strings(&out)[0], "0.700000:1");
        let bytes = NamedTensor::new("s", vec![1], TensorData::Bytes(vec![b"x".to_vec()]));
        assert!(classify(bytes, 1, &[], true).is_err());
    }
}
