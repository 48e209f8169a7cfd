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
    /// `onnxruntime_onnx` for ONNX graphs (as Triton names them), else `burn_<architecture>`.
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
        platform: burnserve_models::triton::effective::platform(&spec.architecture),
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

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's model configuration as JSON (its field
/// names, every field, enums by name), with burnserve's `version` and each output's `labels`
/// beside; documented in OpenAPI by [`ModelConfigSchema`].
pub type ModelConfigJson = serde_json::Value;

/// The schema of the configuration document (Triton's `ModelConfig`).
pub struct ModelConfigSchema;

impl utoipa::PartialSchema for ModelConfigSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let schema = serde_json::json!({
            "type": "object",
            "description": "Triton's model configuration (inference.ModelConfig as JSON, proto field names): name, platform, backend, version_policy, max_batch_size, input, output, dynamic_batching, instance_group, default_model_filename, parameters, model_warmup; with burnserve's `version` and each output's `labels`.",
            "required": ["name", "platform", "max_batch_size", "input", "output"],
            "properties": {
                "name": { "type": "string" },
                "version": { "type": "string" },
                "platform": { "type": "string" },
                "backend": { "type": "string" },
                "max_batch_size": { "type": "integer" },
                "input": { "type": "array", "items": { "type": "object" } },
                "output": { "type": "array", "items": { "type": "object" } },
                "dynamic_batching": { "type": "object" },
                "instance_group": { "type": "array", "items": { "type": "object" } },
                "parameters": { "type": "object" }
            }
        });
        serde_json::from_value(schema).unwrap_or_default()
    }
}

impl ToSchema for ModelConfigSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ModelConfig")
    }
}

/// Each instance's forward-pass threads as the configuration reports them: its own pool's
/// size, or `shared` (one instance on the process's pool).
pub fn threads_per_instance(spec: &ModelSpec) -> String {
    spec.batching
        .instance_pool_size()
        .map_or_else(|| "shared".to_string(), |n| n.to_string())
}

/// The effective configuration of a described version (Triton's `ModelConfig`).
pub fn model_config(d: &ModelDescription) -> burnserve_models::triton::pb::ModelConfig {
    burnserve_models::triton::effective_config(
        &d.name,
        &d.spec,
        d.device,
        &threads_per_instance(&d.spec),
    )
}

/// [`model_config`] as the HTTP document: Triton's JSON, plus `version` and each output's
/// `labels`.
pub fn model_config_json(d: &ModelDescription) -> ModelConfigJson {
    let mut json = burnserve_models::triton::schema::to_json(&model_config(d));
    json["version"] = serde_json::Value::String(d.version.clone());
    if let Some(outputs) = json["output"].as_array_mut() {
        for (output, spec) in outputs.iter_mut().zip(&d.spec.outputs) {
            if !spec.labels.is_empty() {
                output["labels"] = serde_json::json!(spec.labels);
            }
        }
    }
    json
}
