//! The CNN's serving convolutions on the CPU backend's buffers: a 3x3 "same" convolution, its
//! bias, ReLU and a 2x2 max pool fused per image, channels-last, with no patch matrix (see
//! [`conv_relu_pool`]): images in parallel on the rayon pool when it has more than one thread,
//! otherwise on the calling thread. burn-flex 0.21 runs each image's convolution as GEMMs over
//! 512-pixel tiles with its own copies, bias pass and nested parallelism, which made a pass of
//! 32 images barely cheaper per image than one image (137 vs 177 µs on one core) and a
//! one-image pass slower on two cores than on one. Session 12: the patch matrix (im2col) this
//! module first built cost more than its GEMM (43% of a pinned batch-32 pass against 37%);
//! without it, and with the bias added after the pooling, a pass on one core went from 43.5 to
//! 32.1 µs at batch 1 and from 28.0 to 14.8 µs an image at batch 32 (`taskset -c 0 cargo bench
//! --bench models -- v2_cnn`).

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

/// A convolution's weight as its GEMM reads it, `[9·in, out]` row-major with rows ordered
/// (tap, in channel) like the patch columns, beside its bias.
struct Kernel<'a> {
    taps: Vec<f32>,
    bias: &'a [f32],
    channels_in: usize,
    channels_out: usize,
}

impl<'a> Kernel<'a> {
    /// Reorders burn's `[out, in, 3, 3]` weight (once a pass: 4.6k values for the bundled CNN's
    /// second convolution).
    fn new(conv: Conv3x3<'a>) -> Self {
        conv.check();
        let (cin, cout) = (conv.channels_in, conv.channels_out);
        let mut taps = vec![0.0f32; 9 * cin * cout];
        for (co, filters) in conv.weight.chunks_exact(cin * 9).enumerate() {
            for (ci, filter) in filters.chunks_exact(9).enumerate() {
                for (tap, &value) in filter.iter().enumerate() {
                    // Rows ordered (dx, dy, in channel), as the stacked patches read them.
                    let (dy, dx) = (tap / 3, tap % 3);
                    taps[((dx * 3 + dy) * cin + ci) * cout + co] = value;
                }
            }
        }
        Self {
            taps,
            bias: conv.bias,
            channels_in: cin,
            channels_out: cout,
        }
    }
}

/// Scratch of one thread: the zero-padded input and the convolution's output of one image.
#[derive(Default)]
struct Scratch {
    padded: Vec<f32>,
    stacked: Vec<f32>,
    conv: Vec<f32>,
}

/// `max_pool2x2(relu(conv3x3_same(x) + bias))` of one channels-last image `[side, side, in]`
/// into `out` `[side/2, side/2, out]`.
///
/// The image is copied into a zero-bordered `[side + 2, side + 2, in]` buffer and convolved on
/// that padded width (two extra columns per output row, which the pooling skips), so output row
/// `r = y·(side + 2) + x` reads padded rows `r`, `r + width` and `r + 2·width` from column
/// `x`. Those three rows are laid side by side once (`stacked[q] = padded[q], padded[q + width],
/// padded[q + 2·width]`, `3·in` values), after which output row `r`'s whole 3x3 window is the
/// `9·in` contiguous values `stacked[r ..= r + 2]`: one GEMM reads its left matrix straight from
/// `stacked` with a row stride of `3·in` (rows overlap), against the weight reordered to rows
/// (dx, dy, in channel).
fn conv_relu_pool(
    image: &[f32],
    side: usize,
    kernel: &Kernel<'_>,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let (cin, cout) = (kernel.channels_in, kernel.channels_out);
    let width = side + 2;
    // One row more than the padding: the last output rows' windows run two pixels past it.
    scratch.padded.clear();
    scratch.padded.resize((side + 3) * width * cin, 0.0);
    for (y, source) in image[..side * side * cin]
        .chunks_exact(side * cin)
        .enumerate()
    {
        let at = ((y + 1) * width + 1) * cin;
        scratch.padded[at..at + side * cin].copy_from_slice(source);
    }
    let rows = side * width;
    // Written whole by the GEMM (the bias comes after the pooling).
    scratch.conv.resize(rows * cout, 0.0);
    // stacked[q, dy, ·] = padded[q + dy·width, ·]: the three source rows of a window, side by
    // side, so that output row r's whole 3x3 window is stacked[r ..= r + 2] — 9·in contiguous
    // values, ordered (dx, dy, in channel).
    let column = 3 * cin;
    scratch.stacked.resize((rows + 2) * column, 0.0);
    if cin == 1 {
        for (q, stack) in scratch.stacked[..(rows + 2) * 3]
            .chunks_exact_mut(3)
            .enumerate()
        {
            stack[0] = scratch.padded[q];
            stack[1] = scratch.padded[q + width];
            stack[2] = scratch.padded[q + 2 * width];
        }
    } else {
        for (q, stack) in scratch.stacked[..(rows + 2) * column]
            .chunks_exact_mut(column)
            .enumerate()
        {
            for (dy, part) in stack.chunks_exact_mut(cin).enumerate() {
                let at = (q + dy * width) * cin;
                part.copy_from_slice(&scratch.padded[at..at + cin]);
            }
        }
    }
    let k = 9 * cin;
    // conv[r, co] += Σ_j stacked[r·3·in + j] · taps[j, co]
    // SAFETY: stacked is read as `[rows, 9·in]` with row stride `3·in` (rows overlap; the last
    // ends at `(rows + 2)·3·in`, its length), taps as `[9·in, out]` (row stride `out`), conv
    // written as `[rows, out]` (row stride `out`); the buffers were sized above and the kernel
    // by `Conv3x3::check`. Only `conv` is written, and it aliases neither.
    unsafe {
        gemm::gemm(
            rows,
            cout,
            k,
            scratch.conv.as_mut_ptr(),
            1,
            cout as isize,
            false,
            scratch.stacked.as_ptr(),
            1,
            column as isize,
            kernel.taps.as_ptr(),
            1,
            cout as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    pool_bias_relu(&scratch.conv, side, width, kernel.bias, out);
}

/// `out[py, px, c] = relu(bias[c] + max of conv's 2x2 block at (2py, 2px))`, from `conv`
/// `[side, width, c]` (the columns past `side` unread). The bias is added after the max: it
/// is the same for the four values of a block, and both max and ReLU are monotone.
fn pool_bias_relu(conv: &[f32], side: usize, width: usize, bias: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the feature the function is compiled for (checked above).
        unsafe { pool_bias_relu_avx2(conv, side, width, bias, out) };
        return;
    }
    pool_bias_relu_portable(conv, side, width, bias, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pool_bias_relu_avx2(conv: &[f32], side: usize, width: usize, bias: &[f32], out: &mut [f32]) {
    pool_bias_relu_portable(conv, side, width, bias, out);
}

#[inline(always)]
fn pool_bias_relu_portable(conv: &[f32], side: usize, width: usize, bias: &[f32], out: &mut [f32]) {
    let channels = bias.len();
    let half = side / 2;
    let row = width * channels;
    for (py, out_row) in out[..half * half * channels]
        .chunks_exact_mut(half * channels)
        .enumerate()
    {
        let top = &conv[2 * py * row..][..row];
        let bottom = &conv[(2 * py + 1) * row..][..row];
        for (px, pooled) in out_row.chunks_exact_mut(channels).enumerate() {
            let at = 2 * px * channels;
            let (a, b) = (
                &top[at..at + channels],
                &top[at + channels..at + 2 * channels],
            );
            let (c, d) = (
                &bottom[at..at + channels],
                &bottom[at + channels..at + 2 * channels],
            );
            for co in 0..channels {
                let high = max(max(a[co], b[co]), max(c[co], d[co]));
                pooled[co] = max(high + bias[co], 0.0);
            }
        }
    }
}

/// The larger of two floats as one `maxps` (no NaN ordering: a NaN input is caught by the
/// pipeline's input validation long before).
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
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
    let (first, second) = (Kernel::new(first), Kernel::new(second));
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
        conv_relu_pool(image, side, &first, scratch, pooled);
        conv_relu_pool(pooled, half, &second, scratch, out);
    };
    // Spread over the pool only where it has more than one thread: a pool of one (a server
    // pinned to one core) would just hand the pass to another thread on the same core.
    if n > 1 && rayon::current_num_threads() > 1 {
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
