//! The CNN's serving convolutions on the CPU backend's buffers: a 3x3 "same" convolution, its
//! bias, ReLU and a 2x2 max pool fused per image (channels-last, im2col into a per-thread
//! buffer, one GEMM that reads burn's `[out, in, 3, 3]` weight through strides), images in
//! parallel on the rayon pool and a single image on the calling thread. burn-flex 0.21 runs
//! each image's convolution as GEMMs over 512-pixel tiles with its own copies, bias pass and
//! nested parallelism, which made a pass of 32 images barely cheaper per image than one
//! image (137 vs 177 µs on one core) and a one-image pass slower on two cores than on one.

use rayon::prelude::*;

/// A 3x3 convolution's parameters as burn holds them: `weight` `[out, in, 3, 3]` row-major,
/// `bias` `[out]`.
#[derive(Debug, Clone, Copy)]
pub struct Conv3x3<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub channels_in: usize,
    pub channels_out: usize,
}

impl Conv3x3<'_> {
    fn check(&self) {
        assert_eq!(
            self.weight.len(),
            self.channels_out * self.channels_in * 9,
            "conv3x3: weight size"
        );
        assert_eq!(self.bias.len(), self.channels_out, "conv3x3: bias size");
    }
}

/// Scratch of one thread: the patch matrix and the convolution's output of one image.
#[derive(Default)]
struct Scratch {
    patches: Vec<f32>,
    conv: Vec<f32>,
}

/// `max_pool2x2(relu(conv3x3_same(x) + bias))` of one channels-last image `[side, side, in]`
/// into `out` `[side/2, side/2, out]`.
fn conv_relu_pool(
    image: &[f32],
    side: usize,
    conv: Conv3x3<'_>,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let (cin, cout) = (conv.channels_in, conv.channels_out);
    let pixels = side * side;
    let k = 9 * cin;
    // Patch columns ordered (in channel, tap): column `ci·9 + dy·3 + dx`, so that the weight
    // `[out, in, 3, 3]` is read as a `[9·in, out]` matrix with unit row stride.
    scratch.patches.clear();
    scratch.patches.resize(pixels * k, 0.0);
    for y in 0..side {
        for x in 0..side {
            let row = &mut scratch.patches[(y * side + x) * k..(y * side + x + 1) * k];
            for dy in 0..3 {
                let sy = y + dy;
                if sy < 1 || sy > side {
                    continue;
                }
                for dx in 0..3 {
                    let sx = x + dx;
                    if sx < 1 || sx > side {
                        continue;
                    }
                    let source = &image[((sy - 1) * side + sx - 1) * cin..][..cin];
                    let tap = dy * 3 + dx;
                    for (ci, &value) in source.iter().enumerate() {
                        row[ci * 9 + tap] = value;
                    }
                }
            }
        }
    }
    // conv[p, co] = bias[co] + Σ_k patches[p, k] · weight[co, k]
    scratch.conv.clear();
    for _ in 0..pixels {
        scratch.conv.extend_from_slice(conv.bias);
    }
    // SAFETY: patches is `[pixels, k]` (row stride k), the weight `[cout, k]` read as `[k,
    // cout]` (row stride 1, column stride k), conv `[pixels, cout]` (row stride cout); all
    // sizes checked by `Conv3x3::check` and built above.
    unsafe {
        gemm::gemm(
            pixels,
            cout,
            k,
            scratch.conv.as_mut_ptr(),
            1,
            cout as isize,
            true,
            scratch.patches.as_ptr(),
            1,
            k as isize,
            conv.weight.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    let half = side / 2;
    for py in 0..half {
        for px in 0..half {
            let at = |y: usize, x: usize| &scratch.conv[(y * side + x) * cout..][..cout];
            let (a, b, c, d) = (
                at(2 * py, 2 * px),
                at(2 * py, 2 * px + 1),
                at(2 * py + 1, 2 * px),
                at(2 * py + 1, 2 * px + 1),
            );
            let pooled = &mut out[(py * half + px) * cout..][..cout];
            for co in 0..cout {
                // ReLU after the max is ReLU before it (both are monotone).
                pooled[co] = a[co].max(b[co]).max(c[co]).max(d[co]).max(0.0);
            }
        }
    }
}

/// The CNN's two convolution blocks over `images` (`[n, side·side]`, one channel): answers
/// `[n, (side/4)², c2]` features, flattened (h, w, c) per image as the dense layer reads them.
pub fn conv_blocks(
    images: &[f32],
    side: usize,
    first: Conv3x3<'_>,
    second: Conv3x3<'_>,
) -> Vec<f32> {
    first.check();
    second.check();
    assert_eq!(first.channels_in, 1, "conv_blocks: single-channel images");
    assert_eq!(
        second.channels_in, first.channels_out,
        "conv_blocks: channels"
    );
    assert!(side.is_multiple_of(4), "conv_blocks: side divisible by 4");
    let pixels = side * side;
    assert!(
        images.len().is_multiple_of(pixels),
        "conv_blocks: whole images"
    );
    let n = images.len() / pixels;
    let (half, quarter) = (side / 2, side / 4);
    let features = quarter * quarter * second.channels_out;
    let mut out = vec![0.0f32; n * features];
    let one = |(scratch, pooled): &mut (Scratch, Vec<f32>), (image, out): (&[f32], &mut [f32])| {
        pooled.resize(half * half * first.channels_out, 0.0);
        conv_relu_pool(image, side, first, scratch, pooled);
        conv_relu_pool(pooled, half, second, scratch, out);
    };
    if n > 1 {
        images
            .par_chunks(pixels)
            .zip(out.par_chunks_mut(features))
            .for_each_init(|| (Scratch::default(), Vec::new()), one);
    } else {
        let mut scratch = (Scratch::default(), Vec::new());
        images
            .chunks(pixels)
            .zip(out.chunks_mut(features))
            .for_each(|pair| one(&mut scratch, pair));
    }
    out
}
