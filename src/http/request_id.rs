//! Request correlation: every request gets an id, the client's `x-request-id` when it sends a
//! usable one (1 to 128 visible ASCII characters), else the trace id of a valid W3C
//! `traceparent`, else a new one (32 hex digits: a random per-process prefix and a counter).
//! The id is echoed in the response's `x-request-id` and carried, with the `traceparent`, on
//! every log line of the request (a `tracing` span around its handling). The request's outcome is
//! logged in that span: server faults (5xx but the overload and drain answers) at ERROR,
//! overload and drain answers at WARN, client mistakes (4xx) at DEBUG.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use burnserve_actors::log_throttle::LogThrottle;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";
const MAX_ID_LEN: usize = 128;

/// A new id: this process's random 64-bit prefix, then a counter.
fn new_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| RandomState::new().build_hasher().finish());
    format!(
        "{prefix:016x}{:016x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The client's id when usable: 1 to 128 visible ASCII characters (no spaces or controls).
fn usable(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && nonzero(trace)
                && hex(parent, 16)
                && nonzero(parent)
                && hex(flags, 2) =>
        {
            Some(trace)
        }
        _ => None,
    }
}

/// The id a request is known by (see the module's doc).
pub fn request_id(client_id: Option<&str>, traceparent: Option<&str>) -> String {
    match (
        client_id.filter(|id| usable(id)),
        traceparent.and_then(trace_id),
    ) {
        (Some(id), _) => id.to_string(),
        (None, Some(trace)) => trace.to_string(),
        (None, None) => new_id(),
    }
}

/// The sampled log of one refusal status: 3 lines at once, then one per 10 s.
fn refusal_log(status: u16) -> &'static LogThrottle {
    static LOGS: LazyLock<[LogThrottle; 3]> =
        LazyLock::new(|| std::array::from_fn(|_| LogThrottle::per_version()));
    &LOGS[match status {
        429 => 0,
        503 => 1,
        _ => 2,
    }]
}

/// Wraps every request in its span, echoes the id and logs the outcome (app-wide, outermost).
pub async fn correlate(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let traceparent = header("traceparent").filter(|t| trace_id(t).is_some());
    let id = request_id(header(REQUEST_ID).as_deref(), traceparent.as_deref());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        traceparent = traceparent.as_deref().unwrap_or(""),
        method = %request.method(),
        path = %request.path(),
    );
    let mut response = next.call(request).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    span.in_scope(|| match status {
        // Refusals come in floods (a tenant over its quota, a shedding version): counted in
        // `http_requests_total{status}`, logged as a sampled summary.
        429 | 503 | 504 => {
            if let Some(held_back) = refusal_log(status).admit() {
                tracing::warn!(
                    status,
                    held_back,
                    "refused or timed out (sampled: held_back more like it since the last line)"
                );
            }
        }
        500.. => tracing::error!(status, "server fault"),
        400..=499 => tracing::debug!(status, "client error"),
        _ => tracing::trace!(status, "answered"),
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_id_then_the_trace_id_then_a_new_one() {
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(request_id(Some("req-42"), Some(trace)), "req-42");
        assert_eq!(
            request_id(None, Some(trace)),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in ["", "has space", "tab\there", &"x".repeat(129), "é"] {
            assert_eq!(
                request_id(Some(bad), Some(trace)),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad:?}"
            );
        }
        let (a, b) = (request_id(None, None), request_id(None, None));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one prefix per process");
    }

    #[test]
    fn only_valid_traceparents_count() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
        }
    }
}
