//! Compressed request bodies (`Content-Encoding: gzip | deflate`) decoded as they stream, under
//! the body's limit and the server's budget: every decoded byte is counted against
//! `server.max_body_bytes` and charged to `server.max_inflight_body_bytes` *as the decoder
//! writes it*, so a 130 KB body that inflates to 134 MB stops at the limit instead of expanding
//! in memory first (actix's own decoder inflates a whole chunk before any limit is checked).

use std::io::{self, Write};
use std::sync::Arc;

use actix_web::web::{Bytes, BytesMut};
use flate2::write::{GzDecoder, ZlibDecoder};

use crate::edge::budget::Charge;

/// A request body's content coding, from its `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
}

impl Coding {
    /// `Err(value)` for a coding this server does not decode.
    pub fn of(header: Option<&str>) -> Result<Self, String> {
        let Some(value) = header.map(str::trim) else {
            return Ok(Coding::Identity);
        };
        if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Ok(Coding::Gzip)
        } else if value.eq_ignore_ascii_case("deflate") {
            Ok(Coding::Deflate)
        } else if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Ok(Coding::Identity)
        } else {
            Err(value.chars().take(32).collect())
        }
    }
}

/// Why a body's bytes were refused while arriving (carried inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// More than `server.max_body_bytes` (decoded).
    #[error("the request body decodes to more than server.max_body_bytes ({limit} bytes)")]
    TooLarge { limit: usize },
    /// The server holds `server.max_inflight_body_bytes` of bodies already.
    #[error(
        "request bodies in flight hold {limit} bytes, the most this server takes at once \
         (server.max_inflight_body_bytes); retry"
    )]
    Busy { limit: usize },
}

impl Refused {
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// The refusal inside `err`, if it is one.
    pub fn inside(err: &io::Error) -> Option<&Refused> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Refused>())
    }
}

/// Where the decoder writes: the bytes decoded and not yet handed on, counted and charged.
struct Sink {
    out: BytesMut,
    total: usize,
    limit: usize,
    charge: Arc<Charge>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.total.saturating_add(buf.len()) > self.limit {
            return Err(Refused::TooLarge { limit: self.limit }.into_io());
        }
        self.charge
            .add(buf.len())
            .map_err(|limit| Refused::Busy { limit }.into_io())?;
        self.total += buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A streaming decoder of one body.
pub struct Inflater {
    decoder: Decoder,
}

enum Decoder {
    Gzip(GzDecoder<Sink>),
    Deflate(ZlibDecoder<Sink>),
}

impl Inflater {
    /// `None` for identity bodies.
    pub fn new(coding: Coding, limit: usize, charge: Arc<Charge>) -> Option<Self> {
        let sink = Sink {
            out: BytesMut::new(),
            total: 0,
            limit,
            charge,
        };
        let decoder = match coding {
            Coding::Identity => return None,
            Coding::Gzip => Decoder::Gzip(GzDecoder::new(sink)),
            Coding::Deflate => Decoder::Deflate(ZlibDecoder::new(sink)),
        };
        Some(Self { decoder })
    }

    fn sink(&mut self) -> &mut Sink {
        match &mut self.decoder {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
        }
    }

    /// Decodes `chunk`; returns what it decoded to (possibly nothing yet).
    pub fn feed(&mut self, chunk: &[u8]) -> io::Result<Bytes> {
        // The decoder keeps up to 32 KB of output of its own until flushed: flushed at once,
        // every decoded byte is counted and handed on as it streams.
        match &mut self.decoder {
            Decoder::Gzip(d) => d.write_all(chunk).and_then(|()| d.flush())?,
            Decoder::Deflate(d) => d.write_all(chunk).and_then(|()| d.flush())?,
        }
        Ok(self.sink().out.split().freeze())
    }

    /// The end of the compressed body: what is left, or an error for a truncated stream.
    pub fn finish(&mut self) -> io::Result<Bytes> {
        match &mut self.decoder {
            Decoder::Gzip(d) => d.try_finish()?,
            Decoder::Deflate(d) => d.try_finish()?,
        }
        Ok(self.sink().out.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::budget::ByteBudget;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(data).expect("encode");
        encoder.finish().expect("finish")
    }

    #[test]
    fn codings_are_read_case_insensitively_and_others_refused() {
        assert_eq!(Coding::of(None), Ok(Coding::Identity));
        assert_eq!(Coding::of(Some("GZip")), Ok(Coding::Gzip));
        assert_eq!(Coding::of(Some("x-gzip")), Ok(Coding::Gzip));
        assert_eq!(Coding::of(Some("deflate")), Ok(Coding::Deflate));
        assert_eq!(Coding::of(Some("identity")), Ok(Coding::Identity));
        assert_eq!(Coding::of(Some("br")), Err("br".into()));
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_charges_only_what_was_decoded() {
        let budget = ByteBudget::new(1 << 30);
        let charge = Arc::new(Charge::to(budget.clone()));
        let bomb = gzip(&vec![b'0'; 64 << 20]);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let limit = 1 << 20;
        let mut inflater = Inflater::new(Coding::Gzip, limit, charge.clone()).expect("gzip");
        let mut decoded = 0;
        let mut refused = None;
        for chunk in bomb.chunks(16 * 1024) {
            match inflater.feed(chunk) {
                Ok(bytes) => decoded += bytes.len(),
                Err(err) => {
                    refused = Refused::inside(&err).map(|r| r.to_string());
                    break;
                }
            }
        }
        assert_eq!(
            refused.as_deref(),
            Some("the request body decodes to more than server.max_body_bytes (1048576 bytes)")
        );
        assert!(decoded <= limit);
        assert!(budget.used() <= limit, "{}", budget.used());
        drop(inflater);
        drop(charge);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_budget_refuses_while_decoding_and_a_whole_body_decodes_exactly() {
        let budget = ByteBudget::new(1000);
        let charge = Arc::new(Charge::to(budget.clone()));
        let mut inflater = Inflater::new(Coding::Gzip, 1 << 20, charge).expect("gzip");
        let err = inflater
            .feed(&gzip(&[7u8; 5000]))
            .expect_err("over the budget");
        assert!(matches!(
            Refused::inside(&err),
            Some(Refused::Busy { limit: 1000 })
        ));

        let budget = ByteBudget::new(1 << 20);
        let charge = Arc::new(Charge::to(budget.clone()));
        let text = b"{\"inputs\": [1, 2, 3]}".repeat(100);
        let compressed = gzip(&text);
        let mut inflater = Inflater::new(Coding::Gzip, 1 << 20, charge).expect("gzip");
        let mut out = Vec::new();
        for chunk in compressed.chunks(7) {
            out.extend_from_slice(&inflater.feed(chunk).expect("feed"));
        }
        out.extend_from_slice(&inflater.finish().expect("finish"));
        assert_eq!(out, text);
        assert_eq!(budget.used(), text.len());

        let mut truncated = Inflater::new(Coding::Gzip, 1 << 20, Arc::default()).expect("gzip");
        truncated
            .feed(&compressed[..compressed.len() / 2])
            .expect("half");
        assert!(
            truncated.finish().is_err(),
            "a truncated stream is an error"
        );
    }
}
