//! KServe v2 gRPC (`inference.GRPCInferenceService`, `proto/inference.proto`) and the standard
//! `grpc.health.v1.Health`: tonic's generated service, served on `grpc.port` by [`serve`] from a
//! runtime of its own, through the same handles, deadlines, metrics, tenants and admin token as
//! HTTP. Infer takes typed `contents` or `raw_input_contents` and always answers
//! `raw_output_contents` (FP32, little-endian), as Triton does. Errors carry the gRPC code of
//! their `error_type` (see [`status`]) and the word itself in the `error-type` trailer.
//!
//! - [`gate`]: what is decided on a call's headers (keys, quotas, call cap) and the guard on its
//!   message (byte budgets, deadline).
//! - [`serve`]: the listener: connection cap, handshake and idle timeouts, keep-alive, accept
//!   errors, shutdown.
//! - [`ping`]: PING ACKs sent with the next write.
//! - `convert`: messages to and from the runtime's types.

use burnserve_actors::{ErrorType, InferRequest};
use burnserve_models::{RequestInput, BYTES};
use tonic::{Code, Request, Response, Status};

use crate::api::{binary, ApiError, AppState};

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
        let ready = crate::api::health::check_ready(&self.state).await.is_ok();
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
        Ok(Response::new(ServerMetadataResponse {
            name: "burnserve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: crate::api::v2::EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let version = version_of(request.version);
        let explicit = version.is_some();
        let d = self
            .state
            .service
            .describe(&request.name, version.as_deref())
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(ModelMetadataResponse {
            name: d.name.clone(),
            versions: if explicit {
                vec![d.version.clone()]
            } else {
                d.versions.clone()
            },
            platform: format!("burn_{}", d.spec.architecture),
            inputs: vec![tensor_metadata(&d.spec.input)],
            outputs: vec![tensor_metadata(&d.spec.output)],
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let deadline = grpc_timeout(request.metadata());
        // The gate admitted the call on its headers (key, quota) before its message was read.
        let call = request.extensions().get::<gate::CallOf>().cloned();
        let request = request.into_inner();
        let [input]: [_; 1] = request.inputs.try_into().map_err(|inputs: Vec<_>| {
            invalid(format!(
                "expected exactly one input tensor, got {}",
                inputs.len()
            ))
        })?;
        let raw = match request.raw_input_contents.len() {
            0 => None,
            1 => Some(&request.raw_input_contents[0][..]),
            n => {
                return Err(invalid(format!(
                    "raw_input_contents has {n} entries for 1 input"
                )))
            }
        };
        let shape = dims(&input.name, &input.shape)?;
        let data = input_data(&input, &shape, raw)?;
        let tensor = RequestInput::tensor(input.name, input.datatype, shape, data);
        let mut infer = InferRequest::new(
            request.model_name,
            version_of(request.model_version),
            tensor,
        );
        if let Some(call) = call {
            infer.tenant = call.tenant.to_string();
            infer.received_at = Some(call.arrived);
        }
        // The shorter of the client's gRPC deadline and `parameters.timeout`; the model's own
        // bound still applies.
        infer.timeout = match (deadline, timeout_parameter(&request.parameters)?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        infer.output_names = request.outputs.iter().map(|o| o.name.clone()).collect();
        let response = self
            .state
            .service
            .infer(infer)
            .await
            .map_err(|e| status(e.into()))?;
        let mut shape = vec![response.output.rows as i64];
        shape.extend(response.spec.output.shape.iter().map(|&d| d as i64));
        Ok(Response::new(ModelInferResponse {
            model_name: response.key.model.clone(),
            model_version: response.key.version.clone(),
            id: request.id,
            parameters: Default::default(),
            outputs: vec![model_infer_response::InferOutputTensor {
                name: response.spec.output.name.clone(),
                datatype: "FP32".into(),
                shape,
                parameters: Default::default(),
                contents: None,
            }],
            raw_output_contents: vec![binary::encode_f32(&response.output.output)],
        }))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let d = self
            .state
            .service
            .describe(&request.name, version_of(request.version).as_deref())
            .await
            .map_err(|e| status(e.into()))?;
        let spec = &d.spec;
        let (kind, gpus) = match d.device {
            burnserve_models::Device::Cpu => (model_instance_group::Kind::Cpu, vec![]),
            burnserve_models::Device::Cuda(n) => (model_instance_group::Kind::Gpu, vec![n as i32]),
        };
        let tensor_dims = |t: &burnserve_models::TensorSpec| -> Vec<i64> {
            if t.datatype == BYTES {
                vec![1]
            } else {
                t.shape.iter().map(|&d| d as i64).collect()
            }
        };
        let mut parameters = std::collections::HashMap::new();
        parameters.insert(
            "device".to_string(),
            ModelParameter {
                string_value: d.device.to_string(),
            },
        );
        parameters.insert(
            "threads_per_instance".to_string(),
            ModelParameter {
                string_value: crate::api::v2::threads_per_instance(spec),
            },
        );
        Ok(Response::new(ModelConfigResponse {
            config: Some(ModelConfig {
                name: d.name.clone(),
                platform: format!("burn_{}", spec.architecture),
                backend: "burn".into(),
                max_batch_size: i32::try_from(spec.batching.max_batch_size).unwrap_or(i32::MAX),
                input: vec![ModelInput {
                    name: spec.input.name.clone(),
                    data_type: data_type(&spec.input.datatype),
                    dims: tensor_dims(&spec.input),
                }],
                output: vec![ModelOutput {
                    name: spec.output.name.clone(),
                    data_type: data_type(&spec.output.datatype),
                    dims: tensor_dims(&spec.output),
                }],
                instance_group: vec![ModelInstanceGroup {
                    name: d.name.clone(),
                    count: spec.batching.instances.resolve() as i32,
                    gpus,
                    kind: kind as i32,
                }],
                dynamic_batching: Some(ModelDynamicBatching {
                    max_queue_delay_microseconds: (spec.batching.max_batch_delay_ms * 1000.0)
                        .round() as u64,
                    default_queue_policy: Some(ModelQueuePolicy {
                        timeout_action: model_queue_policy::TimeoutAction::Reject as i32,
                        default_timeout_microseconds: spec.default_timeout().as_micros() as u64,
                        max_queue_size: u32::try_from(spec.batching.queue_capacity)
                            .unwrap_or(u32::MAX),
                    }),
                }),
                parameters,
            }),
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
                .map(|(key, s)| model_statistics(key, s))
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
                let (state, reason) = crate::api::admin::index_state(state);
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
