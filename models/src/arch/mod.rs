//! burn architectures, one module each; the registry that maps a `model.toml` architecture name
//! to its loader ([`ARCHITECTURES`], [`load_model`]); and the generic wrapper that turns a burn
//! network into an [`InferenceModel`](crate::InferenceModel).

pub mod attention;
pub mod bert;
pub mod bert_config;
pub mod cnn;
pub mod conv;
pub mod identity;
pub mod kernels;
pub mod mlp;

use std::path::Path;

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::device::Device;
use crate::error::ModelError;
use crate::input::{take_f32, ModelOutput};
use crate::jail::{Jail, Symlinks};
use crate::load::{LoadBudget, LoadContext, LoadLimits};
use crate::model::InferenceModel;
use crate::spec::ModelSpec;
use crate::tensor::NamedTensor;

/// Builds one architecture's model from a load's context (spec, version directory inside the
/// repository jail, device, limits, deadline). Every loader compares its parameters with the
/// tensors the weights' header holds and admits its memory estimate before building anything.
pub type Loader = fn(&LoadContext) -> Result<Box<dyn InferenceModel>, ModelError>;

/// One architecture `model.toml` may name.
pub struct Architecture {
    pub name: &'static str,
    pub load: Loader,
    /// It reads its BYTES inputs as UTF-8 text (checked before a request is queued).
    pub text: bool,
}

/// The architecture registry: the one table that names every architecture and its loader.
pub const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        name: "mlp",
        load: mlp::load,
        text: false,
    },
    Architecture {
        name: "cnn",
        load: cnn::load,
        text: false,
    },
    Architecture {
        name: "bert-embedding",
        load: bert::load,
        text: true,
    },
    Architecture {
        name: "onnx",
        load: crate::onnx::load,
        text: false,
    },
    Architecture {
        name: "identity",
        load: |ctx| identity::load(ctx.spec),
        text: false,
    },
];

/// Whether architecture `name` reads its BYTES inputs as UTF-8 text.
pub fn takes_text(name: &str) -> bool {
    ARCHITECTURES.iter().any(|a| a.name == name && a.text)
}

/// Whether the version `spec` describes reads its BYTES inputs as UTF-8 text (a text
/// architecture, or an `onnx` graph behind a tokenizer).
pub fn spec_takes_text(spec: &ModelSpec) -> bool {
    takes_text(&spec.architecture)
        || (spec.architecture == "onnx" && spec.params.contains_key("tokenizer"))
}

/// Builds the version described by `spec` (read from `dir`) on `device`, outside the runtime:
/// `dir` is its own jail, the limits are the defaults, and there is no deadline. With the
/// `test-util` feature, `fake-*` architectures build the test fakes.
pub fn load_model(
    spec: &ModelSpec,
    dir: &Path,
    device: Device,
) -> Result<Box<dyn InferenceModel>, ModelError> {
    let jail = Jail::open(dir, Symlinks::Inside)?;
    let budget = LoadBudget::unlimited();
    let limits = LoadLimits::default();
    load_version(&LoadContext::new(spec, dir, device, &jail, limits, &budget))
}

/// Builds the version `ctx` describes (the runtime's loads).
pub fn load_version(ctx: &LoadContext) -> Result<Box<dyn InferenceModel>, ModelError> {
    let spec = ctx.spec;
    if !ctx.device.is_supported() {
        return Err(ModelError::Load(format!(
            "device {} needs burnserve built with the `cuda` feature",
            ctx.device
        )));
    }
    #[cfg(feature = "test-util")]
    if spec.architecture.starts_with("fake-") {
        return crate::fakes::load(spec);
    }
    let architecture = ARCHITECTURES
        .iter()
        .find(|a| a.name == spec.architecture)
        .ok_or_else(|| {
            let known: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
            ModelError::Load(format!(
                "unknown architecture '{}' (known: {})",
                spec.architecture,
                known.join(", ")
            ))
        })?;
    (architecture.load)(ctx)
}

/// A burn classifier taking flattened items: `[rows, input len] -> [rows, classes]`.
pub trait Network<B: Backend>: Module<B> {
    /// Unnormalised scores, `[rows, classes]` (what training optimises).
    fn logits(&self, input: Tensor<B, 2>) -> Tensor<B, 2>;

    /// Probabilities, `[rows, classes]` (what serving returns).
    fn infer(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        burn::tensor::activation::softmax(self.logits(input), 1)
    }
}

/// A burn network on one device, behind the tensor seam: one FP32 input, one FP32 output.
pub struct BurnModel<B: Backend, N: Network<B>> {
    network: N,
    device: B::Device,
    input_len: usize,
    /// The output's name and item shape (the spec's).
    output: (String, Vec<usize>),
}

impl<B: Backend, N: Network<B>> BurnModel<B, N> {
    pub fn new(network: N, device: B::Device, spec: &ModelSpec) -> Self {
        let output = spec.output();
        Self {
            network,
            device,
            input_len: spec.input().item_len(),
            output: (
                output.name.clone(),
                output.fixed_shape().unwrap_or_default(),
            ),
        }
    }

    pub fn network(&self) -> &N {
        &self.network
    }
}

impl<B: Backend, N: Network<B> + Send + 'static> InferenceModel for BurnModel<B, N>
where
    B::Device: Send,
{
    fn forward(
        &mut self,
        inputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<ModelOutput, ModelError> {
        let input = take_f32(inputs)?;
        if input.len() != rows * self.input_len {
            return Err(ModelError::Inference(format!(
                "batch has {} values for {rows} rows of {}",
                input.len(),
                self.input_len
            )));
        }
        // [rows, input_len]
        let x =
            Tensor::<B, 2>::from_data(TensorData::new(input, [rows, self.input_len]), &self.device);
        // [rows, output_len]
        let y = self.network.infer(x);
        let values = y
            .into_data()
            .into_vec::<f32>()
            .map_err(|e| ModelError::Inference(format!("reading output: {e:?}")))?;
        Ok(ModelOutput::f32(
            &self.output.0,
            rows,
            &self.output.1,
            values,
        ))
    }

    fn weight_bytes(&self) -> usize {
        self.network.num_params() * std::mem::size_of::<f32>()
    }

    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        Some(Box::new(Self {
            network: self.network.clone(),
            device: self.device.clone(),
            input_len: self.input_len,
            output: self.output.clone(),
        }))
    }
}

/// The CPU backend every `cpu` version runs on, chosen at build time by measurement
/// (BENCHMARKS.md, "CPU backends"): burn-flex unless the `ndarray` feature asks for burn-ndarray.
#[cfg(all(feature = "flex", not(feature = "ndarray")))]
pub type CpuBackend = burn::backend::Flex;
/// The CPU backend every `cpu` version runs on: burn-ndarray, asked for by the `ndarray` feature.
#[cfg(feature = "ndarray")]
pub type CpuBackend = burn::backend::NdArray<f32>;
#[cfg(not(any(feature = "flex", feature = "ndarray")))]
compile_error!("burnserve-models needs a CPU backend: the `flex` (default) or `ndarray` feature");

/// The name of [`CpuBackend`] with its build options, for logs and benchmark reports.
pub const CPU_BACKEND: &str = if !cfg!(feature = "ndarray") {
    "flex"
} else if cfg!(feature = "ndarray-blas") {
    "ndarray+openblas"
} else if cfg!(feature = "ndarray-simd") {
    "ndarray+simd"
} else {
    "ndarray"
};
/// The GPU backend of `cuda:N` versions.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32, i32>;

/// Calls `$build::<Backend>(backend_device, args..)` with the backend that serves `$device`.
macro_rules! on_backend {
    ($device:expr, $build:ident $(, $arg:expr)*) => {
        match $device {
            $crate::Device::Cpu => $build::<$crate::arch::CpuBackend>(Default::default() $(, $arg)*),
            #[cfg(feature = "cuda")]
            $crate::Device::Cuda(index) => $build::<$crate::arch::CudaBackend>(
                burn::backend::cuda::CudaDevice { index } $(, $arg)*
            ),
            #[cfg(not(feature = "cuda"))]
            $crate::Device::Cuda(_) => Err($crate::ModelError::Load(
                "cuda devices need burnserve built with the `cuda` feature".into(),
            )),
        }
    };
}
pub(crate) use on_backend;

/// Builds network type `$network` (which has `from_spec(spec, device)`) on the backend serving
/// the context's device: reads the weights' header, compares the spec's parameters with it
/// (`$check(spec, header)`, which answers one instance's working memory), admits the memory
/// estimate, then builds the network, loads the weights and wraps it as an `InferenceModel`,
/// checking the load's deadline between the steps.
macro_rules! load_network {
    ($network:ident, $arch:literal, $check:path, $ctx:expr) => {{
        fn build<B: burn::tensor::backend::Backend>(
            device: B::Device,
            ctx: &$crate::LoadContext,
        ) -> Result<Box<dyn $crate::InferenceModel>, $crate::ModelError> {
            ctx.spec
                .require_single($arch, &[$crate::DataType::F32], $crate::DataType::F32)?;
            let weights = ctx.weights($arch)?;
            let working = $check(ctx.spec, &weights.header)?;
            ctx.admit(&ctx.estimate(weights.header.loaded_bytes(), working))?;
            ctx.check()?;
            let mut network = $network::<B>::from_spec(ctx.spec, &device)?;
            ctx.check()?;
            $crate::weights::load_safetensors(&mut network, &weights.path)?;
            ctx.check()?;
            Ok(Box::new($crate::arch::BurnModel::new(
                network, device, ctx.spec,
            )))
        }
        let ctx: &$crate::LoadContext = $ctx;
        $crate::arch::on_backend!(ctx.device, build, ctx)
    }};
}
pub(crate) use load_network;

/// Absolute bounds of the architecture parameters that size memory, whatever the weights hold:
/// a header cannot ask for more than these.
pub mod bounds {
    /// Layers of a network (`params.hidden`'s length, BERT's `num_hidden_layers`).
    pub const MAX_LAYERS: usize = 1024;
    /// Width of one layer (`params.hidden`'s sizes, BERT's `hidden_size`).
    pub const MAX_WIDTH: usize = 1 << 16;
    /// A feed-forward layer's width (BERT's `intermediate_size`).
    pub const MAX_INTERMEDIATE: usize = 1 << 18;
    /// Channels of a convolution (`params.channels`).
    pub const MAX_CHANNELS: usize = 1 << 12;
    /// Rows of a token table (BERT's `vocab_size`).
    pub const MAX_VOCAB: usize = 1 << 22;
    /// Rows of a position table (BERT's `max_position_embeddings`).
    pub const MAX_POSITIONS: usize = 1 << 20;
    /// Rows of a token-type table (BERT's `type_vocab_size`).
    pub const MAX_TYPE_VOCAB: usize = 1024;
    /// Attention heads (BERT's `num_attention_heads`).
    pub const MAX_HEADS: usize = 1024;

    /// `Err` naming `key` and its `value` when it is 0 or over `max`.
    pub fn check(key: &str, value: usize, max: usize) -> Result<(), crate::ModelError> {
        if (1..=max).contains(&value) {
            Ok(())
        } else {
            Err(crate::ModelError::Load(format!(
                "{key} = {value} is outside 1..={max}"
            )))
        }
    }
}
