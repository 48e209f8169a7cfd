//! Resize (and the Upsample it replaced) of `[N, C, H, W]` images over burn's interpolate:
//! nearest, linear and cubic, by scales or sizes. Coordinate modes burn's kernels do not
//! compute are refused with the mode named, not approximated.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::super::value::{Ctx, Value};
use super::super::OpError;
use super::shapes::{checked_count, MAX_ELEMENTS};
use super::Inputs;

pub fn resize<B: Backend>(
    c: &onnx_ir::resize::ResizeConfig,
    inputs: &mut Inputs<B>,
    ctx: &Ctx<B>,
) -> Result<Value<B>, OpError> {
    use onnx_ir::resize::{
        CoordinateTransformMode as Coord, ResizeMode, ResizeScales, ResizeSizes,
    };
    let x = inputs.take(0)?;
    if x.rank() != 4 {
        return Err(OpError::new(format!(
            "Resize: input {:?} is not [N, C, H, W]",
            x.shape
        )));
    }
    let sizes: Option<Vec<usize>> = match &c.sizes {
        Some(ResizeSizes::Static(s)) => Some(s.clone()),
        Some(ResizeSizes::Runtime(r)) => match inputs.optional(r.input_index) {
            Some(v) if v.numel() > 0 => Some(
                v.to_i64s()?
                    .into_iter()
                    .map(|d| usize::try_from(d).map_err(|_| OpError::new("Resize: negative size")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => None,
        },
        None => None,
    };
    let scales: Option<Vec<f64>> = match &c.scales {
        Some(ResizeScales::Static(s)) => Some(s.iter().map(|&v| v as f64).collect()),
        Some(ResizeScales::Runtime(r)) => match inputs.optional(r.input_index) {
            Some(v) if v.numel() > 0 => Some(v.to_f64s()?),
            _ => None,
        },
        None => None,
    };
    let out: Vec<usize> = match (sizes, scales) {
        (Some(s), _) if s.len() == 4 => s,
        (Some(s), _) if s.len() == 2 => vec![x.shape[0], x.shape[1], s[0], s[1]],
        (_, Some(s)) if s.len() == 4 => {
            if s.iter().any(|v| !v.is_finite() || *v <= 0.0) {
                return Err(OpError::new(format!("Resize: scales {s:?}")));
            }
            x.shape
                .iter()
                .zip(&s)
                .map(|(&d, &f)| (d as f64 * f).floor() as usize)
                .collect()
        }
        _ => return Err(OpError::new("Resize: needs 4 scales or sizes")),
    };
    if out[0] != x.shape[0] || out[1] != x.shape[1] {
        return Err(OpError::new(
            "Resize: only the spatial dimensions may be resized",
        ));
    }
    checked_count(&out, MAX_ELEMENTS)?;
    if out[2] == 0 || out[3] == 0 {
        return Err(OpError::new(format!("Resize: output {out:?} is empty")));
    }
    let downsampling = out[2] < x.shape[2] || out[3] < x.shape[3];
    if downsampling && !matches!(c.mode, ResizeMode::Nearest) {
        return Err(OpError::new(format!(
            "Resize: {:?} downsampling is not supported (burn's kernels filter it differently)",
            c.mode
        )));
    }
    let floor = matches!(c.nearest_mode, onnx_ir::resize::NearestMode::Floor);
    let (mode, align_corners) = match (&c.mode, &c.coordinate_transformation_mode) {
        (ResizeMode::Nearest, Coord::Asymmetric) if floor => (InterpolateMode::Nearest, false),
        (ResizeMode::Linear, Coord::HalfPixel | Coord::PytorchHalfPixel) => {
            (InterpolateMode::Bilinear, false)
        }
        (ResizeMode::Linear, Coord::AlignCorners) => (InterpolateMode::Bilinear, true),
        (ResizeMode::Cubic, Coord::HalfPixel | Coord::PytorchHalfPixel) => {
            (InterpolateMode::Bicubic, false)
        }
        (ResizeMode::Cubic, Coord::AlignCorners) => (InterpolateMode::Bicubic, true),
        (mode, coord) => {
            return Err(OpError::new(format!(
            "Resize: mode {mode:?} with coordinate_transformation_mode {coord:?} is not supported"
        )))
        }
    };
    let options = InterpolateOptions::new(mode).with_align_corners(align_corners);
    let y = B::interpolate(x.into_float(ctx), [out[2], out[3]], options);
    Ok(Value::float(y))
}
