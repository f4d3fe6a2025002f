//! The 2x2, stride-2 max-pool of VGG with a correct gradient.
//!
//! candle 0.11.1's `max_pool2d` backward multiplies the upstream gradient by
//! the fraction of maxima in each window instead of dividing by their count,
//! so a window with one maximum passes on only 1/4 of its gradient
//! (`backprop.rs`, `Op::MaxPool2D`). When gradients are needed we therefore
//! pool with our own op on the CPU (gradient to the first maximum of each
//! window, as PyTorch's CPU kernel does), and with two `max` reductions, whose
//! backward is right, on other devices.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::blas::contiguous_f32;
use crate::ModelError;

/// PyTorch's `MaxPool2d(kernel_size=2, stride=2)` on `[N, C, H, W]`: odd
/// trailing rows and columns are dropped (floor mode).
///
/// On a tensor that tracks gradients, each window passes its gradient to its
/// first maximum in row-major order (PyTorch's CPU rule) on the CPU; on other
/// devices a tied maximum passes it to every tied cell. Ties between distinct
/// activations practically only occur among ReLU zeros, whose gradient the
/// ReLU before the pool cancels anyway.
pub(crate) fn max_pool2x2(x: &Tensor) -> Result<Tensor, ModelError> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4 {
        // Also for constant inputs: candle's kernel passes a NaN over.
        return Ok(x.contiguous()?.apply_op1(MaxPool2x2)?);
    }
    if !x.track_op() {
        // Constant input: candle's native kernel is fast and its forward is right.
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

/// The forward op; its backward is [`MaxPool2x2Backward`].
struct MaxPool2x2;

/// `(H, W, H/2, W/2)`: an input plane's sides and the pooled plane's.
fn plane_dims(l: &Layout) -> candle_core::Result<(usize, usize, usize, usize)> {
    let (_, _, h, w) = l.shape().dims4()?;
    Ok((h, w, h / 2, w / 2))
}

/// Whether `v`, met after `best` in a window's row-major order, takes its
/// place as the maximum: only when greater, or a NaN (PyTorch's rule).
#[inline]
fn replaces(best: f32, v: f32) -> bool {
    v > best || v.is_nan()
}

/// Index within the input plane of the first maximum of window `(oy, ox)`
/// (a NaN counts as the maximum, as in PyTorch).
#[inline]
fn argmax(plane: &[f32], w: usize, oy: usize, ox: usize) -> usize {
    let base = 2 * oy * w + 2 * ox;
    let mut best = base;
    for at in [base + 1, base + w, base + w + 1] {
        let v = plane[at];
        if replaces(plane[best], v) {
            best = at;
        }
    }
    best
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, _, _) = l.shape().dims4()?;
        let (h, w, ho, wo) = plane_dims(l)?;
        let x = contiguous_f32(s, l)?;
        let mut y = vec![0f32; n * c * ho * wo];
        if ho * wo > 0 {
            y.par_chunks_mut(ho * wo)
                .zip(x.par_chunks(h * w))
                .for_each(|(out, plane)| {
                    // The value at `argmax`, on row slices without bounds
                    // checks so that the loop vectorises.
                    let pick = |best: f32, v: f32| if replaces(best, v) { v } else { best };
                    for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                        let top = &plane[2 * oy * w..][..2 * wo];
                        let bottom = &plane[(2 * oy + 1) * w..][..2 * wo];
                        for ((o, t), b) in out
                            .iter_mut()
                            .zip(top.chunks_exact(2))
                            .zip(bottom.chunks_exact(2))
                        {
                            *o = pick(pick(pick(t[0], t[1]), b[0]), b[1]);
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPool2x2Backward,
        )?))
    }
}

/// `(x, dY) -> dX`: each window's gradient goes to its first maximum.
struct MaxPool2x2Backward;

impl CustomOp2 for MaxPool2x2Backward {
    fn name(&self) -> &'static str {
        "max-pool-2x2-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (h, w, ho, wo) = plane_dims(l1)?;
        let (x, g) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let mut dx = vec![0f32; x.len()];
        if ho * wo > 0 {
            dx.par_chunks_mut(h * w)
                .zip(x.par_chunks(h * w))
                .zip(g.par_chunks(ho * wo))
                .for_each(|((dplane, plane), gplane)| {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            dplane[argmax(plane, w, oy, ox)] = gplane[oy * wo + ox];
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
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

    /// The reference: two `max` reductions (what runs off the CPU).
    fn reference(x: &Tensor) -> Result<Tensor, ModelError> {
        let (n, c, h, w) = x.dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let x = x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?.contiguous()?;
        Ok(x.reshape((n, c, ho, 2, wo, 2))?.max(5)?.max(3)?)
    }

    /// Forward and backward equal the reduction-based pool exactly on random
    /// (tie-free) inputs of several shapes: both pick the same element.
    #[test]
    fn custom_op_matches_the_reductions_exactly() -> Result<(), ModelError> {
        for (seed, shape) in [
            [2, 3, 8, 8],
            [1, 1, 2, 2],
            [3, 4, 7, 9],
            [2, 5, 3, 6],
            [4, 64, 24, 24],
        ]
        .iter()
        .enumerate()
        {
            let x = Var::from_tensor(&crate::ops::tests::random(shape, seed as u64))?;
            let ours = max_pool2x2(x.as_tensor())?;
            let want = reference(x.as_tensor())?;
            assert_eq!(ours.dims(), want.dims(), "{shape:?}");
            let g = crate::ops::tests::random(ours.dims(), seed as u64 + 9);
            let diff = crate::max_abs_diff;
            if ours.elem_count() > 0 {
                assert_eq!(diff(&ours, &want)?, 0.0, "forward {shape:?}");
            }
            let go = (ours * &g)?.sum_all()?.backward()?;
            let gw = (want * &g)?.sum_all()?.backward()?;
            let (a, b) = (go.get(&x).expect("ours"), gw.get(&x).expect("reference"));
            assert_eq!(diff(a, b)?, 0.0, "backward {shape:?}");
        }
        Ok(())
    }

    /// A tied window sends its gradient to the first maximum only (PyTorch's CPU rule).
    #[test]
    fn ties_go_to_the_first_maximum() -> Result<(), ModelError> {
        let x = Var::from_vec(vec![1f32, 3., 3., 3.], (1, 1, 2, 2), &Device::Cpu)?;
        let grads = max_pool2x2(x.as_tensor())?.sum_all()?.backward()?;
        let g = grads
            .get(&x)
            .expect("gradient")
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(g, [0., 1., 0., 0.]);
        Ok(())
    }

    /// The forward value is, bit for bit, the element `argmax` picks (the
    /// backward's rule), with NaNs, signed zeros, ties and odd sides.
    #[test]
    fn forward_value_is_the_argmax_element() -> Result<(), ModelError> {
        let pool = [-1.0f32, -0.0, 0.0, 1.0, f32::NAN, 2.0];
        let (n, c, h, w) = (2, 3, 7, 9);
        let data: Vec<f32> = (0..n * c * h * w)
            .map(|i| pool[(i * 7 + i / 5) % pool.len()])
            .collect();
        let x = Tensor::from_vec(data.clone(), (n, c, h, w), &Device::Cpu)?;
        let y = max_pool2x2(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut at = 0;
        for plane in data.chunks_exact(h * w) {
            for oy in 0..ho {
                for ox in 0..wo {
                    let want = plane[argmax(plane, w, oy, ox)];
                    assert_eq!(y[at].to_bits(), want.to_bits(), "window {at}");
                    at += 1;
                }
            }
        }
        Ok(())
    }
}
