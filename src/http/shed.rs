//! The shedding gate of the inference routes that name their model in the path: a request is
//! refused (429 `overloaded`, `Retry-After`) before its body is read when every version it
//! could go to already holds more work than the version's own deadline allows
//! (`InferenceService::refuse_early`). Under a flood, reading and decoding the body is what a
//! refusal would otherwise cost: a 32-image CNN request's JSON took most of the time it took to
//! serve it. The unread body closes the connection (`body::body_deadline`).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::auth::{refuse, Caller};
use super::AppState;

pub async fn shed_gate<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    if let (Some(state), Some(model)) = (state, request.match_info().get("model")) {
        let version = request.match_info().get("version");
        let tenant = Caller::of(request.request()).tenant();
        if let Err(err) = state.service.refuse_early(model, version, &tenant) {
            return Ok(refuse(request, err.into()));
        }
    }
    Ok(next.call(request).await?.map_into_left_body())
}
