//! The CNN's serving convolutions on the CPU backend's buffers: a 3x3 "same" convolution, its
//! bias, ReLU and a 2x2 max pool fused per image (channels-last, the image copied into a
//! zero-bordered buffer and convolved as three GEMMs that read it in place, with no patch
//! matrix: see [`conv_relu_pool`]), images in parallel on the rayon pool when it has more than
//! one thread, otherwise on the calling thread. burn-flex 0.21 runs each image's convolution as
//! GEMMs over 512-pixel tiles with its own copies, bias pass and nested parallelism, which made
//! a pass of 32 images barely cheaper per image than one image (137 vs 177 µs on one core) and
//! a one-image pass slower on two cores than on one. Session 12: the patch matrix (im2col) this
//! module first built cost more than the GEMM (43% of a pinned batch-32 pass against 37%);
//! without it a pass on one core went from 43.5 to 35.4 µs at batch 1 and from 28.0 to 18.7 µs
//! an image at batch 32 (`taskset -c 0 cargo bench --bench models -- v2_cnn`).

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
                    taps[(tap * cin + ci) * cout + co] = value;
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
    conv: Vec<f32>,
}

/// `max_pool2x2(relu(conv3x3_same(x) + bias))` of one channels-last image `[side, side, in]`
/// into `out` `[side/2, side/2, out]`.
///
/// No patch matrix is built. The image is copied into a zero-bordered `[side + 2, side + 2,
/// in]` buffer, and the convolution is computed on that padded width (two extra columns per
/// row, dropped by the pooling) as three GEMMs, one per kernel row `dy`: output row `r = y·(side
/// + 2) + x` reads the three neighbouring pixels `(y + dy, x ..= x + 2)` of the padded image, and
/// those `3·in` values are contiguous, so the GEMM reads its left matrix straight from the
/// padded buffer with a row stride of `in` (rows overlap).
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
    scratch.conv.clear();
    for _ in 0..rows {
        scratch.conv.extend_from_slice(kernel.bias);
    }
    let span = 3 * cin;
    for dy in 0..3 {
        // conv[r, co] += Σ_j padded[(dy·width + r)·in + j] · taps[dy·3·in + j, co]
        let lhs = &scratch.padded[dy * width * cin..];
        let rhs = &kernel.taps[dy * span * cout..(dy + 1) * span * cout];
        debug_assert!((rows - 1) * cin + span <= lhs.len());
        // SAFETY: lhs is read as `[rows, 3·in]` with row stride `in` (its last row ends within
        // the buffer: `padded` has a spare row), rhs as `[3·in, out]` with row stride `out`,
        // conv written as `[rows, out]` (row stride `out`); the buffers were sized above and
        // the kernel by `Conv3x3::check`. Only `conv` is written, and it aliases neither.
        unsafe {
            gemm::gemm(
                rows,
                cout,
                span,
                scratch.conv.as_mut_ptr(),
                1,
                cout as isize,
                true,
                lhs.as_ptr(),
                1,
                cin as isize,
                rhs.as_ptr(),
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
    }
    let half = side / 2;
    for py in 0..half {
        for px in 0..half {
            let at = |y: usize, x: usize| &scratch.conv[(y * width + x) * cout..][..cout];
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
