//! Every request passes here (app-wide middleware): it is counted as in flight for the drain,
//! its response closes the connection while draining, and — slow and unread bodies — every
//! request body is read under a deadline
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
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;

use super::{ApiError, AppState};

/// A request body that fails with [`PayloadError::Io`] (`TimedOut`) once its deadline passes.
struct DeadlinePayload {
    inner: Rc<RefCell<Payload>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    finished: Rc<Cell<bool>>,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished.get() {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut *this.inner.borrow_mut()).poll_next(cx);
        match polled {
            Poll::Ready(None) => {
                this.finished.set(true);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
            Poll::Pending => {}
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the body did not arrive within server.body_timeout_ms ({} ms)",
                    this.timeout.as_millis()
                ),
            ))))),
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

/// The API error for a failed body read: 408 when its deadline passed, else 400.
pub fn payload_error(err: &PayloadError) -> ApiError {
    match err {
        PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut => ApiError::RequestTimeout {
            message: io.to_string(),
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
    let timeout = state.as_ref().map(|state| state.body_timeout);
    let _serving = state.as_ref().map(|state| state.drain.serving());
    let body = match (request.take_payload(), timeout) {
        (Payload::None, _) => None,
        (payload, None) => {
            request.set_payload(payload);
            None
        }
        (inner, Some(timeout)) => {
            let finished = Rc::new(Cell::new(false));
            let inner = Rc::new(RefCell::new(inner));
            let stream = DeadlinePayload {
                inner: inner.clone(),
                deadline: Box::pin(tokio::time::sleep(timeout)),
                timeout,
                finished: finished.clone(),
            };
            request.set_payload(Payload::Stream {
                payload: Box::pin(stream),
            });
            Some((finished, inner))
        }
    };
    // The gates answer refusals as responses (not errors), so they pass through here too.
    let mut response = next.call(request).await?.map_into_boxed_body();
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
