//! The KServe v2 documents about the server and its models, built once for every protocol:
//! server metadata, model metadata (each tensor's name, datatype and shape, `-1` for the batch
//! dimension and variable ones), and Triton's model configuration. HTTP writes them as JSON;
//! gRPC copies them into its messages.

use std::collections::BTreeMap;

use burnserve_actors::ModelDescription;
use burnserve_models::{ModelSpec, TensorSpec};
use serde::Serialize;
use utoipa::ToSchema;

/// The protocol extensions burnserve implements (server metadata, HTTP and gRPC).
pub const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "model_configuration",
];

/// `GET /v2`: the server's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    /// The protocol extensions implemented.
    pub extensions: Vec<&'static str>,
}

pub fn server_metadata() -> ServerMetadata {
    ServerMetadata {
        name: "burnserve",
        version: env!("CARGO_PKG_VERSION"),
        extensions: EXTENSIONS.to_vec(),
    }
}

/// A tensor of the model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    /// The batch dimension first (`-1`) when the model batches; `-1` also marks a variable
    /// dimension.
    pub shape: Vec<i64>,
}

/// A tensor's shape as requests carry it: `[-1, ..dims]` for a batching model, `dims` for one
/// without a batch dimension.
pub fn request_shape(spec: &ModelSpec, tensor: &TensorSpec) -> Vec<i64> {
    let mut shape = Vec::with_capacity(tensor.shape.len() + 1);
    if spec.batching.is_batched() {
        shape.push(-1);
    }
    shape.extend_from_slice(&tensor.shape);
    shape
}

fn tensor_metadata(spec: &ModelSpec, tensor: &TensorSpec) -> TensorMetadata {
    TensorMetadata {
        name: tensor.name.clone(),
        datatype: tensor.datatype.as_str(),
        shape: request_shape(spec, tensor),
    }
}

/// `GET /v2/models/{m}[/versions/{v}]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// Every loaded version (the one named, when the path names one).
    pub versions: Vec<String>,
    /// `burn_<architecture>`.
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    pub parameters: ModelParameters,
}

/// burnserve's additions to the model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelParameters {
    pub default_version: Option<String>,
    /// Version → share of unpinned requests (a canary split); empty without one.
    pub weights: BTreeMap<String, u32>,
    pub device: String,
    pub max_batch_size: usize,
    /// Class names of a classifier's (first) output.
    pub labels: Vec<String>,
    /// The inputs a request may leave out.
    pub optional_inputs: Vec<String>,
}

/// The metadata of a described model: only the version asked for when `explicit`.
pub fn model_metadata(d: ModelDescription, explicit: bool) -> ModelMetadata {
    let spec = &d.spec;
    ModelMetadata {
        name: d.name,
        versions: if explicit {
            vec![d.version]
        } else {
            d.versions
        },
        platform: format!("burn_{}", spec.architecture),
        inputs: spec
            .inputs
            .iter()
            .map(|t| tensor_metadata(spec, t))
            .collect(),
        outputs: spec
            .outputs
            .iter()
            .map(|t| tensor_metadata(spec, t))
            .collect(),
        parameters: ModelParameters {
            default_version: d.routing.default_version,
            weights: d.routing.weights,
            device: d.device.to_string(),
            max_batch_size: spec.batching.max_batch_size,
            labels: spec.output().labels.clone(),
            optional_inputs: spec
                .inputs
                .iter()
                .filter(|t| t.optional)
                .map(|t| t.name.clone())
                .collect(),
        },
    }
}

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's model configuration (JSON).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfig {
    pub name: String,
    pub version: String,
    pub platform: String,
    pub backend: &'static str,
    /// 0: the model has no batch dimension.
    pub max_batch_size: usize,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
    pub dynamic_batching: DynamicBatching,
    pub instance_group: Vec<InstanceGroup>,
    /// `device`, `threads_per_instance` and `timeout_ms`.
    pub parameters: BTreeMap<String, StringValue>,
}

/// A tensor as Triton's model configuration writes it (dims without the batch dimension).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigTensor {
    pub name: String,
    /// `TYPE_FP32`, `TYPE_INT64`, `TYPE_STRING`, ...
    pub data_type: &'static str,
    pub dims: Vec<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DynamicBatching {
    pub max_queue_delay_microseconds: u64,
    pub adaptive_delay: bool,
    pub default_queue_policy: QueuePolicy,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePolicy {
    pub max_queue_size: usize,
    pub default_timeout_microseconds: u64,
    pub timeout_action: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceGroup {
    pub count: usize,
    /// `KIND_CPU` or `KIND_GPU`.
    pub kind: &'static str,
    pub gpus: Vec<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StringValue {
    pub string_value: String,
}

fn config_tensor(tensor: &TensorSpec) -> ConfigTensor {
    ConfigTensor {
        name: tensor.name.clone(),
        data_type: tensor.datatype.triton_config_name(),
        dims: tensor.shape.clone(),
        optional: tensor.optional,
        labels: tensor.labels.clone(),
    }
}

/// Each instance's forward-pass threads as the configuration reports them: its own pool's
/// size, or `shared` (one instance on the process's pool).
pub fn threads_per_instance(spec: &ModelSpec) -> String {
    spec.batching
        .instance_pool_size()
        .map_or_else(|| "shared".to_string(), |n| n.to_string())
}

/// The configuration of a described version.
pub fn model_config(d: &ModelDescription) -> ModelConfig {
    let spec = &d.spec;
    let (kind, gpus) = match d.device {
        burnserve_models::Device::Cpu => ("KIND_CPU", vec![]),
        burnserve_models::Device::Cuda(n) => ("KIND_GPU", vec![n]),
    };
    let delay_us = (spec.batching.max_batch_delay_ms * 1000.0).round() as u64;
    let parameter = |text: String| StringValue { string_value: text };
    ModelConfig {
        name: d.name.clone(),
        version: d.version.clone(),
        platform: format!("burn_{}", spec.architecture),
        backend: "burn",
        max_batch_size: spec.batching.max_batch_size,
        input: spec.inputs.iter().map(config_tensor).collect(),
        output: spec.outputs.iter().map(config_tensor).collect(),
        dynamic_batching: DynamicBatching {
            max_queue_delay_microseconds: delay_us,
            adaptive_delay: spec.batching.adaptive_delay,
            default_queue_policy: QueuePolicy {
                max_queue_size: spec.batching.queue_capacity,
                default_timeout_microseconds: spec.default_timeout().as_micros() as u64,
                timeout_action: "REJECT",
            },
        },
        instance_group: vec![InstanceGroup {
            count: spec.batching.instances.resolve(),
            kind,
            gpus,
        }],
        parameters: BTreeMap::from([
            ("device".to_string(), parameter(d.device.to_string())),
            (
                "threads_per_instance".to_string(),
                parameter(threads_per_instance(spec)),
            ),
            (
                "timeout_ms".to_string(),
                parameter(spec.default_timeout().as_millis().to_string()),
            ),
        ]),
    }
}
