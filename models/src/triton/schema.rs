//! Triton's model configuration as text and as JSON: `config.pbtxt` parsed (protobuf text
//! format, prost-reflect) against our own schema (`proto/model_config.proto`, Triton's field
//! numbers), into prost types; a field the schema lacks either makes the model unavailable
//! (a feature we do not run) or is blanked out and named; and the JSON form Triton's HTTP API
//! answers (`GET /v2/models/{m}/config`).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

use super::pbtxt::{self, FieldAt};

/// The prost types of `proto/model_config.proto` (package `inference`, as Triton's).
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));
}

const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model_config.bin"));

/// The fields that may occur more than once (their occurrences are numbered in paths).
const REPEATED: &[&str] = &[
    "input",
    "output",
    "instance_group",
    "model_warmup",
    "parameters",
    "inputs",
];

/// Triton fields that ask for what burnserve does not run: a model using one is unavailable,
/// with the reason. Keyed by the field's own name (its last path component).
const REFUSED: &[(&str, &str)] = &[
    (
        "sequence_batching",
        "sequence batching (stateful models) is not run by burnserve",
    ),
    (
        "ensemble_scheduling",
        "ensembles are not run by burnserve (serve each step as its own model)",
    ),
    ("rate_limiter", "burnserve has no rate limiter resources"),
    (
        "batch_input",
        "ragged batching (batch_input) is not run by burnserve",
    ),
    (
        "batch_output",
        "ragged batching (batch_output) is not run by burnserve",
    ),
    (
        "secondary_devices",
        "burnserve binds each version to one device",
    ),
];

/// Most fields of one file blanked out as unknown (each pass re-parses the file).
const MAX_IGNORED: usize = 256;

fn model_config_descriptor() -> MessageDescriptor {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("the build script's descriptor set decodes")
    })
    .get_message_by_name("inference.ModelConfig")
    .expect("the schema defines inference.ModelConfig")
}

/// A mistake in a configuration, where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl Located {
    /// `config.pbtxt line 3, max_batch_size: <message>`.
    pub fn describe(&self, file: &str) -> String {
        match (&self.line, &self.field) {
            (Some(line), Some(field)) => format!("{file} line {line}, {field}: {}", self.message),
            (Some(line), None) => format!("{file} line {line}: {}", self.message),
            (None, Some(field)) => format!("{file}, {field}: {}", self.message),
            (None, None) => format!("{file}: {}", self.message),
        }
    }
}

/// A parsed `config.pbtxt`: its values, where each field is, and the fields left out.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: pb::ModelConfig,
    pub fields: Vec<FieldAt>,
    /// `line N: path` of each field the schema lacks and that was ignored.
    pub ignored: Vec<String>,
}

impl Parsed {
    /// The line of the field at `path` (`input[1].dims`), or of its nearest parent present.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(field) = self.fields.iter().find(|f| f.path == path) {
                return Some(field.line);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    /// An error at `path`, with its line.
    pub fn at(&self, path: &str, message: impl Into<String>) -> Located {
        Located {
            line: self.line(path),
            field: Some(path.to_string()),
            message: message.into(),
        }
    }
}

/// The deepest field whose span holds `offset`.
fn field_at(fields: &[FieldAt], offset: usize) -> Option<&FieldAt> {
    fields
        .iter()
        .filter(|f| f.span.0 <= offset && offset < f.span.1.max(f.span.0 + 1))
        .max_by_key(|f| f.span.0)
}

/// Parses `text` as Triton's `ModelConfig`.
pub fn parse(text: &str) -> Result<Parsed, Located> {
    let descriptor = model_config_descriptor();
    // Same lines as `text`; offsets below are this text's.
    let text = pbtxt::colon_before_lists(text).unwrap_or_else(|| text.to_string());
    let text = text.as_str();
    let mut current = text.to_string();
    let mut ignored = Vec::new();
    let fields = pbtxt::fields(text, REPEATED).unwrap_or_default();
    loop {
        let error = match DynamicMessage::parse_text_format(descriptor.clone(), &current) {
            Ok(message) => {
                let config = message
                    .transcode_to::<pb::ModelConfig>()
                    .map_err(|e| Located {
                        line: None,
                        field: None,
                        message: e.to_string(),
                    })?;
                return Ok(Parsed {
                    config,
                    fields,
                    ignored,
                });
            }
            Err(error) => error,
        };
        let offset = miette::Diagnostic::labels(&error)
            .and_then(|mut labels| labels.next())
            .map(|label| label.offset());
        let message = error.to_string();
        let field = offset.and_then(|offset| field_at(&fields, offset));
        let unknown = message.starts_with("field '") && message.contains("' not found for message");
        match (unknown, field) {
            (true, Some(field)) if field.span.0 == offset.unwrap_or(usize::MAX) => {
                let leaf = field.path.rsplit('.').next().unwrap_or(&field.path);
                let leaf = leaf.split('[').next().unwrap_or(leaf);
                if let Some((_, why)) = REFUSED.iter().find(|(name, _)| *name == leaf) {
                    return Err(Located {
                        line: Some(field.line),
                        field: Some(field.path.clone()),
                        message: (*why).to_string(),
                    });
                }
                if ignored.len() >= MAX_IGNORED {
                    return Err(Located {
                        line: Some(field.line),
                        field: Some(field.path.clone()),
                        message: format!("more than {MAX_IGNORED} fields burnserve does not know"),
                    });
                }
                ignored.push(format!("line {} {}", field.line, field.path));
                current = pbtxt::blank(&current, field.span);
            }
            _ => {
                return Err(Located {
                    line: offset.map(|o| pbtxt::line_of(text, o)),
                    field: field.map(|f| f.path.clone()),
                    message,
                })
            }
        }
    }
}

/// `config` as Triton's HTTP API writes it: proto field names, every field (defaults too),
/// 64-bit integers as numbers, enums by name.
pub fn to_json(config: &pb::ModelConfig) -> serde_json::Value {
    let message = DynamicMessage::decode(
        model_config_descriptor(),
        prost::Message::encode_to_vec(config).as_slice(),
    )
    .expect("our own encoding decodes");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_parses_into_its_values() {
        let parsed = parse(
            "name: \"m\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n\
             input [{ name: \"x\" data_type: TYPE_FP32 dims: [3, -1] }]\n\
             dynamic_batching { preferred_batch_size: [4, 8] }\n\
             instance_group [{ count: 2 kind: KIND_CPU }]\n\
             version_policy: { latest: { num_versions: 2 } }\n",
        )
        .expect("parses");
        let c = &parsed.config;
        assert_eq!((c.name.as_str(), c.max_batch_size), ("m", 8));
        assert_eq!(c.input[0].dims, vec![3, -1]);
        assert_eq!(c.input[0].data_type, pb::DataType::TypeFp32 as i32);
        assert_eq!(c.instance_group[0].count, 2);
        assert!(parsed.ignored.is_empty());
        let json = to_json(c);
        assert_eq!(json["max_batch_size"], 8);
        assert_eq!(json["input"][0]["dims"], serde_json::json!([3, -1]));
        assert_eq!(json["input"][0]["data_type"], "TYPE_FP32");
        assert_eq!(json["instance_group"][0]["kind"], "KIND_CPU");
        assert_eq!(json["version_policy"]["latest"]["num_versions"], 2);
        assert_eq!(
            json["dynamic_batching"]["preferred_batch_size"],
            serde_json::json!([4, 8])
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = parse("name: \"m\"\n\nmax_batch_size: \"eight\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err:?}");
        assert_eq!(err.field.as_deref(), Some("max_batch_size"), "{err:?}");
        let err =
            parse("name: \"m\"\ninput [{ name: \"x\" data_type: TYPE_FLOAT }]\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err:?}");
        assert!(err.message.contains("TYPE_FLOAT"), "{err:?}");
        let err = parse("input {").unwrap_err();
        assert!(
            err.describe("config.pbtxt").starts_with("config.pbtxt"),
            "{err:?}"
        );
    }

    #[test]
    fn hostile_texts_are_refused_without_harm() {
        let deep = format!("optimization {}", "{ a ".repeat(200_000));
        assert!(parse(&deep).is_err());
        let deep_known = format!(
            "{}{}",
            "dynamic_batching { ".repeat(100_000),
            "}".repeat(100_000)
        );
        assert!(parse(&deep_known).is_err());
        let many_unknown: String = (0..1000).map(|i| format!("unknown_{i}: 1\n")).collect();
        let err = parse(&many_unknown).unwrap_err();
        assert!(
            err.message.contains("fields burnserve does not know"),
            "{err:?}"
        );
        assert!(parse("\u{0}\u{ffff}💥 { ] [ } :::").is_err());
        assert!(parse(&"\"".repeat(1 << 16)).is_err());
    }

    #[test]
    fn refused_and_ignored_fields() {
        let err = parse("name: \"m\"\nsequence_batching { max_sequence_idle_microseconds: 5 }\n")
            .unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("sequence batching"), "{err:?}");
        let err = parse(
            "instance_group [{ count: 1\n rate_limiter { resources [{ name: \"r\" count: 1 }] } }]",
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("instance_group[0].rate_limiter"));
        assert_eq!(err.line, Some(2));
        let parsed = parse(
            "name: \"m\"\noptimization { execution_accelerators { cpu_execution_accelerator: [{ name: \"openvino\" }] } }\n\
             max_batch_size: 4\ninput [{ name: \"x\" is_non_linear_format_io: false dims: [1] }]\n",
        )
        .expect("unknown fields are left out");
        assert_eq!(parsed.config.max_batch_size, 4);
        assert_eq!(parsed.config.input[0].dims, vec![1]);
        assert_eq!(
            parsed.ignored,
            vec![
                "line 2 optimization",
                "line 4 input[0].is_non_linear_format_io"
            ]
        );
    }
}
