//! The JSON of a v2 infer request over HTTP. An input's `data` is read straight into the typed
//! buffer of its `datatype` when the datatype comes first (as tritonclient writes it);
//! otherwise (serde_json's sorted keys put `data` first) its elements are kept as JSON gave them,
//! in the same single pass, and converted once the datatype is read.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::kserve::json::{Deferred, DeferredData, JsonData, TypedData};
use crate::kserve::request::RequestedOutput;

use super::super::openapi::NestedTensorSchema;

/// An inference request: JSON, or with `Inference-Header-Content-Length` this JSON followed by
/// the inputs' raw bytes (the binary tensor data extension).
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<InferParameters>,
    /// The model's inputs, by name (optional ones may be left out).
    #[schema(min_items = 1, max_items = 64)]
    pub inputs: Vec<InputTensor>,
    /// The outputs wanted, and how (`parameters.binary_data`); absent: every output, as JSON.
    #[serde(default)]
    pub outputs: Option<Vec<OutputRequest>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InferParameters {
    /// Deadline in microseconds (Triton's `timeout`, at most an hour); shortens the model's
    /// default only.
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 3_600_000_000_u64)]
    pub timeout: Option<serde_json::Value>,
    /// Every output as binary data (the binary tensor data extension).
    #[serde(default)]
    pub binary_data_output: Option<bool>,
}

/// One input tensor.
#[derive(Debug, ToSchema)]
pub struct InputTensor {
    pub name: String,
    /// Dimensions, the batch dimension first when the model batches.
    pub shape: Vec<i64>,
    /// A KServe v2 datatype: `BOOL`, `UINT8`..`UINT64`, `INT8`..`INT64`, `FP16`, `BF16`,
    /// `FP32`, `FP64`, `BYTES`.
    pub datatype: String,
    /// JSON data, flat or nested to the shape; absent when the tensor is binary
    /// (`parameters.binary_data_size`).
    #[schema(value_type = Option<NestedTensorSchema>)]
    pub data: Option<InputData>,
    pub parameters: Option<InputParameters>,
}

/// An input's JSON data.
#[derive(Debug)]
pub enum InputData {
    /// Read as the datatype declared before it.
    Typed(JsonData),
    /// `data` came before `datatype`: converted once it is read.
    Deferred(Deferred),
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InputParameters {
    /// Bytes of this input in the binary section after the JSON header.
    #[serde(default)]
    pub binary_data_size: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OutputRequest {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<OutputParameters>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OutputParameters {
    #[serde(default)]
    pub binary_data: Option<bool>,
    /// Triton's classification extension: the top `k` classes of this output.
    #[serde(default)]
    pub classification: Option<i64>,
}

impl From<OutputRequest> for RequestedOutput {
    fn from(output: OutputRequest) -> Self {
        let parameters = output.parameters.unwrap_or_default();
        RequestedOutput {
            name: output.name,
            binary_data: parameters.binary_data,
            classification: parameters.classification,
        }
    }
}

impl<'de> Deserialize<'de> for InputTensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = InputTensor;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input tensor: {name, shape, datatype, data | parameters}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputTensor, A::Error> {
        let (mut name, mut shape, mut datatype) = (None, None, None::<String>);
        let (mut data, mut parameters) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" => name = Some(map.next_value::<String>()?),
                "shape" => shape = Some(map.next_value::<Vec<i64>>()?),
                "datatype" => datatype = Some(map.next_value::<String>()?),
                "parameters" => parameters = map.next_value::<Option<InputParameters>>()?,
                "data" => {
                    let known = datatype
                        .as_deref()
                        .and_then(burnserve_models::DataType::parse);
                    data = Some(match known {
                        Some(datatype) => {
                            InputData::Typed(map.next_value_seed(TypedData(datatype))?)
                        }
                        None => InputData::Deferred(map.next_value_seed(DeferredData)?),
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(InputTensor {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            shape: shape.ok_or_else(|| de::Error::missing_field("shape"))?,
            datatype: datatype.ok_or_else(|| de::Error::missing_field("datatype"))?,
            data,
            parameters,
        })
    }
}
