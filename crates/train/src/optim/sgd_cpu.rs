//! SGD's update done in place on the CPU: the parameter and its momentum
//! buffer are rewritten element by element, with no temporary tensors.
//!
//! Why: candle's tensor ops allocate a new tensor per operation, so the
//! generic update of `classifier.0.weight` (411 MB) held four such
//! temporaries at once, which made a full fine-tuning run's peak memory
//! higher than PyTorch's (whose foreach SGD works in place). The arithmetic
//! is the generic path's, in the same order and in f32, so both paths give
//! the same bits (tested below).

use candle_core::{CpuStorage, InplaceOp3, Layout, Tensor};

pub(super) use super::in_place::eligible;
use super::in_place::{slice, slice_mut};
use crate::Result;

/// One parameter's SGD hyper-parameters (PyTorch's `torch.optim.SGD`).
#[derive(Debug, Clone, Copy)]
pub(super) struct SgdStep {
    pub lr: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    /// `1 - dampening`, computed in f64 as the generic path does.
    pub keep: f32,
    pub nesterov: bool,
    /// The buffer holds nothing yet: it becomes `d` (PyTorch's first step).
    pub first: bool,
}

/// Applies one SGD step to `p` (and `buf`, when momentum is on) in place, or
/// returns `false` when the tensors do not qualify (other device, dtype or
/// layout) and the caller must use the generic path.
pub(super) fn step_in_place(
    p: &Tensor,
    g: &Tensor,
    buf: Option<&Tensor>,
    s: SgdStep,
) -> Result<bool> {
    if !(eligible(p) && eligible(g) && buf.is_none_or(eligible)) {
        return Ok(false);
    }
    match buf {
        Some(buf) => {
            // The buffer first (it reads the old `p`), then `p` (it reads the new buffer).
            buf.inplace_op3(g, p, &BufferUpdate(s))?;
            p.inplace_op3(g, buf, &ParamUpdate(s))?;
        }
        None => p.inplace_op3(g, g, &ParamUpdate(s))?,
    }
    Ok(true)
}

/// `d = g + wd * p`, as the generic path computes it.
#[inline(always)]
fn decayed(g: f32, p: f32, wd: f32) -> f32 {
    if wd != 0.0 {
        g + p * wd
    } else {
        g
    }
}

/// `buf = d` on the first step, else `buf = momentum * buf + (1 - dampening) * d`.
struct BufferUpdate(SgdStep);

impl InplaceOp3 for BufferUpdate {
    fn name(&self) -> &'static str {
        "sgd-buffer-update"
    }

    fn cpu_fwd(
        &self,
        buf: &mut CpuStorage,
        lb: &Layout,
        g: &CpuStorage,
        lg: &Layout,
        p: &CpuStorage,
        lp: &Layout,
    ) -> candle_core::Result<()> {
        let s = self.0;
        let (buf, g, p) = (slice_mut(buf, lb)?, slice(g, lg)?, slice(p, lp)?);
        for ((b, &g), &p) in buf.iter_mut().zip(g).zip(p) {
            let d = decayed(g, p, s.weight_decay);
            *b = if s.first {
                d
            } else if s.keep == 1.0 {
                *b * s.momentum + d
            } else {
                *b * s.momentum + d * s.keep
            };
        }
        Ok(())
    }
}

/// `p = p - lr * d`, with `d = buf`, `d + momentum * buf` (Nesterov), or the
/// decayed gradient itself without momentum.
struct ParamUpdate(SgdStep);

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "sgd-param-update"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        lp: &Layout,
        g: &CpuStorage,
        lg: &Layout,
        buf: &CpuStorage,
        lb: &Layout,
    ) -> candle_core::Result<()> {
        let s = self.0;
        let (p, g, buf) = (slice_mut(p, lp)?, slice(g, lg)?, slice(buf, lb)?);
        let with_momentum = s.momentum != 0.0;
        for ((p, &g), &b) in p.iter_mut().zip(g).zip(buf) {
            let d = if !with_momentum {
                decayed(g, *p, s.weight_decay)
            } else if s.nesterov {
                decayed(g, *p, s.weight_decay) + b * s.momentum
            } else {
                b
            };
            *p -= d * s.lr;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    #[test]
    fn updates_a_variable_in_place_and_declines_what_it_cannot_do() {
        let step = SgdStep {
            lr: 0.5,
            weight_decay: 0.0,
            momentum: 0.9,
            keep: 1.0,
            nesterov: false,
            first: true,
        };
        let w = Var::from_slice(&[1.0f32, 2.0], 2, &Device::Cpu).unwrap();
        let g = Tensor::new(&[2.0f32, -2.0], &Device::Cpu).unwrap();
        let buf = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let p = w.as_detached_tensor();
        assert!(step_in_place(&p, &g, Some(&buf), step).unwrap());
        // First step: buf = g, p = p - lr * buf, seen through the variable itself.
        assert_eq!(buf.to_vec1::<f32>().unwrap(), [2.0, -2.0]);
        assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), [0.0, 3.0]);
        let f64_param = Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        assert!(!step_in_place(&f64_param, &g, None, step).unwrap());
    }
}
