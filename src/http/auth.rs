//! The bearer gates, both run before any body or query string is read: `admin_gate` (the admin
//! token on `/admin` and `/v2/repository`) and `tenant_gate` (a tenant key and its quota on the
//! inference routes), over the protocol-neutral checks gRPC uses too ([`check_admin`],
//! [`check_tenant`]); and `Caller`, the tenant name a handler puts on its inference request.

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use burnserve_actors::{InferRequest, ANONYMOUS};

use super::body::Arrived;
use super::{ApiError, AppState};
use crate::edge::access::{Access, Admission, Holder};
use crate::edge::guesses::Credential;

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn access(request: &ServiceRequest) -> Option<Arc<Access>> {
    request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.access.clone())
}

/// A refusal answered as a response, so outer middleware (the body deadline) still sees it.
pub fn refuse<B>(request: ServiceRequest, error: ApiError) -> ServiceResponse<EitherBody<B>> {
    request.error_response(error).map_into_right_body()
}

/// The admin token's check, for HTTP's admin gate and gRPC's repository RPCs (`carrier` names
/// where the token goes: "header" or "metadata"). A source that sent too many wrong tokens is
/// refused unchecked until its penalty ends (`crate::edge::guesses`); every failure is counted.
pub fn check_admin(
    access: &Access,
    given: Option<&str>,
    source: Option<IpAddr>,
    carrier: &str,
) -> Result<(), ApiError> {
    if !access.admin_enabled() {
        return Err(ApiError::Forbidden(
            "the admin API is disabled: set admin.token (or BURNSERVE__ADMIN__TOKEN) to enable it"
                .into(),
        ));
    }
    let now = Instant::now();
    if let Err(wait) = access.guesses.admin_allowed(source, now) {
        return Err(ApiError::TooManyFailures { retry_after: wait });
    }
    let refusal = match given.map(|given| access.holder(given)) {
        Some(Holder::Admin) => {
            access.guesses.succeeded(source);
            return Ok(());
        }
        Some(Holder::Tenant(_)) => {
            return Err(ApiError::Forbidden(
                "a tenant API key cannot use the admin API; it needs admin.token".into(),
            ))
        }
        Some(Holder::Nobody) => ApiError::Unauthorized("wrong admin token".into()),
        None => ApiError::Unauthorized(format!(
            "the admin API needs `authorization: Bearer <admin.token>` ({carrier})"
        )),
    };
    access.guesses.failed(Credential::Admin, source, now);
    Err(refusal)
}

/// A tenant key and its quota, for HTTP's tenant gate and gRPC's inference: `Ok(None)` when no
/// tenants are configured (everyone is `anonymous`), else the admission that holds the tenant's
/// in-flight slot.
pub fn check_tenant(
    access: &Access,
    given: Option<&str>,
    carrier: &str,
) -> Result<Option<Admission>, ApiError> {
    if !access.tenants_enabled() {
        return Ok(None);
    }
    let index = match given.map(|given| access.holder(given)) {
        Some(Holder::Tenant(index)) => index,
        Some(_) => {
            access
                .guesses
                .failed(Credential::TenantKey, None, Instant::now());
            return Err(ApiError::Unauthorized("unknown API key".into()));
        }
        None => {
            access
                .guesses
                .failed(Credential::TenantKey, None, Instant::now());
            return Err(ApiError::Unauthorized(format!(
                "inference needs `authorization: Bearer <tenant API key>` ({carrier})"
            )));
        }
    };
    access.admit(index).map(Some).map_err(ApiError::RateLimited)
}

/// Guards `/admin` and `/v2/repository`: only the admin token passes; a tenant key is 403.
pub async fn admin_gate<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let access = access(&request);
    let checked = match access.as_deref() {
        Some(access) => {
            let source = request.peer_addr().map(|peer| peer.ip());
            check_admin(access, bearer(request.headers()), source, "header")
        }
        None => Err(ApiError::Forbidden("the admin API is disabled".into())),
    };
    match checked {
        Ok(()) => Ok(next.call(request).await?.map_into_left_body()),
        Err(refusal) => Ok(refuse(request, refusal)),
    }
}

/// Guards the inference routes when tenants are configured: the caller's key names its tenant,
/// whose quota admits the request (429 `rate_limited` otherwise) before its body is read. The
/// in-flight slot is held until the handler has answered.
pub async fn tenant_gate<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(access) = access(&request).filter(|access| access.tenants_enabled()) else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    let admission = match check_tenant(&access, bearer(request.headers()), "header") {
        Ok(Some(admission)) => admission,
        Ok(None) => return Ok(next.call(request).await?.map_into_left_body()),
        Err(refusal) => return Ok(refuse(request, refusal)),
    };
    request
        .extensions_mut()
        .insert(Tenant(admission.tenant.clone()));
    let response = next.call(request).await;
    drop(admission);
    Ok(response?.map_into_left_body())
}

/// The tenant the gate admitted a request for (a request extension).
#[derive(Debug, Clone)]
struct Tenant(Arc<str>);

/// Who asks and since when: the tenant a request is served for (its configured name, or
/// `anonymous` without tenants) and when its headers arrived (`body::Arrived`), from which its
/// deadline counts.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant: Arc<str>,
    arrived: Option<Instant>,
}

impl Caller {
    /// The caller of `request`, as the gates and the body middleware left it.
    pub fn of(request: &HttpRequest) -> Self {
        let extensions = request.extensions();
        let tenant = extensions
            .get::<Tenant>()
            .map_or_else(|| Arc::from(ANONYMOUS), |tenant| tenant.0.clone());
        let arrived = extensions.get::<Arrived>().map(|arrived| arrived.0);
        Caller { tenant, arrived }
    }

    /// A caller for background work done for `tenant` (an async job): no arrival, so its
    /// deadline counts from when it is routed.
    pub fn background(tenant: &str) -> Self {
        Caller {
            tenant: Arc::from(tenant),
            arrived: None,
        }
    }

    pub fn tenant(&self) -> String {
        self.tenant.to_string()
    }

    /// Puts the tenant and the arrival on a request to the runtime.
    pub fn apply(&self, request: &mut InferRequest) {
        request.tenant = self.tenant();
        request.received_at = self.arrived;
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Caller::of(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let token = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
            bearer(&headers).map(str::to_string)
        };
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bEaReR  abc ").as_deref(), Some("abc"));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("abc"), None);
    }
}
