//! The KServe v2 binary tensor data extension (Triton's `binary_tensor_data`): an infer body may
//! be a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors, each
//! input with `parameters.binary_data_size` taking its bytes in order (little-endian, row major;
//! BYTES elements as a 4-byte length and the bytes). Outputs asked for with
//! `parameters.binary_data` (or all, with the request's `binary_data_output`) are answered the
//! same way. Every size is checked against what is there: nothing is read past the body.

use actix_web::http::header::HeaderMap;

use super::ApiError;

/// The header giving the JSON part's length, in requests and responses.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The body's JSON header and the binary section after it. Without the header, the whole body
/// is JSON.
pub fn split<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{HEADER_LENGTH} must be a byte count, got '{}'",
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(32)
                    .collect::<String>()
            ))
        })?;
    if length > body.len() {
        return Err(ApiError::BadRequest(format!(
            "{HEADER_LENGTH} is {length} but the body has {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(length))
}

/// The binary section, handed out input by input.
pub struct Section<'a> {
    rest: &'a [u8],
    taken: usize,
}

impl<'a> Section<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            taken: 0,
        }
    }

    /// The next `size` bytes, for input `input`.
    pub fn take(&mut self, input: &str, size: u64) -> Result<&'a [u8], ApiError> {
        let size = usize::try_from(size).ok().filter(|&s| s <= self.rest.len());
        let Some(size) = size else {
            return Err(ApiError::BadRequest(format!(
                "input '{input}': binary_data_size is past the body ({} bytes of binary data \
                 left after {} used)",
                self.rest.len(),
                self.taken
            )));
        };
        let (bytes, rest) = self.rest.split_at(size);
        self.rest = rest;
        self.taken += size;
        Ok(bytes)
    }

    /// Every byte must belong to an input.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.rest.is_empty() {
            return Ok(());
        }
        Err(ApiError::BadRequest(format!(
            "the inputs' binary_data_size add up to {} bytes but {} follow the JSON header",
            self.taken,
            self.taken + self.rest.len()
        )))
    }
}

/// Decoded binary tensor data.
#[derive(Debug, PartialEq)]
pub enum Values {
    Numbers(Vec<f32>),
    Strings(Vec<String>),
}

/// Elements of `shape`, or a 400 when the product overflows.
fn elements(input: &str, shape: &[usize]) -> Result<usize, ApiError> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            ApiError::BadRequest(format!("input '{input}': shape {shape:?} is too large"))
        })
}

/// Reads one input's bytes as `datatype` values for `shape`: FP32 (4 bytes each), UINT8 (one),
/// BYTES (4-byte little-endian length, then the UTF-8 bytes, per element).
pub fn decode(
    input: &str,
    datatype: &str,
    shape: &[usize],
    bytes: &[u8],
) -> Result<Values, ApiError> {
    let count = elements(input, shape)?;
    let wrong_size = |each: &str| {
        ApiError::BadRequest(format!(
            "input '{input}': {} bytes of {datatype} data do not hold shape {shape:?} ({count} \
             elements of {each})",
            bytes.len()
        ))
    };
    match datatype {
        "FP32" => {
            if Some(bytes.len()) != count.checked_mul(4) {
                return Err(wrong_size("4 bytes"));
            }
            Ok(Values::Numbers(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ))
        }
        "UINT8" => {
            if bytes.len() != count {
                return Err(wrong_size("1 byte"));
            }
            Ok(Values::Numbers(
                bytes.iter().map(|&b| f32::from(b)).collect(),
            ))
        }
        "BYTES" => {
            let mut rest = bytes;
            let mut strings = Vec::with_capacity(count.min(bytes.len() / 4));
            for index in 0..count {
                let Some((length, after)) = rest.split_first_chunk::<4>() else {
                    return Err(ApiError::BadRequest(format!(
                        "input '{input}': BYTES element {index} has no 4-byte length (the data \
                         ends; shape {shape:?} needs {count} elements)"
                    )));
                };
                let length = u32::from_le_bytes(*length) as usize;
                if length > after.len() {
                    return Err(ApiError::BadRequest(format!(
                        "input '{input}': BYTES element {index} says {length} bytes but {} are left",
                        after.len()
                    )));
                }
                let (text, next) = after.split_at(length);
                let text = std::str::from_utf8(text).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "input '{input}': BYTES element {index} is not UTF-8 text"
                    ))
                })?;
                strings.push(text.to_string());
                rest = next;
            }
            if !rest.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "input '{input}': {} bytes follow the {count} BYTES elements of shape {shape:?}",
                    rest.len()
                )));
            }
            Ok(Values::Strings(strings))
        }
        other => Err(ApiError::BadRequest(format!(
            "input '{input}': binary data of datatype {} is not supported (FP32, UINT8, BYTES)",
            other.chars().take(16).collect::<String>()
        ))),
    }
}

/// FP32 values as little-endian bytes.
pub fn encode_f32(values: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for value in values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(length: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static(HEADER_LENGTH),
            HeaderValue::from_str(length).unwrap(),
        );
        map
    }

    fn message(err: ApiError) -> String {
        err.to_string()
    }

    #[test]
    fn the_header_length_splits_json_from_binary_and_never_reads_past_the_body() {
        let body = b"{\"a\":1}\x01\x02";
        assert_eq!(
            split(&HeaderMap::new(), body).unwrap(),
            (&body[..], &[][..])
        );
        assert_eq!(
            split(&headers("7"), body).unwrap(),
            (&body[..7], &body[7..])
        );
        assert_eq!(split(&headers("9"), body).unwrap().1, b"");
        let past = message(split(&headers("10"), body).unwrap_err());
        assert!(past.contains("10") && past.contains("9 bytes"), "{past}");
        for bad in ["-1", "x", "1e3", "99999999999999999999999"] {
            assert!(split(&headers(bad), body).is_err(), "{bad}");
        }
    }

    #[test]
    fn sections_must_add_up_exactly() {
        let bytes = [0u8; 10];
        let mut section = Section::new(&bytes);
        assert_eq!(section.take("a", 4).unwrap().len(), 4);
        let over = message(section.take("b", 7).unwrap_err());
        assert!(
            over.contains("input 'b'") && over.contains("6 bytes"),
            "{over}"
        );
        assert!(section.take("b", u64::MAX).is_err());
        assert_eq!(section.take("b", 4).unwrap().len(), 4);
        let left = message(section.finish().unwrap_err());
        assert!(left.contains("8 bytes but 10"), "{left}");
        let mut exact = Section::new(&bytes);
        exact.take("a", 10).unwrap();
        exact.finish().unwrap();
    }

    #[test]
    fn tensors_decode_by_datatype_and_shape() {
        let floats = encode_f32(&[1.5, -2.0, 0.25, 8.0]);
        assert_eq!(
            decode("x", "FP32", &[2, 2], &floats).unwrap(),
            Values::Numbers(vec![1.5, -2.0, 0.25, 8.0])
        );
        let short = message(decode("x", "FP32", &[5], &floats).unwrap_err());
        assert!(
            short.contains("input 'x'") && short.contains("16 bytes"),
            "{short}"
        );
        assert!(decode("x", "FP32", &[usize::MAX, 2], &floats).is_err());
        assert_eq!(
            decode("p", "UINT8", &[3], &[0, 128, 255]).unwrap(),
            Values::Numbers(vec![0.0, 128.0, 255.0])
        );
        let mut text = Vec::new();
        for s in ["hi", "", "héllo"] {
            text.extend_from_slice(&(s.len() as u32).to_le_bytes());
            text.extend_from_slice(s.as_bytes());
        }
        assert_eq!(
            decode("t", "BYTES", &[3], &text).unwrap(),
            Values::Strings(vec!["hi".into(), "".into(), "héllo".into()])
        );
        assert!(decode("t", "BYTES", &[4], &text)
            .unwrap_err()
            .to_string()
            .contains("element 3"));
        assert!(decode("t", "BYTES", &[2], &text)
            .unwrap_err()
            .to_string()
            .contains("follow"));
        let lying = [255u8, 255, 255, 255, b'a'];
        assert!(decode("t", "BYTES", &[1], &lying)
            .unwrap_err()
            .to_string()
            .contains("says"));
        assert!(
            decode("t", "BYTES", &[1], &[1, 0, 0, 0, 0xff]).is_err(),
            "not UTF-8"
        );
        assert!(decode("x", "FP16", &[1], &[0, 0])
            .unwrap_err()
            .to_string()
            .contains("FP16"));
    }
}
