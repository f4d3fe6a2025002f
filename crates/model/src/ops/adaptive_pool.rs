//! `AdaptiveAvgPool2d`, which candle lacks, built from two matrix products so
//! that it is exact, differentiable and runs on any device.

use candle_core::{Device, Tensor};

use crate::ModelError;

/// The input cells `[start, end)` that output cell `i` of `out` averages when
/// an axis of length `len` is pooled to `out` cells.
///
/// Source: ATen `native/AdaptivePooling.h`, `start_index = floor(i*in/out)`,
/// `end_index = ceil((i+1)*in/out)`.
pub fn adaptive_bin(i: usize, len: usize, out: usize) -> (usize, usize) {
    let start = (i * len) / out;
    let end = ((i + 1) * len).div_ceil(out);
    (start, end)
}

/// The `[out, len]` matrix whose row `i` holds `1/count` over bin `i` and 0 elsewhere.
fn averaging_matrix(len: usize, out: usize, device: &Device) -> Result<Tensor, ModelError> {
    let mut m = vec![0f32; out * len];
    for i in 0..out {
        let (start, end) = adaptive_bin(i, len, out);
        let weight = 1.0 / (end - start) as f32;
        for v in &mut m[i * len + start..i * len + end] {
            *v = weight;
        }
    }
    Ok(Tensor::from_vec(m, (out, len), device)?)
}

/// PyTorch's `adaptive_avg_pool2d(x, (out_h, out_w))` for an `[N, C, H, W]` tensor.
///
/// Computed as `P_h · x · P_wᵀ` with averaging matrices, so each output is
/// the mean of its bin (up to float rounding of the 1/count weights) and the
/// backward pass comes from candle's matmul. When the input already has the
/// output size the pool is the identity and `x` is returned as is.
pub fn adaptive_avg_pool2d(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor, ModelError> {
    let (n, c, h, w) = x.dims4()?;
    if h == out_h && w == out_w {
        return Ok(x.clone());
    }
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return Err(ModelError::BadInput(format!(
            "adaptive pooling from {h}x{w} to {out_h}x{out_w}: sizes must be positive"
        )));
    }
    let device = x.device();
    let dtype = x.dtype();
    let p_h = averaging_matrix(h, out_h, device)?.to_dtype(dtype)?; // [out_h, h]
    let p_w = averaging_matrix(w, out_w, device)?.to_dtype(dtype)?; // [out_w, w]
                                                                    // Pool the columns: [N*C*H, W] · [W, out_w].
    let y = x
        .contiguous()?
        .reshape((n * c * h, w))?
        .matmul(&p_w.t()?)?
        .reshape((n * c, h, out_w))?;
    // Pool the rows: bring H last, [N*C*out_w, H] · [H, out_h], then put it back.
    let y = y
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n * c * out_w, h))?
        .matmul(&p_h.t()?)?
        .reshape((n * c, out_w, out_h))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, c, out_h, out_w))?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_aten_for_3_to_7() {
        // ATen's start/end formula for 3 -> 7: [0,1) [0,1) [0,2) [1,2) [1,3) [2,3) [2,3).
        let bins: Vec<_> = (0..7).map(|i| adaptive_bin(i, 3, 7)).collect();
        assert_eq!(
            bins,
            vec![(0, 1), (0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 3)]
        );
    }

    #[test]
    fn pooling_averages_each_bin() -> Result<(), ModelError> {
        let (h, w) = (5usize, 3usize);
        let data: Vec<f32> = (0..h * w).map(|v| (v * v % 7) as f32).collect();
        let x = Tensor::from_vec(data.clone(), (1, 1, h, w), &Device::Cpu)?;
        let y = adaptive_avg_pool2d(&x, 2, 7)?;
        let got = y.flatten_all()?.to_vec1::<f32>()?;
        for i in 0..2 {
            for j in 0..7 {
                let (r0, r1) = adaptive_bin(i, h, 2);
                let (c0, c1) = adaptive_bin(j, w, 7);
                let mut sum = 0.0;
                for r in r0..r1 {
                    for c in c0..c1 {
                        sum += data[r * w + c];
                    }
                }
                let want = sum / ((r1 - r0) * (c1 - c0)) as f32;
                assert!((got[i * 7 + j] - want).abs() < 1e-6, "cell ({i},{j})");
            }
        }
        Ok(())
    }

    #[test]
    fn same_size_is_identity() -> Result<(), ModelError> {
        let x = Tensor::arange(0f32, 98., &Device::Cpu)?.reshape((1, 2, 7, 7))?;
        let y = adaptive_avg_pool2d(&x, 7, 7)?;
        let diff = (y - &x)?.abs()?.sum_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
