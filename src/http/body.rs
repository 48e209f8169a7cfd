//! Every request passes here (app-wide middleware): it is counted as in flight for the drain,
//! its response closes the connection while draining, its body is decoded here when compressed
//! (`super::inflate`: the limit holds for decoded bytes as they stream) and charged to the
//! server's body budget (`server.max_inflight_body_bytes`, 429 `overloaded` past it) until it is
//! answered, and — slow and unread bodies — every request body is read under a deadline
//! (`server.body_timeout_ms`, counted from its headers), past which reading fails and the
//! request answers 408 `request_timeout`; a response that leaves its request body unread closes
//! the connection, so a stalled upload never holds a connection past its answer. Every response
//! carries `Server-Timing: total;dur=<ms>`, the time from its headers to its answer as the
//! server saw it (what a client measures adds its own scheduling and the network).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;

use super::inflate::{Coding, Inflater, Refused};
use super::{ApiError, AppState};
use crate::edge::budget::Charge;

/// A request body read under its deadline (it fails with [`PayloadError::Io`] `TimedOut` once
/// that passes), decoded when compressed (`super::inflate`), and charged to the server's body
/// budget as it arrives.
struct GuardedPayload {
    inner: Rc<RefCell<Payload>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    finished: Rc<Cell<bool>>,
    inflater: Option<Inflater>,
    charge: Arc<Charge>,
    failed: bool,
}

impl GuardedPayload {
    /// A raw chunk as the handler sees it: decoded, or charged as it is.
    fn pass(&mut self, chunk: Bytes) -> Result<Bytes, PayloadError> {
        match &mut self.inflater {
            Some(inflater) => inflater.feed(&chunk).map_err(PayloadError::Io),
            None => {
                self.charge
                    .add(chunk.len())
                    .map_err(|limit| PayloadError::Io(Refused::Busy { limit }.into_io()))?;
                Ok(chunk)
            }
        }
    }
}

impl Stream for GuardedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished.get() || this.failed {
            return Poll::Ready(None);
        }
        loop {
            let polled = Pin::new(&mut *this.inner.borrow_mut()).poll_next(cx);
            let passed = match polled {
                Poll::Ready(None) => {
                    this.finished.set(true);
                    match this.inflater.as_mut().map(Inflater::finish) {
                        Some(Ok(rest)) if !rest.is_empty() => Ok(rest),
                        Some(Err(err)) => Err(PayloadError::Io(err)),
                        _ => return Poll::Ready(None),
                    }
                }
                Poll::Ready(Some(Ok(chunk))) => this.pass(chunk),
                Poll::Ready(Some(Err(err))) => Err(err),
                Poll::Pending => break,
            };
            match passed {
                // A compressed chunk may decode to nothing yet: read on.
                Ok(bytes) if bytes.is_empty() && !this.finished.get() => continue,
                Ok(bytes) => return Poll::Ready(Some(Ok(bytes))),
                Err(err) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.failed = true;
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the body did not arrive within server.body_timeout_ms ({} ms)",
                        this.timeout.as_millis()
                    ),
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// [`payload_error`] for the error of a `web::Payload` read.
pub fn read_error(err: &actix_web::Error) -> ApiError {
    match err.as_error::<PayloadError>() {
        Some(err) => payload_error(err),
        None => ApiError::BadRequest(format!("reading the body: {err}")),
    }
}

/// The API error for a failed body read: 408 when its deadline passed, 413 when it decodes past
/// `server.max_body_bytes`, 429 when the server's body budget is spent, else 400.
pub fn payload_error(err: &PayloadError) -> ApiError {
    match err {
        PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut => ApiError::RequestTimeout {
            message: io.to_string(),
        },
        PayloadError::Io(io) => match Refused::inside(io) {
            Some(Refused::TooLarge { limit }) => ApiError::PayloadTooLarge {
                limit: *limit,
                setting: "server.max_body_bytes",
            },
            Some(busy @ Refused::Busy { .. }) => ApiError::Busy(busy.to_string()),
            None => ApiError::BadRequest(format!("reading the body: {io}")),
        },
        PayloadError::Overflow => ApiError::PayloadTooLarge {
            limit: 0,
            setting: "server.max_body_bytes",
        },
        other => ApiError::BadRequest(format!("reading the body: {other}")),
    }
}

/// A response body that keeps its request's unread body alive until the response is sent:
/// actix closes the connection after a response whose request body reader is still alive, where
/// it would otherwise drain (and wait for) a chunked body that a stalled client never finishes.
struct HoldingUnread {
    body: BoxBody,
    _unread: Rc<RefCell<Payload>>,
}

impl MessageBody for HoldingUnread {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// When a request's headers arrived (a request extension set here): its deadline counts from it.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// The `Server-Timing` entry for the whole request (W3C Server Timing: `dur` in milliseconds).
pub fn server_timing_total(took: Duration) -> String {
    format!("total;dur={}", super::millis(took))
}

/// Wraps every request body in its deadline, and closes the connection after any response
/// whose request body was not read to its end.
pub async fn body_deadline(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let arrived = Instant::now();
    request.extensions_mut().insert(Arrived(arrived));
    let state = request
        .app_data::<actix_web::web::Data<AppState>>()
        .cloned();
    let guard = state.as_ref().map(|state| {
        (
            state.body_timeout,
            state.max_body_bytes,
            state.body_budget.clone(),
        )
    });
    let _serving = state.as_ref().map(|state| state.drain.serving());
    let coding = Coding::of(
        request
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok()),
    );
    let coding = match coding {
        Ok(coding) => coding,
        Err(unknown) => {
            let refusal = ApiError::BadRequest(format!(
                "Content-Encoding '{unknown}' is not supported (gzip, deflate or identity)"
            ));
            let mut response = request.error_response(refusal);
            response
                .response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            return Ok(response);
        }
    };
    let mut charge = None;
    let body = match (request.take_payload(), guard) {
        (Payload::None, _) => None,
        (payload, None) => {
            request.set_payload(payload);
            None
        }
        (inner, Some((timeout, max_body_bytes, budget))) => {
            let finished = Rc::new(Cell::new(false));
            let inner = Rc::new(RefCell::new(inner));
            let held = Arc::new(Charge::to(budget));
            let inflater = Inflater::new(coding, max_body_bytes, held.clone());
            if inflater.is_some() {
                // Handlers and extractors see the decoded body: no coding, no length.
                request.headers_mut().remove(CONTENT_ENCODING);
                request.headers_mut().remove(CONTENT_LENGTH);
            }
            let stream = GuardedPayload {
                inner: inner.clone(),
                deadline: Box::pin(tokio::time::sleep(timeout)),
                timeout,
                finished: finished.clone(),
                inflater,
                charge: held.clone(),
                failed: false,
            };
            request.set_payload(Payload::Stream {
                payload: Box::pin(stream),
            });
            charge = Some(held);
            Some((finished, inner))
        }
    };
    // The gates answer refusals as responses (not errors), so they pass through here too.
    let mut response = next.call(request).await?.map_into_boxed_body();
    // The body's bytes are given back once the request is answered (its handler held them).
    drop(charge);
    if let Ok(total) = HeaderValue::from_str(&server_timing_total(arrived.elapsed())) {
        response
            .headers_mut()
            .append(HeaderName::from_static("server-timing"), total);
    }
    if state
        .as_ref()
        .is_some_and(|state| state.drain.is_draining())
    {
        // Draining: the client reconnects, and the load balancer sends it elsewhere.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    match body {
        Some((finished, unread)) if !finished.get() => {
            response
                .response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            Ok(response.map_body(|_, body| {
                BoxBody::new(HoldingUnread {
                    body,
                    _unread: unread,
                })
            }))
        }
        _ => Ok(response),
    }
}
