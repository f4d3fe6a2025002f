//! The classifier's `Linear` layer (`x · Wᵀ + b`, optionally followed by a
//! ReLU) as one CPU custom op.
//!
//! Why: candle 0.11.1 differentiates `x.matmul(&w.t())` into a `[in, out]`
//! gradient and then transposes it back with a strided add, which for the
//! 25088x4096 `classifier.0` weight (411 MB) costs seconds per step. Here the
//! weight gradient is produced in `W`'s own layout by one GEMM,
//! `dW = dZᵀ · x`, and the input gradient is `dZ · W`.
//!
//! Only f32 tensors on the CPU take this path; elsewhere [`linear`] is
//! candle's matmul, bias add and ReLU.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::blas::{contiguous_f32, product_nt, with_cpu_f32, Gemm};
use super::relu_f32;
use crate::ModelError;

/// `relu?(x · wᵀ + b)` for `x: [N, I]`, `w: [O, I]`, `b: [O]`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor, ModelError> {
    let fast = x.device().is_cpu()
        && [x.dtype(), w.dtype(), b.dtype()] == [DType::F32; 3]
        && x.rank() == 2
        && w.rank() == 2;
    if fast {
        let y = x
            .contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear { relu })?;
        return Ok(y);
    }
    reference_linear(x, w, b, relu)
}

/// The same function from candle's own ops: the path off the CPU, and the
/// reference the custom op is tested against.
pub(crate) fn reference_linear(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
) -> Result<Tensor, ModelError> {
    let y = x.matmul(&w.t()?)?.broadcast_add(b)?;
    Ok(if relu { super::relu(&y)? } else { y })
}

struct Linear {
    relu: bool,
}

fn dims(x: &Layout, w: &Layout, b: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let (n, i) = x.shape().dims2()?;
    let (o, i2) = w.shape().dims2()?;
    if i != i2 || b.shape().dims1()? != o {
        candle_core::bail!(
            "linear: input {:?}, weight {:?}, bias {:?} do not fit",
            x.shape(),
            w.shape(),
            b.shape()
        );
    }
    Ok((n, i, o))
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, i, o) = dims(l1, l2, l3)?;
        let (x, w, b) = (
            contiguous_f32(s1, l1)?,
            contiguous_f32(s2, l2)?,
            contiguous_f32(s3, l3)?,
        );
        // y[N, O] = x[N, I] · wᵀ.
        let mut y = product_nt(x, w, n, i, o);
        let relu = self.relu;
        y.par_chunks_mut(o.max(1)).for_each(|row| {
            for (v, bias) in row.iter_mut().zip(b) {
                *v += bias;
                if relu {
                    *v = relu_f32(*v);
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, i) = x.dims2()?;
        let o = w.dim(0)?;
        // dZ = dY where the output is positive (PyTorch's threshold_backward), else dY.
        let dz = if self.relu {
            let g = grad.contiguous()?;
            let g = with_cpu_f32(&g, <[f32]>::to_vec)?;
            with_cpu_f32(y, |y| {
                g.iter()
                    .zip(y)
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                    .collect::<Vec<f32>>()
            })?
        } else {
            with_cpu_f32(&grad.contiguous()?, <[f32]>::to_vec)?
        };
        let dev = x.device();
        let dx = if x.track_op() {
            let dx = with_cpu_f32(w, |w| {
                Gemm {
                    m: n,
                    n: i,
                    k: o,
                    acc: false,
                }
                .product((&dz, o, 1), (w, i, 1))
            })?;
            Some(Tensor::from_vec(dx, (n, i), dev)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            // Not zero-filled first: 411 MB for VGG16's `classifier.0`.
            let dw = with_cpu_f32(x, |x| {
                Gemm {
                    m: o,
                    n: i,
                    k: n,
                    acc: false,
                }
                .product((&dz, 1, o), (x, i, 1))
            })?;
            Some(Tensor::from_vec(dw, (o, i), dev)?)
        } else {
            None
        };
        let db = if b.track_op() {
            let mut db = vec![0f64; o];
            for row in dz.chunks_exact(o.max(1)) {
                for (acc, &v) in db.iter_mut().zip(row) {
                    *acc += v as f64;
                }
            }
            let db: Vec<f32> = db.into_iter().map(|v| v as f32).collect();
            Some(Tensor::from_vec(db, o, dev)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{assert_same_forward_and_gradients, random};
    use candle_core::Var;

    /// Forward and all three gradients against candle's matmul + bias + ReLU,
    /// batches on both sides of [`product_nt`]'s switch to the GEMM.
    /// Tolerance 1e-5 of each tensor's largest magnitude (f32 sums of at most
    /// a few hundred products, in different orders).
    #[test]
    fn matches_candle_forward_and_backward() -> Result<(), ModelError> {
        const TOL: f32 = 1e-5;
        for (seed, &(n, i, o)) in [
            (2, 3, 4),
            (1, 1, 1),
            (5, 300, 17),
            (16, 64, 128),
            (40, 70, 9),
        ]
        .iter()
        .enumerate()
        {
            for relu in [true, false] {
                let seed = seed as u64 * 5 + 40;
                let x = Var::from_tensor(&(random(&[n, i], seed) - 0.5)?)?;
                let w = Var::from_tensor(&(random(&[o, i], seed + 1) - 0.5)?)?;
                let b = Var::from_tensor(&(random(&[o], seed + 2) - 0.5)?)?;
                let g = random(&[n, o], seed + 3);
                let ours = linear(&x, &w, &b, relu)?;
                let want = reference_linear(&x, &w, &b, relu)?;
                let tag = format!("{:?} relu {relu}", (n, i, o));
                let vars = [("x", &x), ("w", &w), ("b", &b)];
                assert_same_forward_and_gradients((ours, want), &g, &vars, TOL, &tag);
            }
        }
        Ok(())
    }

    #[test]
    fn frozen_weight_gets_no_gradient() -> Result<(), ModelError> {
        let x = Var::from_tensor(&random(&[3, 8], 1))?;
        let (w, b) = (random(&[4, 8], 2), random(&[4], 3));
        let grads = linear(&x, &w, &b, true)?.sum_all()?.backward()?;
        assert!(grads.get(&x).is_some());
        assert!(grads.get(&w).is_none() && grads.get(&b).is_none());
        Ok(())
    }
}
