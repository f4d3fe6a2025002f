//! How far apart two tensors are, the way the golden tests measure it
//! against PyTorch: the largest absolute difference, and that difference
//! relative to the reference tensor's largest magnitude.

use candle_core::{DType, Tensor};

use crate::ModelError;

/// The largest `|a - b|` over all elements, computed in f32 on the host
/// (0 for empty tensors). The shapes must be equal. NaN when a NaN (or the
/// same infinity on both sides) makes some difference undefined, so that no
/// tolerance accepts it.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32, ModelError> {
    if a.dims() != b.dims() {
        return Err(ModelError::BadInput(format!(
            "cannot compare tensors of shapes {:?} and {:?}",
            a.dims(),
            b.dims()
        )));
    }
    let (a, b) = (host_f32(a)?, host_f32(b)?);
    Ok(a.iter().zip(&b).fold(0f32, |m, (x, y)| {
        let d = (x - y).abs();
        // f32::max would drop a NaN.
        if m.is_nan() || d.is_nan() {
            f32::NAN
        } else {
            m.max(d)
        }
    }))
}

/// [`max_abs_diff`]`(got, want)` divided by the largest `|want|`: the error
/// relative to the reference's scale (the plain difference when `want` is all
/// zeros). A tolerance of 1e-4 on this is "the same up to f32 rounding" for
/// the sums of a forward or backward pass.
pub fn relative_diff(got: &Tensor, want: &Tensor) -> Result<f32, ModelError> {
    let diff = max_abs_diff(got, want)?;
    let scale = host_f32(want)?.iter().fold(0f32, |m, v| m.max(v.abs()));
    Ok(if scale == 0.0 { diff } else { diff / scale })
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn differences_are_absolute_and_relative_to_the_reference() -> Result<(), ModelError> {
        let want = Tensor::new(&[2.0f32, -4.0, 1.0], &Device::Cpu)?;
        let got = Tensor::new(&[2.5f32, -4.0, 0.0], &Device::Cpu)?;
        assert_eq!(max_abs_diff(&got, &want)?, 1.0);
        assert_eq!(relative_diff(&got, &want)?, 0.25);
        let zeros = want.zeros_like()?;
        assert_eq!(relative_diff(&got, &zeros)?, 4.0);
        let other = Tensor::new(&[1.0f32], &Device::Cpu)?;
        assert!(max_abs_diff(&got, &other).is_err());
        let nan = Tensor::new(&[2.0f32, f32::NAN, 1.0], &Device::Cpu)?;
        assert!(relative_diff(&nan, &want)?.is_nan());
        assert!(max_abs_diff(&nan, &nan)?.is_nan());
        Ok(())
    }
}
