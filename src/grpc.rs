//! KServe v2 gRPC (`inference.GRPCInferenceService`, `proto/inference.proto`) and the standard
//! `grpc.health.v1.Health`, served by tonic on `grpc.port` from a runtime of its own, through the
//! same handles, deadlines, metrics, tenants and admin token as HTTP. Infer takes typed
//! `contents` or `raw_input_contents` and always answers `raw_output_contents` (FP32,
//! little-endian), as Triton does. Errors carry the gRPC code of their `error_type` (see
//! [`status`]) and the word itself in the `error-type` trailer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use burnserve_actors::{ErrorType, InferRequest, VersionKey};
use burnserve_models::{InputData, RequestInput, BYTES};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use crate::access::Holder;
use crate::api::{binary, ApiError, AppState};
use crate::grpc_io::{PingAckSweeper, PingCoalescingStream};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
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
        ErrorType::NotReady | ErrorType::ShuttingDown | ErrorType::StoreFull => Code::Unavailable,
        ErrorType::Conflict => Code::AlreadyExists,
        ErrorType::LoadFailed | ErrorType::Inference | ErrorType::Internal => Code::Internal,
    }
}

/// An API error as a gRPC status: its code, its message, and its `error_type` as metadata.
pub fn status(err: ApiError) -> Status {
    let error_type = err.error_type();
    let mut status = Status::new(code_of(error_type), err.to_string());
    if let Ok(value) = error_type.as_str().parse() {
        status.metadata_mut().insert("error-type", value);
    }
    status
}

fn invalid(message: impl Into<String>) -> Status {
    status(ApiError::BadRequest(message.into()))
}

/// `grpc-timeout` (`<digits><H|M|S|m|u|n>`), the client's deadline.
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn bearer(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The gRPC service: a handle on the same state as the HTTP routes.
#[derive(Clone)]
pub struct Inference {
    state: AppState,
}

/// Who an infer runs for, and the tenant's in-flight slot while it runs.
struct Admitted {
    tenant: String,
    _slot: Option<crate::access::Admission>,
}

impl Inference {
    /// With tenants configured, a tenant key whose quota admits the call (as HTTP's gate).
    fn admit(&self, metadata: &MetadataMap) -> Result<Admitted, Status> {
        let access = &self.state.access;
        if !access.tenants_enabled() {
            return Ok(Admitted {
                tenant: burnserve_actors::ANONYMOUS.to_string(),
                _slot: None,
            });
        }
        let Some(given) = bearer(metadata) else {
            return Err(status(ApiError::Unauthorized(
                "inference needs `authorization: Bearer <tenant API key>` metadata".into(),
            )));
        };
        let Holder::Tenant(index) = access.holder(given) else {
            return Err(status(ApiError::Unauthorized("unknown API key".into())));
        };
        let admission = access
            .admit(index)
            .map_err(|throttled| status(ApiError::RateLimited(throttled)))?;
        Ok(Admitted {
            tenant: admission.tenant.to_string(),
            _slot: Some(admission),
        })
    }

    /// The admin token, for the repository RPCs (as HTTP's admin gate).
    fn admin(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let access = &self.state.access;
        if !access.admin_enabled() {
            return Err(status(ApiError::Forbidden(
                "the admin API is disabled: set admin.token to enable it".into(),
            )));
        }
        match bearer(metadata).map(|given| access.holder(given)) {
            Some(Holder::Admin) => Ok(()),
            Some(Holder::Tenant(_)) => Err(status(ApiError::Forbidden(
                "a tenant API key cannot use the repository RPCs; they need admin.token".into(),
            ))),
            Some(Holder::Nobody) => Err(status(ApiError::Unauthorized("wrong admin token".into()))),
            None => Err(status(ApiError::Unauthorized(
                "repository RPCs need `authorization: Bearer <admin.token>` metadata".into(),
            ))),
        }
    }
}

fn version_of(version: String) -> Option<String> {
    (!version.is_empty()).then_some(version)
}

/// Elements a shape holds; negative or overflowing dimensions are refused.
fn dims(name: &str, shape: &[i64]) -> Result<Vec<usize>, Status> {
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| invalid(format!("input '{name}': dimension {d} in shape {shape:?}")))
        })
        .collect()
}

fn element_count(name: &str, shape: &[usize]) -> Result<usize, Status> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| invalid(format!("input '{name}': shape {shape:?} is too large")))
}

/// The one input's data: raw bytes, or typed contents of its datatype.
fn input_data(
    input: &proto::model_infer_request::InferInputTensor,
    shape: &[usize],
    raw: Option<&[u8]>,
) -> Result<InputData, Status> {
    let name = input.name.as_str();
    let contents = input.contents.as_ref();
    if let Some(bytes) = raw {
        if contents.is_some() {
            return Err(invalid(format!(
                "input '{name}' has both contents and raw_input_contents"
            )));
        }
        return match binary::decode(name, &input.datatype, shape, bytes).map_err(status)? {
            binary::Values::Numbers(values) => Ok(InputData::Fp32(values)),
            binary::Values::Strings(texts) => Ok(InputData::Bytes(texts)),
        };
    }
    let Some(contents) = contents else {
        return Err(invalid(format!(
            "input '{name}' has no contents (nor raw_input_contents)"
        )));
    };
    let count = element_count(name, shape)?;
    let check = |found: usize| {
        if found == count {
            Ok(())
        } else {
            Err(invalid(format!(
                "input '{name}': {found} {} elements do not fill shape {shape:?} ({count})",
                input.datatype
            )))
        }
    };
    match input.datatype.as_str() {
        "FP32" => {
            check(contents.fp32_contents.len())?;
            Ok(InputData::Fp32(contents.fp32_contents.clone()))
        }
        "UINT8" => {
            check(contents.uint_contents.len())?;
            if let Some(bad) = contents.uint_contents.iter().find(|&&v| v > 255) {
                return Err(invalid(format!(
                    "input '{name}': UINT8 value {bad} is above 255"
                )));
            }
            Ok(InputData::Fp32(
                contents.uint_contents.iter().map(|&v| v as f32).collect(),
            ))
        }
        BYTES => {
            check(contents.bytes_contents.len())?;
            let texts = contents
                .bytes_contents
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    String::from_utf8(bytes.clone()).map_err(|_| {
                        invalid(format!("input '{name}': element {i} is not UTF-8 text"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(InputData::Bytes(texts))
        }
        other => Err(invalid(format!(
            "input '{name}': datatype {} is not supported (FP32, UINT8, BYTES)",
            other.chars().take(16).collect::<String>()
        ))),
    }
}

/// `parameters.timeout` (microseconds, Triton's), when given as an integer.
fn timeout_parameter(
    parameters: &std::collections::HashMap<String, InferParameter>,
) -> Result<Option<Duration>, Status> {
    let Some(parameter) = parameters.get("timeout") else {
        return Ok(None);
    };
    match parameter.parameter_choice {
        Some(infer_parameter::ParameterChoice::Int64Param(us)) if us >= 0 => {
            Ok(Some(Duration::from_micros(us as u64)))
        }
        Some(infer_parameter::ParameterChoice::Uint64Param(us)) => {
            Ok(Some(Duration::from_micros(us)))
        }
        _ => Err(invalid(
            "parameter 'timeout' must be a non-negative integer (microseconds)",
        )),
    }
}

fn tensor_metadata(spec: &burnserve_models::TensorSpec) -> model_metadata_response::TensorMetadata {
    let mut shape = vec![-1];
    if spec.datatype != BYTES {
        shape.extend(spec.shape.iter().map(|&d| d as i64));
    }
    model_metadata_response::TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.datatype.clone(),
        shape,
    }
}

fn duration(totals: burnserve_actors::stats::Totals) -> Option<StatisticDuration> {
    Some(StatisticDuration {
        count: totals.count,
        ns: totals.ns,
    })
}

fn model_statistics(
    key: &VersionKey,
    s: &burnserve_actors::stats::StatsSnapshot,
) -> ModelStatistics {
    let counted = |count| burnserve_actors::stats::Totals { count, ns: 0 };
    ModelStatistics {
        name: key.model.clone(),
        version: key.version.clone(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: duration(counted(s.compute_infer.count)),
            compute_infer: duration(s.compute_infer),
            compute_output: duration(counted(s.compute_infer.count)),
            cache_hit: duration(counted(0)),
            cache_miss: duration(counted(0)),
        }),
        batch_stats: s
            .batches
            .iter()
            .map(|(size, totals)| InferBatchStatistics {
                batch_size: *size as u64,
                compute_input: duration(counted(totals.count)),
                compute_infer: duration(*totals),
                compute_output: duration(counted(totals.count)),
            })
            .collect(),
    }
}

fn data_type(datatype: &str) -> i32 {
    let value = match datatype {
        "FP32" => DataType::TypeFp32,
        "UINT8" => DataType::TypeUint8,
        BYTES => DataType::TypeString,
        _ => DataType::TypeInvalid,
    };
    value as i32
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
        let arrived = Instant::now();
        let deadline = grpc_timeout(request.metadata());
        let admitted = self.admit(request.metadata())?;
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
        infer.tenant = admitted.tenant.clone();
        infer.received_at = Some(arrived);
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
        self.admin(request.metadata())?;
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
        self.admin(request.metadata())?;
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
        self.admin(request.metadata())?;
        let model = request.into_inner().model_name;
        self.state
            .control
            .unload_model(&model)
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }
}

/// A running gRPC listener: where, and how to stop it.
pub struct GrpcServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GrpcServer {
    /// Stops taking calls and lets those in flight finish (health answers NOT_SERVING first).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until the listener has stopped.
    pub fn join(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `host:port` now (so a taken port fails start-up) and serves on a thread with its own
/// tokio runtime.
pub fn start(
    host: &str,
    port: u16,
    state: AppState,
    max_message_bytes: usize,
) -> std::io::Result<GrpcServer> {
    let listener = std::net::TcpListener::bind((host, port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("grpc")
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("grpc".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::error!(error = %err, "gRPC listener failed");
                        return;
                    }
                };
                let (reporter, health) = tonic_health::server::health_reporter();
                reporter
                    .set_serving::<GrpcInferenceServiceServer<Inference>>()
                    .await;
                let service = GrpcInferenceServiceServer::new(Inference { state })
                    .max_decoding_message_size(max_message_bytes)
                    .max_encoding_message_size(max_message_bytes);
                let sweeper = PingAckSweeper::default();
                tokio::spawn(sweeper.clone().run());
                let incoming = tokio_stream_listener(listener, sweeper);
                let shutdown = async move {
                    let _ = stopped.await;
                    reporter
                        .set_not_serving::<GrpcInferenceServiceServer<Inference>>()
                        .await;
                };
                let served = tonic::transport::Server::builder()
                    .add_service(health)
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "gRPC server ended");
                }
            });
        })?;
    tracing::info!(%addr, "serving KServe v2 gRPC");
    Ok(GrpcServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Accepted connections as the stream tonic serves.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
    sweeper: PingAckSweeper,
) -> impl futures_util::Stream<Item = std::io::Result<PingCoalescingStream>> {
    futures_util::stream::unfold((listener, sweeper), |(listener, sweeper)| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            sweeper.wrap(stream)
        });
        Some((accepted, (listener, sweeper)))
    })
}
