//! AdamW's update done in place on the CPU: the parameter and both moments
//! are rewritten element by element, with no temporary tensors.
//!
//! Why: the generic update builds each intermediate (`g - m`, `g * g`,
//! `sqrt(v)`, the denominator, the step) as a new tensor, so the update of
//! `classifier.0.weight` (411 MB) held several such temporaries at once and a
//! full fine-tuning run's peak memory was 1.45x PyTorch's. Each value is
//! computed with the generic path's f32 operations in the same order
//! (candle's `affine` is `v * mul + add`), so both paths give the same bits
//! (tested in adamw.rs).

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor};

use super::in_place::{eligible, slice, slice_mut};
use crate::Result;

/// One parameter's AdamW step, as f32 factors of the generic path.
#[derive(Debug, Clone, Copy)]
pub(super) struct AdamWStep {
    /// `torch.lerp`'s weight `1 - beta1`, and which of its two branches runs.
    pub lerp_w: f32,
    pub lerp_one_minus_w: f32,
    pub lerp_low: bool,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// `1 - lr * wd`, applied when `decay` is set.
    pub decay_factor: f32,
    pub decay: bool,
    /// `1 / sqrt(1 - beta2^t)`.
    pub inv_sqrt_bc2: f32,
    pub eps: f32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
}

/// Applies one AdamW step to `p`, `exp_avg` and `exp_avg_sq` in place, or
/// returns `false` when a tensor does not qualify (other device, dtype or
/// layout) and the caller must use the generic path.
pub(super) fn step_in_place(
    p: &Tensor,
    g: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    s: AdamWStep,
) -> Result<bool> {
    if ![p, g, exp_avg, exp_avg_sq].into_iter().all(eligible) {
        return Ok(false);
    }
    exp_avg.inplace_op2(g, &FirstMoment(s))?;
    exp_avg_sq.inplace_op2(g, &SecondMoment(s))?;
    p.inplace_op3(exp_avg, exp_avg_sq, &ParamUpdate(s))?;
    Ok(true)
}

/// `m = lerp(m, g, 1 - beta1)` as ATen computes it (and the generic path).
struct FirstMoment(AdamWStep);

impl InplaceOp2 for FirstMoment {
    fn name(&self) -> &'static str {
        "adamw-first-moment"
    }

    fn cpu_fwd(
        &self,
        m: &mut CpuStorage,
        lm: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> candle_core::Result<()> {
        let s = self.0;
        let (m, g) = (slice_mut(m, lm)?, slice(g, lg)?);
        for (m, &g) in m.iter_mut().zip(g) {
            let diff = g - *m;
            *m = if s.lerp_low {
                *m + (diff * s.lerp_w + 0.0)
            } else {
                g - (diff * s.lerp_one_minus_w + 0.0)
            };
        }
        Ok(())
    }
}

/// `v = beta2 * v + (1 - beta2) * g * g`.
struct SecondMoment(AdamWStep);

impl InplaceOp2 for SecondMoment {
    fn name(&self) -> &'static str {
        "adamw-second-moment"
    }

    fn cpu_fwd(
        &self,
        v: &mut CpuStorage,
        lv: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> candle_core::Result<()> {
        let s = self.0;
        let (v, g) = (slice_mut(v, lv)?, slice(g, lg)?);
        for (v, &g) in v.iter_mut().zip(g) {
            *v = (*v * s.beta2 + 0.0) + ((g * g) * s.one_minus_beta2 + 0.0);
        }
        Ok(())
    }
}

/// `p = p * (1 - lr*wd) - step_size * m / (sqrt(v) / sqrt(bc2) + eps)`.
struct ParamUpdate(AdamWStep);

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adamw-param-update"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        lp: &Layout,
        m: &CpuStorage,
        lm: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<()> {
        let s = self.0;
        let (p, m, v) = (slice_mut(p, lp)?, slice(m, lm)?, slice(v, lv)?);
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            let decayed = if s.decay {
                *p * s.decay_factor + 0.0
            } else {
                *p
            };
            let denom = (v.sqrt() * s.inv_sqrt_bc2 + 0.0) * 1.0 + s.eps;
            *p = decayed - ((m / denom) * s.step_size + 0.0);
        }
        Ok(())
    }
}
