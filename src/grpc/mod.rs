//! KServe v2 gRPC (`inference.GRPCInferenceService`, `proto/inference.proto`) and the standard
//! `grpc.health.v1.Health`: tonic's generated service, served on `grpc.port` by [`serve`] from a
//! runtime of its own, through the same handles, deadlines, metrics, tenants and admin token as
//! HTTP. A thin adapter over [`crate::kserve`]: infer takes typed `contents` or
//! `raw_input_contents` of any datatype, for any number of inputs, and always answers
//! `raw_output_contents` (little-endian, one per output), as Triton does. Errors carry the gRPC code of
//! their `error_type` (see [`status`]) and the word itself in the `error-type` trailer.
//!
//! - [`gate`]: what is decided on a call's headers (keys, quotas, call cap) and the guard on its
//!   message (byte budgets, deadline).
//! - [`serve`]: the listener: connection cap, handshake and idle timeouts, keep-alive, accept
//!   errors, shutdown.
//! - [`ping`]: PING ACKs sent with the next write.
//! - `convert`: messages to and from the core's types and documents.

use burnserve_actors::ErrorType;
use tonic::{Code, Request, Response, Status};

use crate::http::{ApiError, AppState};
use crate::kserve::request::{self, Call};
use crate::kserve::{documents, response, stats};

pub mod codec;
mod convert;
pub mod gate;
pub mod ping;
pub mod serve;

use convert::*;
pub use serve::{start, GrpcLimits, GrpcServer};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::GrpcInferenceService;
use proto::*;

/// The gRPC code of each `error_type`.
pub fn code_of(error_type: ErrorType) -> Code {
    match error_type {
        ErrorType::InvalidInput | ErrorType::SchemaMismatch => Code::InvalidArgument,
        ErrorType::Unauthorized => Code::Unauthenticated,
        ErrorType::Forbidden => Code::PermissionDenied,
        ErrorType::ModelNotFound | ErrorType::NotFound => Code::NotFound,
        ErrorType::MethodNotAllowed => Code::Unimplemented,
        ErrorType::PayloadTooLarge | ErrorType::RateLimited | ErrorType::Overloaded => {
            Code::ResourceExhausted
        }
        ErrorType::RequestTimeout | ErrorType::Timeout => Code::DeadlineExceeded,
        ErrorType::NotReady
        | ErrorType::ShuttingDown
        | ErrorType::StoreFull
        | ErrorType::StoreUnavailable => Code::Unavailable,
        ErrorType::Conflict => Code::AlreadyExists,
        ErrorType::LoadFailed | ErrorType::Inference | ErrorType::Internal => Code::Internal,
    }
}

/// An API error as a gRPC status: its code, its message, and its `error_type` as metadata.
pub fn status(err: ApiError) -> Status {
    let error_type = err.error_type();
    let mut status = Status::new(code_of(error_type), err.message());
    if let Ok(value) = error_type.as_str().parse() {
        status.metadata_mut().insert("error-type", value);
    }
    status
}

fn invalid(message: impl Into<String>) -> Status {
    status(ApiError::BadRequest(message.into()))
}

/// A core error as a gRPC status.
fn refused(err: burnserve_actors::InferError) -> Status {
    status(err.into())
}

/// The gRPC service: a handle on the same state as the HTTP routes.
#[derive(Clone)]
pub struct Inference {
    state: AppState,
}

impl Inference {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _request: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse {
            live: self.state.control.is_alive(),
        }))
    }

    async fn server_ready(
        &self,
        _request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = crate::http::health::check_ready(&self.state).await.is_ok();
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        // As Triton: a model that is not loaded is simply not ready.
        let ready = match self
            .state
            .service
            .describe(&request.name, version_of(request.version).as_deref())
            .await
        {
            Ok(described) => described.ready && !self.state.drain.is_draining(),
            Err(err) if err.error_type() == ErrorType::ModelNotFound => false,
            Err(err) => return Err(status(err.into())),
        };
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        let metadata = documents::server_metadata();
        Ok(Response::new(ServerMetadataResponse {
            name: metadata.name.into(),
            version: metadata.version.into(),
            extensions: metadata.extensions.iter().map(|e| e.to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let version = version_of(request.version);
        let explicit = version.is_some();
        let described = self
            .state
            .service
            .describe(&request.name, version.as_deref())
            .await
            .map_err(refused)?;
        Ok(Response::new(metadata_message(documents::model_metadata(
            described, explicit,
        ))))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let deadline = grpc_timeout(request.metadata());
        // The gate admitted the call on its headers (key, quota) before its message was read.
        let call_of = request.extensions().get::<gate::CallOf>().cloned();
        let request = request.into_inner();
        let raw = &request.raw_input_contents;
        if !raw.is_empty() && raw.len() != request.inputs.len() {
            return Err(invalid(format!(
                "raw_input_contents has {} entries for {} inputs (one each, or none)",
                raw.len(),
                request.inputs.len()
            )));
        }
        let wires = request
            .inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| wire_input(input, raw.get(i).map(|b| &b[..])))
            .collect::<Result<Vec<_>, _>>()
            .map_err(refused)?;
        let input = request::decode_all(wires.into_iter()).map_err(refused)?;
        let outputs = requested_outputs(request.outputs);
        request::check_outputs(&outputs).map_err(refused)?;
        // The shorter of the client's gRPC deadline and `parameters.timeout`; the model's own
        // bound still applies.
        let timeout = match (
            deadline,
            timeout_parameter(&request.parameters).map_err(refused)?,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let call = Call {
            model: request.model_name,
            version: version_of(request.model_version),
            input,
            outputs,
            timeout,
        };
        let (mut infer, outputs) = call.into_request();
        if let Some(call) = call_of {
            infer.tenant = call.tenant.to_string();
            infer.received_at = Some(call.arrived);
        }
        let mut response = self.state.service.infer(infer).await.map_err(refused)?;
        let tensors = std::mem::take(&mut response.output.outputs);
        let answers =
            response::select(tensors, &outputs, (true, false), &response.spec).map_err(refused)?;
        let mut raw_output_contents = Vec::with_capacity(answers.len());
        let outputs = answers
            .into_iter()
            .map(|answer| {
                let tensor = answer.tensor;
                raw_output_contents.push(burnserve_models::tensor::encode_le(&tensor.data));
                model_infer_response::InferOutputTensor {
                    datatype: tensor.datatype().as_str().into(),
                    shape: tensor.shape.iter().map(|&d| d as i64).collect(),
                    name: tensor.name,
                    parameters: Default::default(),
                    contents: None,
                }
            })
            .collect();
        Ok(Response::new(ModelInferResponse {
            model_name: response.key.model.clone(),
            model_version: response.key.version.clone(),
            id: request.id,
            parameters: Default::default(),
            outputs,
            raw_output_contents,
        }))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let described = self
            .state
            .service
            .describe(&request.name, version_of(request.version).as_deref())
            .await
            .map_err(refused)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(config_message(&documents::model_config(&described))),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let request = request.into_inner();
        let model = version_of(request.name);
        let version = version_of(request.version);
        let all = self
            .state
            .service
            .stats(model.as_deref(), version.as_deref())
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(ModelStatisticsResponse {
            model_stats: all
                .iter()
                .map(|(key, s)| statistics_message(stats::model_stats(key, s)))
                .collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        // The gate checked the admin token on the headers.
        let ready_only = request.into_inner().ready;
        let index = self
            .state
            .control
            .repository_index()
            .await
            .map_err(|e| status(e.into()))?;
        let models = index
            .into_iter()
            .map(|(key, state)| {
                let (state, reason) = crate::http::admin::index_state(state);
                repository_index_response::ModelIndex {
                    name: key.model,
                    version: key.version,
                    state: state.into(),
                    reason,
                }
            })
            .filter(|m| !ready_only || m.state == "READY")
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        // The gate checked the admin token on the headers.
        let model = request.into_inner().model_name;
        self.state
            .control
            .load_model(&model)
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        // The gate checked the admin token on the headers.
        let model = request.into_inner().model_name;
        self.state
            .control
            .unload_model(&model)
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }
}
