//! `cnn`: a small convolutional classifier for single-channel square images,
//! `[N, side*side] -> [N, classes]` probabilities:
//! conv3x3(1→c1) → ReLU → maxpool2 → conv3x3(c1→c2) → ReLU → maxpool2 → dense(hidden) → ReLU → dense(classes) → softmax.
//!
//! Activations stay channels-last (NHWC). Each 3x3 "same" convolution runs as im2col (nine
//! shifted slices of the padded input) and one matmul over burn's standard `Conv2d` parameters
//! (`[out, in, 3, 3]` weight, bias): the result equals `Conv2d::forward`, and forward and
//! backward are matmul-bound. burn-ndarray's own conv2d backward ran ~15x slower than its forward
//! (635 s per Fashion-MNIST epoch). The dense layer reads the pooled features flattened as (h, w, c).
//! Serving (`infer`) uses the backend's own NCHW `Conv2d`/`MaxPool2d` forward instead: on
//! burn-flex it is 1.1x faster at batch 1 and ~3x at batch 8-64 than the im2col path (which
//! turns memory-bound as the patch matrix outgrows the cache), with equal results; on the CPU
//! backend the convolution blocks run as host kernels instead (`arch::conv`: per image, in
//! parallel over images), 3-4x faster again.

use std::any::TypeId;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::ops::PadMode;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::bounds::{check as bounded, MAX_CHANNELS, MAX_WIDTH};
use super::conv::{conv_blocks, Conv3x3};
use super::{load_network, Network};
use crate::error::ModelError;
use crate::header::WeightsHeader;
use crate::load::LoadContext;
use crate::model::InferenceModel;
use crate::spec::ModelSpec;

#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    dense: Linear<B>,
    classifier: Linear<B>,
    activation: Relu,
    side: usize,
}

/// Sizes of a [`Cnn`], from `model.toml` params `channels = [c1, c2]` and `hidden`.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnShape {
    pub side: usize,
    pub channels: [usize; 2],
    pub hidden: usize,
    pub classes: usize,
}

impl CnnShape {
    pub fn from_spec(spec: &ModelSpec) -> Result<Self, ModelError> {
        let pixels = spec.input().item_len();
        let side = (pixels as f64).sqrt().round() as usize;
        if side * side != pixels || !side.is_multiple_of(4) {
            return Err(ModelError::Load(format!(
                "architecture 'cnn' takes square images with a side divisible by 4; input has {pixels} values"
            )));
        }
        let channels: Vec<usize> = spec.param("channels", vec![16, 32])?;
        let channels: [usize; 2] = channels
            .try_into()
            .map_err(|_| ModelError::Load("params.channels must list two sizes".into()))?;
        Ok(Self {
            side,
            channels,
            hidden: spec.param("hidden", 128)?,
            classes: spec.output().item_len(),
        })
    }
}

impl<B: Backend> Cnn<B> {
    pub fn new(device: &B::Device, shape: &CnnShape) -> Self {
        let [c1, c2] = shape.channels;
        let conv = |from, to| {
            Conv2dConfig::new([from, to], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let pooled = shape.side / 4;
        Self {
            conv1: conv(1, c1),
            conv2: conv(c1, c2),
            dense: LinearConfig::new(c2 * pooled * pooled, shape.hidden).init(device),
            classifier: LinearConfig::new(shape.hidden, shape.classes).init(device),
            activation: Relu::new(),
            side: shape.side,
        }
    }

    pub fn from_spec(spec: &ModelSpec, device: &B::Device) -> Result<Self, ModelError> {
        Ok(Self::new(device, &CnnShape::from_spec(spec)?))
    }

    /// `[N, side*side] -> [N, classes]` unnormalised scores.
    fn scores(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, _] = input.dims();
        // [N, side, side, 1]
        let x = input.reshape([n, self.side, self.side, 1]);
        // [N, side/2, side/2, c1]
        let x = max_pool2x2_nhwc(self.activation.forward(conv3x3_same_nhwc(&self.conv1, x)));
        // [N, side/4, side/4, c2]
        let x = max_pool2x2_nhwc(self.activation.forward(conv3x3_same_nhwc(&self.conv2, x)));
        let [_, h, w, c] = x.dims();
        // [N, side/4 * side/4 * c2]
        let x = x.reshape([n, h * w * c]);
        self.classifier
            .forward(self.activation.forward(self.dense.forward(x)))
    }

    /// The scores for serving: on the CPU backend the convolution blocks run as host kernels
    /// ([`conv_blocks`]), elsewhere as the backend's own NCHW convolution and pooling.
    fn scores_serving(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        if TypeId::of::<B>() != TypeId::of::<super::CpuBackend>() {
            return self.scores_nchw(input);
        }
        let device = input.device();
        let [n, _] = input.dims();
        let host = |conv: &Conv2d<B>| {
            let weight = conv.weight.val().into_data();
            let out = conv.weight.dims()[0];
            let bias = match &conv.bias {
                Some(bias) => bias.val().into_data(),
                None => TensorData::new(vec![0.0f32; out], [out]),
            };
            (weight, bias, conv.weight.dims()[1], out)
        };
        let (w1, b1, in1, out1) = host(&self.conv1);
        let (w2, b2, in2, out2) = host(&self.conv2);
        let images = input.into_data();
        let (Ok(images), Ok(w1), Ok(b1), Ok(w2), Ok(b2)) = (
            images.as_slice::<f32>(),
            w1.as_slice::<f32>(),
            b1.as_slice::<f32>(),
            w2.as_slice::<f32>(),
            b2.as_slice::<f32>(),
        ) else {
            // Not f32 (never on the CPU backend's default float): the backend's own ops.
            return self.scores_nchw(Tensor::from_data(images, &device));
        };
        let conv = |weight, bias, channels_in, channels_out| Conv3x3 {
            weight,
            bias,
            channels_in,
            channels_out,
        };
        let features = conv_blocks(
            images,
            self.side,
            conv(w1, b1, in1, out1),
            conv(w2, b2, in2, out2),
        );
        let width = (self.side / 4) * (self.side / 4) * out2;
        let x = Tensor::from_data(TensorData::new(features, [n, width]), &device);
        self.classifier
            .forward(self.activation.forward(self.dense.forward(x)))
    }

    /// The same scores with the backend's own NCHW convolution and max pooling.
    fn scores_nchw(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, _] = input.dims();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        // [N, 1, side, side]
        let x = input.reshape([n, 1, self.side, self.side]);
        let x = pool.forward(self.activation.forward(self.conv1.forward(x)));
        let x = pool.forward(self.activation.forward(self.conv2.forward(x)));
        // [N, side/4, side/4, c2]: the dense layer reads (h, w, c)
        let x = x.permute([0, 2, 3, 1]);
        let [_, h, w, c] = x.dims();
        let x = x.reshape([n, h * w * c]);
        self.classifier
            .forward(self.activation.forward(self.dense.forward(x)))
    }
}

/// A 3x3, stride 1, zero-padded ("same") convolution of channels-last `x` `[N, H, W, in]` with
/// `conv`'s parameters, as im2col + matmul. Returns `[N, H, W, out]`.
pub fn conv3x3_same_nhwc<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, h, w, cin] = x.dims();
    // [out, in, 3, 3]
    let weight = conv.weight.val();
    let cout = weight.dims()[0];
    // [N, H+2, W+2, in]
    let padded = x.pad([(1, 1), (1, 1), (0, 0)], PadMode::Constant(0.0));
    // [N, H, W, 9*in], patch values ordered (dy, dx, in)
    let shifted = (0..9)
        .map(|k| {
            let (dy, dx) = (k / 3, k % 3);
            padded.clone().slice([0..n, dy..dy + h, dx..dx + w, 0..cin])
        })
        .collect();
    let patches = Tensor::cat(shifted, 3).reshape([n * h * w, 9 * cin]);
    // [9*in, out], rows ordered (dy, dx, in) like the patches
    let kernel = weight.permute([2, 3, 1, 0]).reshape([9 * cin, cout]);
    // [N*H*W, out]
    let mut y = patches.matmul(kernel);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().unsqueeze::<2>();
    }
    y.reshape([n, h, w, cout])
}

/// 2x2, stride 2 max pooling of channels-last `x` `[N, H, W, C]` (H, W even) → `[N, H/2, W/2, C]`.
pub fn max_pool2x2_nhwc<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, h, w, c] = x.dims();
    // [N, H/2, 2, W/2, 2, C]
    let windows = x.reshape([n, h / 2, 2, w / 2, 2, c]);
    windows.max_dim(4).max_dim(2).reshape([n, h / 2, w / 2, c])
}

impl<B: Backend> Network<B> for Cnn<B> {
    fn logits(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        self.scores(input)
    }

    fn infer(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        burn::tensor::activation::softmax(self.scores_serving(input), 1)
    }
}

/// Loads a `cnn` version: the network from `spec`, its weights from the safetensors file.
pub fn load(ctx: &LoadContext) -> Result<Box<dyn InferenceModel>, ModelError> {
    load_network!(Cnn, "cnn", check_weights, ctx)
}

/// Compares `params.channels` and `params.hidden` (and the image and class sizes) with the
/// tensors the weights hold, then with the absolute bounds; answers one instance's working
/// memory for a full batch (the padded, widened input and every block's output, twice).
pub fn check_weights(spec: &ModelSpec, header: &WeightsHeader) -> Result<u64, ModelError> {
    let shape = CnnShape::from_spec(spec)?;
    let [c1, c2] = shape.channels;
    let (hidden, classes, side) = (shape.hidden, shape.classes, shape.side);
    let because = || format!("params.channels = [{c1}, {c2}], params.hidden = {hidden}");
    let flat = c2.saturating_mul((side / 4) * (side / 4));
    for (name, expected) in [
        ("conv1.weight", vec![c1, 1, 3, 3]),
        ("conv1.bias", vec![c1]),
        ("conv2.weight", vec![c2, c1, 3, 3]),
        ("conv2.bias", vec![c2]),
        ("dense.weight", vec![flat, hidden]),
        ("dense.bias", vec![hidden]),
        ("classifier.weight", vec![hidden, classes]),
        ("classifier.bias", vec![classes]),
    ] {
        header.expect_shape(name, &expected, &because)?;
    }
    bounded("params.channels[0]", c1, MAX_CHANNELS)?;
    bounded("params.channels[1]", c2, MAX_CHANNELS)?;
    bounded("params.hidden", hidden, MAX_WIDTH)?;
    let padded = ((side + 2) * (side + 2)) as u64;
    let per_image = 3 * padded * 9
        + (side * side * c1) as u64
        + (side * side / 4 * c1) as u64 * 4
        + (side * side / 4 * c2) as u64
        + (hidden + classes) as u64;
    Ok(per_image * 2 * 4 * spec.batching.max_batch_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::CpuBackend as B;
    use burn::tensor::Distribution;

    fn close(a: Tensor<B, 4>, b: Tensor<B, 4>) {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (
            a.into_data().into_vec::<f32>().unwrap(),
            b.into_data().into_vec::<f32>().unwrap(),
        );
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "max difference {worst}");
    }

    #[test]
    fn im2col_convolution_equals_burns_conv2d() {
        let device = Default::default();
        let conv = Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<B>(&device);
        // [2, 3, 6, 4] channels-first, as Conv2d takes it
        let x = Tensor::<B, 4>::random([2, 3, 6, 4], Distribution::Default, &device);
        let expected = conv.forward(x.clone()).permute([0, 2, 3, 1]);
        close(conv3x3_same_nhwc(&conv, x.permute([0, 2, 3, 1])), expected);
    }

    #[test]
    fn serving_path_equals_the_training_path() {
        let device = Default::default();
        let shape = CnnShape {
            side: 8,
            channels: [4, 6],
            hidden: 12,
            classes: 5,
        };
        let cnn = Cnn::<B>::new(&device, &shape);
        let x = Tensor::<B, 2>::random([3, 64], Distribution::Default, &device);
        let training = cnn.logits(x.clone()).reshape([3, 5, 1, 1]);
        let serving = cnn.scores_nchw(x).reshape([3, 5, 1, 1]);
        close(serving, training);
    }

    #[test]
    fn host_kernels_equal_burns_convolutions() {
        let device = Default::default();
        let shape = CnnShape {
            side: 12,
            channels: [5, 7],
            hidden: 9,
            classes: 4,
        };
        let cnn = Cnn::<B>::new(&device, &shape);
        for n in [1, 2, 5] {
            let x = Tensor::<B, 2>::random([n, 144], Distribution::Default, &device);
            let reference = cnn.scores_nchw(x.clone()).reshape([n, 4, 1, 1]);
            let host = cnn.scores_serving(x).reshape([n, 4, 1, 1]);
            close(host, reference);
        }
    }

    #[test]
    fn channels_last_pooling_equals_burns_max_pool2d() {
        let device = Default::default();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let x = Tensor::<B, 4>::random([2, 3, 6, 4], Distribution::Default, &device);
        let expected = pool.forward(x.clone()).permute([0, 2, 3, 1]);
        close(max_pool2x2_nhwc(x.permute([0, 2, 3, 1])), expected);
    }

    #[test]
    fn channels_and_hidden_must_be_what_the_weights_hold() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("repository/fashion/2");
        let mut spec = ModelSpec::from_dir(&dir).expect("bundled spec");
        let header = WeightsHeader::read(&dir.join("model.safetensors")).expect("header");
        assert!(check_weights(&spec, &header).expect("matches") > 0);
        let ints = |v: &[i64]| toml::Value::Array(v.iter().map(|&n| n.into()).collect());
        spec.params.insert("channels".into(), ints(&[16, 64]));
        let err = check_weights(&spec, &header).unwrap_err().to_string();
        assert!(
            err.contains("params.channels = [16, 64]")
                && err.contains("'conv2.weight' of shape [32, 16, 3, 3]"),
            "{err}"
        );
        spec.params.insert("channels".into(), ints(&[16, 32]));
        spec.params.insert("hidden".into(), 1_000_000_000i64.into());
        let err = check_weights(&spec, &header).unwrap_err().to_string();
        assert!(
            err.contains("params.hidden = 1000000000")
                && err.contains("'dense.weight' of shape [1568, 128]"),
            "{err}"
        );
    }
}
