//! Host kernels for the CPU backend where burn-flex 0.21 is slow: GELU there is a scalar
//! `libm::erff` loop on one thread (`burn-flex/src/ops/activation.rs`), a quarter of a MiniLM
//! forward pass. [`gelu`] computes the same function on the tensor's own buffer (handed over and
//! back without a copy on burn-flex), vectorised and on the rayon pool; other backends keep
//! burn's op.

use std::any::TypeId;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rayon::prelude::*;

/// Elements per rayon task; below two tasks' worth the work stays on the calling thread.
const CHUNK: usize = 16 * 1024;

/// erf(x) by the f32 rational approximation of Eigen and XLA
/// (`MaterializeErfApproximationF32`): absolute error about 2e-7 (the argument clamped to ±4,
/// where erf is ±1 in f32; NaN in, NaN out). Branch-free, so loops over it vectorise.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn erf_scalar(x: f32) -> f32 {
    let z = x.clamp(-4.0, 4.0);
    let z2 = z * z;
    let mut p = z2 * -2.726_142_258_013_06e-10 + 2.770_681_424_959_02e-08;
    p = z2 * p + -2.101_024_020_825_08e-06;
    p = z2 * p + -5.692_506_394_623_46e-05;
    p = z2 * p + -7.349_906_303_268_55e-04;
    p = z2 * p + -2.954_599_808_540_25e-03;
    p = z2 * p + -1.609_603_332_624_15e-02;
    let mut q = z2 * -1.456_607_184_649_96e-05 + -2.133_740_552_789_05e-04;
    q = z2 * q + -1.682_826_974_382_03e-03;
    q = z2 * q + -7.373_329_167_204_68e-03;
    q = z2 * q + -1.426_473_905_141_89e-02;
    z * p / q
}

/// GELU(x) = ½x(1 + erf(x/√2)), with [`erf_scalar`].
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_scalar(x * std::f32::consts::FRAC_1_SQRT_2))
}

fn gelu_portable(values: &mut [f32]) {
    for x in values {
        *x = gelu_scalar(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_avx2(values: &mut [f32]) {
    for x in values {
        *x = gelu_scalar(*x);
    }
}

/// GELU in place over a slice (AVX2+FMA when the CPU has them).
pub fn gelu_slice(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked above).
        unsafe { gelu_avx2(values) };
        return;
    }
    gelu_portable(values);
}

/// e^x for x ≤ 0 (softmax's shifted scores), branch-free so that loops over it vectorise:
/// Cephes' `expf` (range reduction by ln 2 in two parts, a degree-5 polynomial, the exponent
/// put in by bits), relative error about 1e-7; below -87.3 (where e^x is subnormal in f32) it
/// answers 0.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOW: f32 = -87.33;
    let clamped = x.max(LOW);
    let n = (clamped * std::f32::consts::LOG2_E).round();
    let r = clamped - n * 0.693_359_375 + n * 2.121_944_400_546_905_8e-4;
    let mut p = 1.987_569_150_0e-4_f32;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    let e = p * r * r + r + 1.0;
    // n ≥ -126 here, so 2^n is a normal float built from its exponent bits.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < LOW {
        0.0
    } else {
        e * scale
    }
}

fn exp_minus_portable(values: &mut [f32], shift: f32) {
    for x in values {
        *x = exp_nonpositive(*x - shift);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_minus_avx2(values: &mut [f32], shift: f32) {
    for x in values {
        *x = exp_nonpositive(*x - shift);
    }
}

/// `x ← e^(x - shift)` over a slice whose values are all ≤ `shift` (AVX2+FMA when the CPU has
/// them).
pub fn exp_minus_slice(values: &mut [f32], shift: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked above).
        unsafe { exp_minus_avx2(values, shift) };
        return;
    }
    exp_minus_portable(values, shift);
}

/// GELU of `x`: on the CPU backend over its buffer in place, in parallel; elsewhere burn's op.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if TypeId::of::<B>() != TypeId::of::<super::CpuBackend>() {
        return burn::tensor::activation::gelu(x);
    }
    let device = x.device();
    let mut data = x.into_data();
    let Ok(values) = data.as_mut_slice::<f32>() else {
        // Not f32 (never on the CPU backend's default float): burn's op on the same values.
        return burn::tensor::activation::gelu(Tensor::from_data(data, &device));
    };
    if values.len() >= 2 * CHUNK {
        values.par_chunks_mut(CHUNK).for_each(gelu_slice);
    } else {
        gelu_slice(values);
    }
    Tensor::from_data(data, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::CpuBackend;

    #[test]
    fn gelu_matches_burns_exact_gelu() {
        let values: Vec<f32> = (0..=40_000).map(|i| -10.0 + i as f32 * 0.0005).collect();
        let device = Default::default();
        let x = Tensor::<CpuBackend, 1>::from_floats(values.as_slice(), &device);
        let reference = burn::tensor::activation::gelu(x.clone())
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        let fast = gelu(x).into_data().into_vec::<f32>().unwrap();
        let worst = reference
            .iter()
            .zip(&fast)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // About one f32 ulp of values near 10 (erf itself is within 2e-7).
        assert!(worst < 2e-6, "largest difference {worst}");
        // Large inputs pass through, large negative ones vanish.
        assert_eq!(gelu_scalar(12.0), 12.0);
        assert_eq!(gelu_scalar(-12.0), -0.0);
    }

    #[test]
    fn exp_matches_std_exp_where_softmax_uses_it() {
        let mut values: Vec<f32> = (0..=200_000).map(|i| -100.0 + i as f32 * 0.0005).collect();
        // The kernel's own argument, x - (-1) in f32, taken exactly in f64.
        let arguments: Vec<f64> = values.iter().map(|&x| (x + 1.0) as f64).collect();
        exp_minus_slice(&mut values, -1.0);
        let mut worst = 0f64;
        for (&argument, &got) in arguments.iter().zip(&values) {
            let want = argument.exp();
            if argument < f64::from(-87.33f32) {
                assert_eq!(got, 0.0, "e^{argument} flushes to 0");
            } else {
                worst = worst.max(((got as f64) - want).abs() / want);
            }
        }
        assert!(worst < 3e-7, "largest relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1e9), 0.0);
    }
}
