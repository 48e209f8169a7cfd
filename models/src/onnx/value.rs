//! `Value`: one tensor of a running ONNX graph on a burn backend (a float, int or bool primitive
//! of any rank) with its logical shape, and the conversions from and to the seam's typed tensors
//! and onnx-ir's constants. A rank-0 value is held as a one-element rank-1 primitive.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{BoolTensor, FloatTensor, IntTensor};
use burn::tensor::{
    get_device_settings, DType, DeviceSettings, Float, Int, Shape, Tensor, TensorData as BurnData,
    TensorMetadata, TensorPrimitive,
};

use super::OpError;
use crate::tensor::{DataType, NamedTensor, TensorData};

/// The primitive under a value: ONNX's float types run as the backend's float, its integer
/// types as the backend's int, BOOL as its bool.
pub enum Data<B: Backend> {
    Float(FloatTensor<B>),
    Int(IntTensor<B>),
    Bool(BoolTensor<B>),
}

impl<B: Backend> Clone for Data<B> {
    fn clone(&self) -> Self {
        match self {
            Data::Float(t) => Data::Float(t.clone()),
            Data::Int(t) => Data::Int(t.clone()),
            Data::Bool(t) => Data::Bool(t.clone()),
        }
    }
}

/// Which of the three primitives a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Float,
    Int,
    Bool,
}

/// A tensor and its logical shape (`[]` for a scalar).
pub struct Value<B: Backend> {
    pub data: Data<B>,
    pub shape: Vec<usize>,
}

impl<B: Backend> Clone for Value<B> {
    fn clone(&self) -> Self {
        Self {
            data: self.data.clone(),
            shape: self.shape.clone(),
        }
    }
}

/// The device a plan runs on and its element types.
pub struct Ctx<B: Backend> {
    pub device: B::Device,
    pub settings: DeviceSettings,
}

impl<B: Backend> Clone for Ctx<B> {
    fn clone(&self) -> Self {
        Self {
            device: self.device.clone(),
            settings: self.settings,
        }
    }
}

impl<B: Backend> Ctx<B> {
    pub fn new(device: B::Device) -> Self {
        let settings = get_device_settings::<B>(&device);
        Self { device, settings }
    }
}

/// The primitive's shape for a logical one: a scalar is held as `[1]`.
pub fn physical(shape: &[usize]) -> Shape {
    if shape.is_empty() {
        Shape::new([1])
    } else {
        Shape::from(shape.to_vec())
    }
}

impl<B: Backend> Value<B> {
    pub fn new(data: Data<B>, shape: Vec<usize>) -> Self {
        Self { data, shape }
    }

    /// A value whose logical shape is the primitive's own.
    pub fn float(t: FloatTensor<B>) -> Self {
        let shape = t.shape().to_vec();
        Self::new(Data::Float(t), shape)
    }

    pub fn int(t: IntTensor<B>) -> Self {
        let shape = t.shape().to_vec();
        Self::new(Data::Int(t), shape)
    }

    pub fn bool(t: BoolTensor<B>) -> Self {
        let shape = t.shape().to_vec();
        Self::new(Data::Bool(t), shape)
    }

    pub fn kind(&self) -> Kind {
        match self.data {
            Data::Float(_) => Kind::Float,
            Data::Int(_) => Kind::Int,
            Data::Bool(_) => Kind::Bool,
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes the primitive holds on its device (its element type's size, not ONNX's).
    pub fn device_bytes(&self) -> usize {
        let (count, dtype) = match &self.data {
            Data::Float(t) => (t.shape().num_elements(), t.dtype()),
            Data::Int(t) => (t.shape().num_elements(), t.dtype()),
            Data::Bool(t) => (t.shape().num_elements(), t.dtype()),
        };
        count * dtype.size()
    }

    /// The float primitive (ints and bools converted).
    pub fn into_float(self, ctx: &Ctx<B>) -> FloatTensor<B> {
        match self.data {
            Data::Float(t) => t,
            Data::Int(t) => B::int_into_float(t, ctx.settings.float_dtype),
            Data::Bool(t) => B::bool_into_float(t, ctx.settings.float_dtype),
        }
    }

    /// The int primitive (floats truncated towards zero, bools 0/1).
    pub fn into_int(self, ctx: &Ctx<B>) -> IntTensor<B> {
        match self.data {
            Data::Float(t) => B::float_into_int(t, ctx.settings.int_dtype),
            Data::Int(t) => t,
            Data::Bool(t) => B::bool_into_int(t, ctx.settings.int_dtype),
        }
    }

    /// The bool primitive (non-zero is true).
    pub fn into_bool(self, ctx: &Ctx<B>) -> BoolTensor<B> {
        match self.data {
            Data::Float(t) => B::bool_not(B::float_equal_elem(
                t,
                0.0f64.into(),
                ctx.settings.bool_dtype,
            )),
            Data::Int(t) => B::bool_not(B::int_equal_elem(t, 0i64.into(), ctx.settings.bool_dtype)),
            Data::Bool(t) => t,
        }
    }

    /// Converted to `kind`.
    pub fn to_kind(self, kind: Kind, ctx: &Ctx<B>) -> Self {
        let shape = self.shape.clone();
        let data = match kind {
            Kind::Float => Data::Float(self.into_float(ctx)),
            Kind::Int => Data::Int(self.into_int(ctx)),
            Kind::Bool => Data::Bool(self.into_bool(ctx)),
        };
        Self::new(data, shape)
    }

    /// The values on the host, as burn data of the backend's element type (a device read).
    pub fn into_burn_data(self) -> Result<BurnData, OpError> {
        let n = self.numel();
        if n == 0 {
            // Nothing to read (and a primitive of no elements cannot be viewed as [1]).
            return Ok(match self.kind() {
                Kind::Float => BurnData::new(Vec::<f32>::new(), [0]),
                Kind::Int => BurnData::new(Vec::<i64>::new(), [0]),
                Kind::Bool => BurnData::new(Vec::<bool>::new(), [0]),
            });
        }
        let flat = Shape::new([n.max(1)]);
        let data = match self.data {
            Data::Float(t) => Tensor::<B, 1, Float>::from_primitive(TensorPrimitive::Float(
                B::float_reshape(t, flat),
            ))
            .try_into_data(),
            Data::Int(t) => {
                Tensor::<B, 1, Int>::from_primitive(B::int_reshape(t, flat)).try_into_data()
            }
            Data::Bool(t) => {
                Tensor::<B, 1, burn::tensor::Bool>::from_primitive(B::bool_reshape(t, flat))
                    .try_into_data()
            }
        };
        data.map_err(|e| OpError::new(format!("reading a tensor from the device: {e:?}")))
    }

    /// The values as i64 (shapes, axes, indices read on the host).
    pub fn to_i64s(&self) -> Result<Vec<i64>, OpError> {
        let n = self.numel();
        let data = self.clone().into_burn_data()?;
        let mut values: Vec<i64> = data
            .convert::<i64>()
            .into_vec::<i64>()
            .map_err(data_error)?;
        values.truncate(n);
        Ok(values)
    }

    /// The values as f64 (scalars read on the host).
    pub fn to_f64s(&self) -> Result<Vec<f64>, OpError> {
        let n = self.numel();
        let data = self.clone().into_burn_data()?;
        let mut values: Vec<f64> = data
            .convert::<f64>()
            .into_vec::<f64>()
            .map_err(data_error)?;
        values.truncate(n);
        Ok(values)
    }

    /// Uploads burn data (an onnx-ir constant or a host computation) of any element type.
    pub fn from_burn_data(data: BurnData, ctx: &Ctx<B>) -> Result<Self, OpError> {
        let shape = data.shape.to_vec();
        let dims = physical(&shape);
        let t = match data.dtype {
            DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::Flex32 => {
                let values = data.convert::<f32>();
                let values = BurnData::new(values.into_vec::<f32>().map_err(data_error)?, dims);
                Data::Float(B::float_from_data(values, &ctx.device))
            }
            DType::Bool(_) => {
                let values = data.into_vec::<bool>().map_err(data_error)?;
                Data::Bool(B::bool_from_data(BurnData::new(values, dims), &ctx.device))
            }
            DType::QFloat(_) => {
                return Err(OpError::new("quantized constants are not supported"));
            }
            _ => {
                let values = data
                    .convert::<i64>()
                    .into_vec::<i64>()
                    .map_err(data_error)?;
                let values =
                    BurnData::new(values, dims).convert_dtype(ctx.settings.int_dtype.into());
                Data::Int(B::int_from_data(values, &ctx.device))
            }
        };
        Ok(Self::new(t, shape))
    }

    /// Uploads an i64 host vector of `shape`.
    pub fn from_i64s(values: Vec<i64>, shape: Vec<usize>, ctx: &Ctx<B>) -> Result<Self, OpError> {
        let dims = physical(&shape);
        let data = BurnData::new(values, dims).convert_dtype(ctx.settings.int_dtype.into());
        Ok(Self::new(
            Data::Int(B::int_from_data(data, &ctx.device)),
            shape,
        ))
    }

    /// Uploads an f32 host vector of `shape`.
    pub fn from_f32s(values: Vec<f32>, shape: Vec<usize>, ctx: &Ctx<B>) -> Self {
        let data = BurnData::new(values, physical(&shape));
        Self::new(Data::Float(B::float_from_data(data, &ctx.device)), shape)
    }
}

fn data_error(e: burn::tensor::DataError) -> OpError {
    OpError::new(format!("tensor data: {e:?}"))
}

/// The kind a seam datatype runs as (`None`: BYTES, which no ONNX graph here takes).
pub fn kind_of(datatype: DataType) -> Option<Kind> {
    match datatype {
        DataType::F16 | DataType::BF16 | DataType::F32 | DataType::F64 => Some(Kind::Float),
        DataType::Bool => Some(Kind::Bool),
        DataType::Bytes => None,
        _ => Some(Kind::Int),
    }
}

/// Uploads a request tensor.
pub fn upload<B: Backend>(tensor: NamedTensor, ctx: &Ctx<B>) -> Result<Value<B>, OpError> {
    let shape = tensor.shape.clone();
    let dims = physical(&shape);
    let floats = |values: Vec<f32>| {
        Data::Float(B::float_from_data(
            BurnData::new(values, dims.clone()),
            &ctx.device,
        ))
    };
    let ints = |values: Vec<i64>| {
        let data = BurnData::new(values, dims.clone()).convert_dtype(ctx.settings.int_dtype.into());
        Data::Int(B::int_from_data(data, &ctx.device))
    };
    let data = match tensor.data {
        TensorData::F32(v) => floats(v),
        TensorData::F64(v) => floats(v.into_iter().map(|x| x as f32).collect()),
        TensorData::F16(v) => floats(v.into_iter().map(f32::from).collect()),
        TensorData::BF16(v) => floats(v.into_iter().map(f32::from).collect()),
        TensorData::Bool(v) => Data::Bool(B::bool_from_data(
            BurnData::new(v, dims.clone()),
            &ctx.device,
        )),
        TensorData::U8(v) => ints(v.into_iter().map(i64::from).collect()),
        TensorData::U16(v) => ints(v.into_iter().map(i64::from).collect()),
        TensorData::U32(v) => ints(v.into_iter().map(i64::from).collect()),
        TensorData::U64(v) => ints(v.into_iter().map(|x| x as i64).collect()),
        TensorData::I8(v) => ints(v.into_iter().map(i64::from).collect()),
        TensorData::I16(v) => ints(v.into_iter().map(i64::from).collect()),
        TensorData::I32(v) => ints(v.into_iter().map(i64::from).collect()),
        TensorData::I64(v) => ints(v),
        TensorData::Bytes(_) => {
            return Err(OpError::new(format!(
                "input '{}' is BYTES: ONNX graphs here take numeric and BOOL tensors",
                tensor.name
            )))
        }
    };
    Ok(Value::new(data, shape))
}

/// Reads a value back as a seam tensor of `datatype`.
pub fn download<B: Backend>(
    value: Value<B>,
    name: &str,
    datatype: DataType,
) -> Result<NamedTensor, OpError> {
    let shape = value.shape.clone();
    let n = value.numel();
    let data = value.into_burn_data()?;
    let f64s = || -> Result<Vec<f64>, OpError> {
        let mut v: Vec<f64> = data
            .clone()
            .convert::<f64>()
            .into_vec::<f64>()
            .map_err(data_error)?;
        v.truncate(n);
        Ok(v)
    };
    let i64s = || -> Result<Vec<i64>, OpError> {
        let mut v: Vec<i64> = data
            .clone()
            .convert::<i64>()
            .into_vec::<i64>()
            .map_err(data_error)?;
        v.truncate(n);
        Ok(v)
    };
    let out = match datatype {
        DataType::F32 => {
            let mut v: Vec<f32> = data
                .clone()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(data_error)?;
            v.truncate(n);
            TensorData::F32(v)
        }
        DataType::F64 => TensorData::F64(f64s()?),
        DataType::F16 => TensorData::F16(f64s()?.into_iter().map(half::f16::from_f64).collect()),
        DataType::BF16 => TensorData::BF16(f64s()?.into_iter().map(half::bf16::from_f64).collect()),
        DataType::Bool => TensorData::Bool(f64s()?.into_iter().map(|x| x != 0.0).collect()),
        DataType::U8 => TensorData::U8(i64s()?.into_iter().map(|x| x as u8).collect()),
        DataType::U16 => TensorData::U16(i64s()?.into_iter().map(|x| x as u16).collect()),
        DataType::U32 => TensorData::U32(i64s()?.into_iter().map(|x| x as u32).collect()),
        DataType::U64 => TensorData::U64(i64s()?.into_iter().map(|x| x as u64).collect()),
        DataType::I8 => TensorData::I8(i64s()?.into_iter().map(|x| x as i8).collect()),
        DataType::I16 => TensorData::I16(i64s()?.into_iter().map(|x| x as i16).collect()),
        DataType::I32 => TensorData::I32(i64s()?.into_iter().map(|x| x as i32).collect()),
        DataType::I64 => TensorData::I64(i64s()?),
        DataType::Bytes => {
            return Err(OpError::new(format!(
                "output '{name}' is BYTES: not produced by ONNX graphs here"
            )))
        }
    };
    Ok(NamedTensor::new(name, shape, out))
}
