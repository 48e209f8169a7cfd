//! A Triton model directory's `config.pbtxt`, read through the repository jail and checked for
//! what does not depend on a version's graph: the name, the platform or backend (ONNX runs,
//! anything else is refused naming it), value ranges, the device its instance groups ask for,
//! the version policy, file names that must stay inside the model directory. Every refusal
//! names the file, the line and the field.

use std::path::{Component, Path};

use super::schema::{self, pb, Located, Parsed};
use crate::device::Device;
use crate::error::ModelError;
use crate::jail::Jail;
use crate::spec::{MAX_BATCH_SIZE, MAX_INSTANCES, MAX_RANK};

/// The configuration file of a Triton model directory.
pub const CONFIG_FILE: &str = "config.pbtxt";
/// The longest `config.pbtxt` read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The platform name of the models burnserve runs from a Triton repository.
pub const ONNX_PLATFORM: &str = "onnxruntime_onnx";
/// Triton's backend name for the same.
pub const ONNX_BACKEND: &str = "onnxruntime";
/// Most warm-up samples, and runs of one.
pub const MAX_WARMUP: usize = 64;

/// A Triton model's configuration as read, with the device its instances run on.
#[derive(Debug, Clone)]
pub struct TritonConfig {
    pub parsed: Parsed,
    pub device: Device,
    /// Executor instances on that device (the instance groups' counts together).
    pub instances: usize,
    /// The file's own text had no `max_batch_size` (auto-complete decides from the graph).
    pub max_batch_size_given: bool,
}

impl TritonConfig {
    pub fn config(&self) -> &pb::ModelConfig {
        &self.parsed.config
    }
}

fn located(e: Located) -> ModelError {
    ModelError::Load(e.describe(CONFIG_FILE))
}

/// Reads and checks `<model_dir>/config.pbtxt` of model `model`; `Ok(None)` when there is none.
pub fn read(
    jail: &Jail,
    model_dir: &Path,
    model: &str,
) -> Result<Option<TritonConfig>, ModelError> {
    let path = match jail.file(model_dir, "config", CONFIG_FILE) {
        Ok(path) => path,
        // Absent (not even a dangling link): not a Triton model. A link leading out of the
        // repository is refused, never taken for an absent file.
        Err(_) if std::fs::symlink_metadata(model_dir.join(CONFIG_FILE)).is_err() => {
            return Ok(None)
        }
        Err(e) => return Err(ModelError::Load(format!("{CONFIG_FILE}: {e}"))),
    };
    let text = read_text(&path, MAX_CONFIG_BYTES, CONFIG_FILE)?;
    from_text(&text, model).map(Some)
}

/// Reads a small text file of at most `max` bytes.
pub(super) fn read_text(path: &Path, max: u64, name: &str) -> Result<String, ModelError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| ModelError::Load(format!("{name} cannot be read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(ModelError::Load(format!(
            "{name} is larger than {max} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| ModelError::Load(format!("{name} is not UTF-8 text")))
}

/// Parses and checks a configuration's text for model `model`.
pub fn from_text(text: &str, model: &str) -> Result<TritonConfig, ModelError> {
    let parsed = schema::parse(text).map_err(located)?;
    if !parsed.ignored.is_empty() && first_time(model, &parsed.ignored) {
        tracing::warn!(
            model,
            fields = %parsed.ignored.join(", "),
            "{CONFIG_FILE}: fields burnserve does not honour were ignored"
        );
    }
    check(&parsed, model).map_err(located)?;
    let (device, instances) = device_of(&parsed).map_err(located)?;
    let max_batch_size_given = parsed.fields.iter().any(|f| f.path == "max_batch_size");
    Ok(TritonConfig {
        parsed,
        device,
        instances,
        max_batch_size_given,
    })
}

/// Whether the ignored fields of `model` are new since they were last logged (a configuration
/// is read at every index, load and poll; its warning is written once per content).
fn first_time(model: &str, ignored: &[String]) -> bool {
    use std::collections::HashSet;
    use std::hash::{Hash, Hasher};
    use std::sync::Mutex;
    static LOGGED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (model, ignored).hash(&mut hasher);
    // A set of hashes only: a poisoned lock still holds a valid one.
    let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    let logged = logged.get_or_insert_with(HashSet::new);
    if logged.len() >= 4096 {
        logged.clear();
    }
    logged.insert(hasher.finish())
}

/// Whether `platform`/`backend` name the ONNX runtime (or leave it to the model file).
fn runs_onnx(c: &pb::ModelConfig) -> bool {
    matches!(c.platform.as_str(), "" | ONNX_PLATFORM)
        && matches!(c.backend.as_str(), "" | ONNX_BACKEND)
}

/// A file name a configuration gives: one relative path inside the model directory.
pub(super) fn plain_relative(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn check(p: &Parsed, model: &str) -> Result<(), Located> {
    let c = &p.config;
    if !c.name.is_empty() && c.name != model {
        return Err(p.at(
            "name",
            format!("'{}' is not the model directory's name '{model}'", c.name),
        ));
    }
    if !runs_onnx(c) {
        let (field, value) = if c.platform.is_empty() {
            ("backend", &c.backend)
        } else {
            ("platform", &c.platform)
        };
        return Err(p.at(
            field,
            format!(
                "'{value}' is not run by burnserve, which runs ONNX models \
                 (platform \"{ONNX_PLATFORM}\" or backend \"{ONNX_BACKEND}\")"
            ),
        ));
    }
    if !(0..=MAX_BATCH_SIZE as i32).contains(&c.max_batch_size) {
        return Err(p.at(
            "max_batch_size",
            format!("{} is not within 0..={MAX_BATCH_SIZE}", c.max_batch_size),
        ));
    }
    for (role, tensors) in [
        (
            "input",
            c.input
                .iter()
                .map(|t| (&t.name, t.data_type, &t.dims, &t.reshape))
                .collect::<Vec<_>>(),
        ),
        (
            "output",
            c.output
                .iter()
                .map(|t| (&t.name, t.data_type, &t.dims, &t.reshape))
                .collect(),
        ),
    ] {
        for (i, (name, data_type, dims, reshape)) in tensors.into_iter().enumerate() {
            let at = |field: &str| format!("{role}[{i}].{field}");
            if name.is_empty() {
                return Err(p.at(&format!("{role}[{i}]"), "a tensor needs a name"));
            }
            if super::mapping::datatype(data_type).is_none() {
                return Err(p.at(&at("data_type"), "a datatype is needed (TYPE_FP32, …)"));
            }
            let shapes = std::iter::once(("dims", dims))
                .chain(reshape.as_ref().map(|r| ("reshape", &r.shape)));
            for (field, shape) in shapes {
                if shape.len() > MAX_RANK || shape.iter().any(|&d| d < 1 && d != -1) {
                    return Err(p.at(
                        &at(field),
                        format!("{shape:?}: at most {MAX_RANK} dimensions, each at least 1 or -1"),
                    ));
                }
            }
        }
    }
    for (i, input) in c.input.iter().enumerate() {
        if input.is_shape_tensor || input.allow_ragged_batch {
            return Err(p.at(
                &format!("input[{i}]"),
                "shape tensors and ragged batches are not run by burnserve",
            ));
        }
    }
    for (i, output) in c.output.iter().enumerate() {
        if !output.label_filename.is_empty() && !plain_relative(&output.label_filename) {
            return Err(p.at(
                &format!("output[{i}].label_filename"),
                "must name a file inside the model directory",
            ));
        }
    }
    if !c.default_model_filename.is_empty() && !plain_relative(&c.default_model_filename) {
        return Err(p.at(
            "default_model_filename",
            "must name a file inside the version directory",
        ));
    }
    if let Some(pb::model_config::SchedulingChoice::DynamicBatching(d)) = &c.scheduling_choice {
        let most = c.max_batch_size.max(1);
        if let Some(bad) = d.preferred_batch_size.iter().find(|&&n| n < 1 || n > most) {
            return Err(p.at(
                "dynamic_batching.preferred_batch_size",
                format!("{bad} is not within 1..={most} (max_batch_size)"),
            ));
        }
    }
    use pb::model_version_policy::PolicyChoice;
    match c
        .version_policy
        .as_ref()
        .and_then(|v| v.policy_choice.as_ref())
    {
        Some(PolicyChoice::Latest(latest)) if latest.num_versions == 0 => {
            return Err(p.at("version_policy.latest.num_versions", "must be at least 1"))
        }
        Some(PolicyChoice::Specific(specific)) if specific.versions.iter().any(|&v| v < 0) => {
            return Err(p.at(
                "version_policy.specific.versions",
                "versions are numbers from 0",
            ))
        }
        _ => {}
    }
    if c.model_warmup.len() > MAX_WARMUP {
        return Err(p.at("model_warmup", format!("at most {MAX_WARMUP} samples")));
    }
    Ok(())
}

/// The one device the instance groups ask for, and how many instances they want on it.
fn device_of(p: &Parsed) -> Result<(Device, usize), Located> {
    use pb::model_instance_group::Kind;
    let mut chosen: Option<Device> = None;
    let mut instances = 0usize;
    for (i, group) in p.config.instance_group.iter().enumerate() {
        let at = |field: &str| format!("instance_group[{i}].{field}");
        let kind = Kind::try_from(group.kind).unwrap_or(Kind::Auto);
        let device = match kind {
            Kind::Cpu => Device::Cpu,
            Kind::Auto if group.gpus.is_empty() => Device::Cpu,
            Kind::Gpu | Kind::Auto => {
                if group.gpus.len() > 1 {
                    return Err(p.at(
                        &at("gpus"),
                        "burnserve binds a version to one device: list one GPU (or serve one \
                         model per GPU)",
                    ));
                }
                let gpu = group.gpus.first().copied().unwrap_or(0);
                let device = Device::Cuda(
                    usize::try_from(gpu)
                        .map_err(|_| p.at(&at("gpus"), format!("{gpu} is not a GPU index")))?,
                );
                if !device.is_supported() {
                    return Err(p.at(
                        &at("kind"),
                        format!("{device} is asked for; this burnserve was built without --features cuda"),
                    ));
                }
                if let Some(count) = crate::gpu::device_count() {
                    if gpu as usize >= count {
                        return Err(p.at(
                            &at("gpus"),
                            format!("GPU {gpu} is asked for; this machine has {count}"),
                        ));
                    }
                }
                device
            }
            Kind::Model => {
                return Err(p.at(&at("kind"), "KIND_MODEL is not run by burnserve"));
            }
        };
        if chosen.is_some_and(|d| d != device) {
            return Err(p.at(
                &format!("instance_group[{i}]"),
                format!(
                    "asks for {device} beside {}: burnserve binds a version to one device",
                    chosen.unwrap_or_default()
                ),
            ));
        }
        chosen = Some(device);
        let count = if group.count == 0 { 1 } else { group.count };
        if !(1..=MAX_INSTANCES as i32).contains(&count) {
            return Err(p.at(
                &at("count"),
                format!("{count} is not within 1..={MAX_INSTANCES}"),
            ));
        }
        instances += count as usize;
    }
    if instances > MAX_INSTANCES {
        return Err(p.at(
            "instance_group",
            format!("{instances} instances together; at most {MAX_INSTANCES}"),
        ));
    }
    Ok((chosen.unwrap_or(Device::Cpu), instances.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match from_text(text, "m").unwrap_err() {
            ModelError::Load(message) => message,
            other => panic!("not a load error: {other}"),
        }
    }

    #[test]
    fn refusals_name_line_and_field() {
        for (text, needles) in [
            ("name: \"other\"", vec!["line 1, name", "'other'"]),
            (
                "\nplatform: \"tensorrt_plan\"",
                vec!["line 2, platform", "tensorrt_plan"],
            ),
            ("backend: \"python\"", vec!["backend", "'python'"]),
            ("max_batch_size: 100000", vec!["max_batch_size", "0..=4096"]),
            (
                "input [{ name: \"x\" dims: [3] }]",
                vec!["input[0].data_type"],
            ),
            (
                "input [{ name: \"x\" data_type: TYPE_FP32 dims: [0] }]",
                vec!["input[0].dims"],
            ),
            (
                "output [{ name: \"y\" data_type: TYPE_FP32 dims: [1] label_filename: \"../x\" }]",
                vec!["output[0].label_filename", "inside the model directory"],
            ),
            (
                "default_model_filename: \"/etc/passwd\"",
                vec!["default_model_filename"],
            ),
            (
                "max_batch_size: 4\ndynamic_batching { preferred_batch_size: [8] }",
                vec!["line 2", "1..=4"],
            ),
            (
                "version_policy { latest { num_versions: 0 } }",
                vec!["num_versions"],
            ),
            (
                "instance_group [{ kind: KIND_CPU }, { kind: KIND_GPU gpus: [0] }]",
                vec!["instance_group[1]"],
            ),
            (
                "instance_group [{ kind: KIND_GPU gpus: [0, 1] }]",
                vec!["instance_group[0].gpus", "one device"],
            ),
            ("instance_group [{ kind: KIND_MODEL }]", vec!["KIND_MODEL"]),
            (
                "instance_group [{ count: 1000 }]",
                vec!["instance_group[0].count"],
            ),
            ("ensemble_scheduling { step [] }", vec!["ensembles"]),
        ] {
            let err = refused(text);
            for needle in needles {
                assert!(err.contains(needle), "{text}: '{needle}' not in {err}");
            }
            assert!(err.starts_with(CONFIG_FILE), "{err}");
        }
        #[cfg(not(feature = "cuda"))]
        assert!(refused("instance_group [{ kind: KIND_GPU }]").contains("--features cuda"));
    }

    #[test]
    fn device_and_instances() {
        let config = from_text(
            "platform: \"onnxruntime_onnx\"\ninstance_group [{ count: 2 kind: KIND_CPU }, { kind: KIND_CPU }]",
            "m",
        )
        .expect("valid");
        assert_eq!((config.device, config.instances), (Device::Cpu, 3));
        assert!(!config.max_batch_size_given);
        let config = from_text("max_batch_size: 0", "m").expect("valid");
        assert_eq!((config.device, config.instances), (Device::Cpu, 1));
        assert!(config.max_batch_size_given);
    }
}
