//! The KServe v2 binary tensor data extension (Triton's `binary_tensor_data`): an infer body may
//! be a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors, each
//! input with `parameters.binary_data_size` taking its bytes in order (their decoding, as for
//! gRPC's raw contents, is `burnserve_models::tensor::decode_le`). Outputs asked for with
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
}
