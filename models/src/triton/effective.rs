//! The effective configuration of a served version in Triton's `ModelConfig`: what burnserve
//! honours, written as Triton writes it, for `GET /v2/models/{m}/config` and gRPC
//! `ModelConfig`. A version mapped from `config.pbtxt` keeps that file's own fields (version
//! policy, warm-up, parameters, label files); every value burnserve runs by (batching, queue
//! policy, instances, device, signature) is the one in force, whatever the file said.

use super::config::{ONNX_BACKEND, ONNX_PLATFORM};
use super::mapping::type_number;
use super::pb;
use crate::device::Device;
use crate::spec::{ModelSpec, TensorSpec};

/// The platform name of an architecture: Triton's for ONNX graphs, `burn_<architecture>` for
/// the others.
pub fn platform(architecture: &str) -> String {
    if architecture == "onnx" {
        ONNX_PLATFORM.into()
    } else {
        format!("burn_{architecture}")
    }
}

/// The configuration of `name` as served from `spec` on `device`; `threads` is each
/// instance's forward-pass threads as reported (a number, or `shared`).
pub fn effective_config(
    name: &str,
    spec: &ModelSpec,
    device: Device,
    threads: &str,
) -> pb::ModelConfig {
    let source = spec.triton.as_deref();
    let mut c = source.cloned().unwrap_or_default();
    if source.is_some() && c.version_policy.is_none() {
        // Triton's default policy, which the repository applied.
        c.version_policy = Some(pb::ModelVersionPolicy {
            policy_choice: Some(pb::model_version_policy::PolicyChoice::Latest(
                pb::model_version_policy::Latest { num_versions: 1 },
            )),
        });
    }
    c.name = name.to_string();
    c.platform = platform(&spec.architecture);
    if spec.architecture == "onnx" {
        c.backend = ONNX_BACKEND.into();
        c.default_model_filename = spec.weights.clone().unwrap_or_default();
    } else {
        c.backend = "burn".into();
    }
    c.max_batch_size = i32::try_from(spec.batching.max_batch_size).unwrap_or(i32::MAX);
    let reshape = |t: &TensorSpec| {
        t.reshape
            .clone()
            .map(|shape| pb::ModelTensorReshape { shape })
    };
    c.input = spec
        .inputs
        .iter()
        .map(|t| {
            let declared = source.and_then(|s| s.input.iter().find(|i| i.name == t.name));
            pb::ModelInput {
                name: t.name.clone(),
                data_type: type_number(t.datatype),
                dims: t.shape.clone(),
                reshape: reshape(t),
                optional: t.optional,
                format: declared.map_or(0, |d| d.format),
                ..Default::default()
            }
        })
        .collect();
    c.output = spec
        .outputs
        .iter()
        .map(|t| {
            let declared = source.and_then(|s| s.output.iter().find(|o| o.name == t.name));
            pb::ModelOutput {
                name: t.name.clone(),
                data_type: type_number(t.datatype),
                dims: t.shape.clone(),
                reshape: reshape(t),
                label_filename: declared
                    .map(|d| d.label_filename.clone())
                    .unwrap_or_default(),
                ..Default::default()
            }
        })
        .collect();
    let batching = &spec.batching;
    let pb::model_config::SchedulingChoice::DynamicBatching(mut dynamic) = c
        .scheduling_choice
        .take()
        .unwrap_or(pb::model_config::SchedulingChoice::DynamicBatching(
            Default::default(),
        ));
    dynamic.max_queue_delay_microseconds = (batching.max_batch_delay_ms * 1000.0).round() as u64;
    dynamic.preferred_batch_size = batching
        .preferred_batch_sizes
        .iter()
        .map(|&n| i32::try_from(n).unwrap_or(i32::MAX))
        .collect();
    let mut queue = dynamic.default_queue_policy.take().unwrap_or_default();
    queue.max_queue_size = u32::try_from(batching.queue_capacity).unwrap_or(u32::MAX);
    queue.default_timeout_microseconds = spec.default_timeout().as_micros() as u64;
    queue.allow_timeout_override = spec.allow_timeout_override;
    queue.timeout_action = pb::model_queue_policy::TimeoutAction::Reject as i32;
    dynamic.default_queue_policy = Some(queue);
    c.scheduling_choice = Some(pb::model_config::SchedulingChoice::DynamicBatching(dynamic));
    let (kind, gpus) = match device {
        Device::Cpu => (pb::model_instance_group::Kind::Cpu, vec![]),
        Device::Cuda(n) => (
            pb::model_instance_group::Kind::Gpu,
            vec![i32::try_from(n).unwrap_or(i32::MAX)],
        ),
    };
    c.instance_group = vec![pb::ModelInstanceGroup {
        name: name.to_string(),
        kind: kind as i32,
        count: i32::try_from(batching.instances.resolve()).unwrap_or(i32::MAX),
        gpus,
        ..Default::default()
    }];
    let mut parameter = |key: &str, value: String| {
        c.parameters.insert(
            key.to_string(),
            pb::ModelParameter {
                string_value: value,
            },
        );
    };
    parameter("device", device.to_string());
    parameter("threads_per_instance", threads.to_string());
    parameter("timeout_ms", spec.default_timeout().as_millis().to_string());
    parameter("adaptive_delay", batching.adaptive_delay.to_string());
    c
}
