//! What the gRPC listener decides on a call's headers, before any of its message is read: the
//! server-wide cap on calls open at once (`grpc.max_concurrent_calls`), the tenant key and quota
//! for `ModelInfer`, the admin token for the repository RPCs; and the guard on every request
//! body: each byte received is charged to the connection's (`grpc.max_connection_body_bytes`) and
//! the server's (`server.max_inflight_body_bytes`) budgets until the call is answered, and a
//! message that has not arrived whole within `server.body_timeout_ms` of its headers is cut
//! (DEADLINE_EXCEEDED, `request_timeout`), as HTTP answers 408.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tonic::body::Body;
use tonic::codegen::{http, Bytes, Service};
use tonic::service::Routes;
use tonic::Status;

use super::serve::Connection;
use super::status;
use crate::edge::budget::{ByteBudget, Charge};
use crate::http::auth::{check_admin, check_tenant};
use crate::http::{ApiError, AppState};

const SERVICE: &str = "/inference.GRPCInferenceService/";

/// What a call's path asks for, as far as the gate is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guarded {
    /// Inference: a tenant key and quota when tenants are configured.
    Tenant,
    /// The model repository: the admin token.
    Admin,
    /// Metadata, health, statistics: public, as over HTTP.
    Public,
}

fn guarded(path: &str) -> Guarded {
    match path.strip_prefix(SERVICE) {
        Some("ModelInfer" | "ModelStreamInfer") => Guarded::Tenant,
        Some("RepositoryIndex" | "RepositoryModelLoad" | "RepositoryModelUnload") => Guarded::Admin,
        _ => Guarded::Public,
    }
}

/// The tenant a call was admitted for, and when its headers arrived (a request extension read
/// by the handlers).
#[derive(Debug, Clone)]
pub struct CallOf {
    pub tenant: Arc<str>,
    pub arrived: Instant,
}

/// The server-wide side of the gate: one per listener, shared by its connections.
pub struct Shared {
    pub state: AppState,
    /// `server.max_inflight_body_bytes`, shared with HTTP.
    pub body_budget: Arc<ByteBudget>,
    /// Calls open on the listener, under `grpc.max_concurrent_calls`.
    pub calls: Arc<ByteBudget>,
    /// `server.body_timeout_ms`.
    pub body_timeout: Duration,
    /// The tenant of calls without one (`anonymous`), shared.
    pub anonymous: Arc<str>,
}

/// The gate in front of tonic's routes on one connection.
#[derive(Clone)]
pub struct Gate {
    pub routes: Routes,
    pub shared: Arc<Shared>,
    pub connection: Arc<Connection>,
}

type Answer = http::Response<Body>;

fn refuse(err: ApiError) -> Answer {
    status(err).into_http()
}

/// The bearer token of the call's `authorization` metadata.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl Gate {
    /// The call's admission, or the answer that refuses it (nothing of its body read).
    fn admit(
        &self,
        request: &mut http::Request<Incoming>,
    ) -> Result<(Option<crate::edge::access::Admission>, Arc<str>), Box<Answer>> {
        let access = &self.shared.state.access;
        let given = bearer(request.headers());
        match guarded(request.uri().path()) {
            Guarded::Tenant => match check_tenant(access, given, "metadata") {
                Ok(Some(admission)) => {
                    let tenant = admission.tenant.clone();
                    Ok((Some(admission), tenant))
                }
                Ok(None) => Ok((None, self.shared.anonymous.clone())),
                Err(err) => Err(Box::new(refuse(err))),
            },
            Guarded::Admin => {
                let source = self.connection.peer.map(|peer: SocketAddr| peer.ip());
                check_admin(access, given, source, "metadata").map_err(|e| Box::new(refuse(e)))?;
                Ok((None, self.shared.anonymous.clone()))
            }
            Guarded::Public => Ok((None, self.shared.anonymous.clone())),
        }
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Gate {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        let arrived = Instant::now();
        let open = self.connection.call_started();
        let call_slot = CallSlot::take(&self.shared.calls);
        if call_slot.is_none() {
            return Box::pin(std::future::ready(Ok(refuse(ApiError::Busy(format!(
                "the server has grpc.max_concurrent_calls ({}) calls open; retry",
                self.shared.calls.limit()
            ))))));
        }
        let (admission, tenant) = match self.admit(&mut request) {
            Ok(admitted) => admitted,
            Err(answer) => return Box::pin(std::future::ready(Ok(*answer))),
        };
        let charge = Arc::new(Charge::to_both(
            self.shared.body_budget.clone(),
            self.connection.body_budget.clone(),
        ));
        let timeout = self.shared.body_timeout;
        let mut request = request.map(|body| {
            Body::new(GuardedBody {
                inner: body,
                charge: charge.clone(),
                due: arrived + timeout,
                deadline: None,
                timeout,
                ended: false,
            })
        });
        request.extensions_mut().insert(CallOf { tenant, arrived });
        let mut routes = self.routes.clone();
        Box::pin(async move {
            let answer = routes.call(request).await;
            // Held until the call is answered: its message is in memory until then.
            drop((charge, admission, call_slot, open));
            answer
        })
    }
}

/// One of the listener's call slots, given back when dropped.
struct CallSlot(Arc<ByteBudget>);

impl CallSlot {
    fn take(calls: &Arc<ByteBudget>) -> Option<Self> {
        calls.try_take(1).then(|| CallSlot(calls.clone()))
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.give_back(1);
    }
}

/// A call's request body under its byte budgets and its deadline.
struct GuardedBody {
    inner: Incoming,
    charge: Arc<Charge>,
    /// When the message must be whole.
    due: Instant,
    /// Its timer, armed the first time the body waits (a unary call's message usually came
    /// with its headers, and then no timer is made at all).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    ended: bool,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(limit) = this.charge.add(data.len()) {
                        this.ended = true;
                        return Poll::Ready(Some(Err(status(ApiError::Busy(format!(
                            "request messages in flight hold {limit} bytes, the most this \
                             server or connection takes at once \
                             (server.max_inflight_body_bytes, grpc.max_connection_body_bytes); retry"
                        ))))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.ended = true;
                Poll::Ready(Some(Err(Status::cancelled(format!(
                    "the request stream failed: {err}"
                )))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this
                .deadline
                .get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                        this.due,
                    )))
                })
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => {
                    this.ended = true;
                    Poll::Ready(Some(Err(status(ApiError::RequestTimeout {
                        message: format!(
                            "the request message did not arrive within server.body_timeout_ms ({} ms)",
                            this.timeout.as_millis()
                        ),
                    }))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_needs_a_tenant_and_the_repository_the_admin() {
        assert_eq!(guarded(&format!("{SERVICE}ModelInfer")), Guarded::Tenant);
        assert_eq!(
            guarded(&format!("{SERVICE}ModelStreamInfer")),
            Guarded::Tenant
        );
        for rpc in [
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
        ] {
            assert_eq!(guarded(&format!("{SERVICE}{rpc}")), Guarded::Admin);
        }
        for rpc in [
            "ModelMetadata",
            "ServerLive",
            "ModelStatistics",
            "ModelConfig",
        ] {
            assert_eq!(guarded(&format!("{SERVICE}{rpc}")), Guarded::Public);
        }
        assert_eq!(guarded("/grpc.health.v1.Health/Check"), Guarded::Public);
        assert_eq!(
            guarded("/inference.GRPCInferenceService/ModelInfer/x"),
            Guarded::Public
        );
    }
}
