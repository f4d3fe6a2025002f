//! The 2x2, stride-2 max-pool of VGG with a correct gradient.
//!
//! candle 0.11.1's `max_pool2d` backward multiplies the upstream gradient by
//! the fraction of maxima in each window instead of dividing by their count,
//! so a window with one maximum passes on only 1/4 of its gradient
//! (`backprop.rs`, `Op::MaxPool2D`). When gradients are needed we therefore
//! pool with two `max` reductions, whose backward is right.

use candle_core::Tensor;

use crate::ModelError;

/// PyTorch's `MaxPool2d(kernel_size=2, stride=2)` on `[N, C, H, W]`: odd
/// trailing rows and columns are dropped (floor mode).
///
/// On a tensor that tracks gradients, a window whose maximum is tied passes
/// the gradient to every tied cell, where PyTorch picks the first one; ties
/// between distinct activations practically only occur among ReLU zeros,
/// whose gradient the ReLU before the pool cancels anyway.
pub(crate) fn max_pool2x2(x: &Tensor) -> Result<Tensor, ModelError> {
    if !x.track_op() {
        // Constant input: candle's native kernel is fastest and its forward is right.
        return Ok(x.max_pool2d(2)?);
    }
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    let x = if h % 2 == 0 && w % 2 == 0 {
        x.clone()
    } else {
        x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?.contiguous()?
    };
    Ok(x.reshape((n, c, ho, 2, wo, 2))?.max(5)?.max(3)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_matches_native_and_gradient_reaches_the_maximum_whole() -> Result<(), ModelError> {
        let data: Vec<f32> = (0..2 * 5 * 7).map(|i| ((i * 37) % 23) as f32).collect();
        let x = Var::from_vec(data, (1, 2, 5, 7), &Device::Cpu)?;
        let y = max_pool2x2(x.as_tensor())?;
        let native = x.as_detached_tensor().max_pool2d(2)?;
        assert_eq!(y.dims(), &[1, 2, 2, 3]);
        let diff = (&y - native)?.abs()?.sum_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        let grads = y.sum_all()?.backward()?;
        let g = grads.get(x.as_tensor()).expect("gradient");
        // One unit of gradient per window (all values in a window are distinct here).
        assert_eq!(g.sum_all()?.to_scalar::<f32>()?, 12.0);
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        assert!(g.iter().all(|&v| v == 0.0 || v == 1.0));
        Ok(())
    }
}
