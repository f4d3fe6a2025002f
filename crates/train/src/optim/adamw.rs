//! PyTorch's AdamW (decoupled weight decay).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::adamw_cpu;
use super::groups::ParamGroup;
use super::optimizer::{Optimizer, OptimizerKind, OptimizerState};
use super::slots::{check_keys, check_non_negative, conform, flatten, Slot};
use crate::{Result, TrainError};

/// Settings of [`AdamW`]; the defaults are PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the bias-corrected root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (`p *= 1 - lr * wd`).
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// Refuses what `torch.optim.AdamW`'s constructor refuses (a negative
    /// rate, eps or decay, betas outside [0, 1)), and any value that is not finite.
    pub fn validate(&self) -> Result<()> {
        check_non_negative("lr", self.lr)?;
        check_non_negative("eps", self.eps)?;
        check_non_negative("weight decay", self.weight_decay)?;
        for (what, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(TrainError::Config(format!(
                    "{what} must be in [0, 1), got {b}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

/// Adam moments of one parameter.
#[derive(Debug, Clone)]
struct Moments {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// PyTorch's AdamW (`torch/optim/adamw.py`, single-tensor path, no amsgrad):
/// `p *= 1 - lr*wd`; `m = lerp(m, g, 1-beta1)`; `v = beta2*v + (1-beta2)*g*g`;
/// `p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)`.
#[derive(Debug)]
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    moments: Vec<Option<Moments>>,
    /// Update CPU f32 tensors in place (see adamw_cpu.rs); off only to test
    /// the generic path against it.
    in_place: bool,
}

impl AdamW {
    /// Builds AdamW over `groups`; groups without a weight decay use `config.weight_decay`.
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        config.validate()?;
        let slots = flatten(groups, config.weight_decay)?;
        let moments = vec![None; slots.len()];
        Ok(AdamW {
            config,
            slots,
            moments,
            in_place: true,
        })
    }

    /// The current settings (lr and beta1 reflect `set_lr` / `set_momentum`).
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }
}

/// `torch.lerp(start, end, w)` as ATen's CPU kernel computes it (two branches
/// keep the result exact at both ends).
fn lerp(start: &Tensor, end: &Tensor, w: f64) -> Result<Tensor> {
    let diff = end.sub(start)?;
    Ok(if w < 0.5 {
        start.add(&diff.affine(w, 0.0)?)?
    } else {
        end.sub(&diff.affine(1.0 - w, 0.0)?)?
    })
}

impl Optimizer for AdamW {
    fn kind(&self) -> OptimizerKind {
        OptimizerKind::AdamW
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = self.config;
        for (slot, state) in self.slots.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            let lr = c.lr * slot.lr_scale;
            let prev = match state.take() {
                Some(m) => m,
                None => Moments {
                    step: 0,
                    exp_avg: g.zeros_like()?,
                    exp_avg_sq: g.zeros_like()?,
                },
            };
            let step = prev.step + 1;
            // Step counts are whole numbers; PyTorch raises the betas to them in f64.
            let bias_correction1 = 1.0 - c.beta1.powf(step as f64);
            let bias_correction2 = 1.0 - c.beta2.powf(step as f64);
            let step_size = lr / bias_correction1;
            let w = 1.0 - c.beta1;
            // On the CPU the update runs in place (no temporaries: see adamw_cpu.rs).
            let fused = adamw_cpu::AdamWStep {
                lerp_w: w as f32,
                lerp_one_minus_w: (1.0 - w) as f32,
                lerp_low: w < 0.5,
                beta2: c.beta2 as f32,
                one_minus_beta2: (1.0 - c.beta2) as f32,
                decay_factor: (1.0 - lr * slot.weight_decay) as f32,
                decay: slot.weight_decay != 0.0,
                inv_sqrt_bc2: (1.0 / bias_correction2.sqrt()) as f32,
                eps: c.eps as f32,
                step_size: step_size as f32,
            };
            let mut p = slot.var.as_detached_tensor();
            if self.in_place
                && adamw_cpu::step_in_place(&p, &g, &prev.exp_avg, &prev.exp_avg_sq, fused)?
            {
                *state = Some(Moments { step, ..prev });
                continue;
            }
            if slot.weight_decay != 0.0 {
                p = p.affine(1.0 - lr * slot.weight_decay, 0.0)?;
            }
            let exp_avg = lerp(&prev.exp_avg, &g, w)?;
            let exp_avg_sq = prev
                .exp_avg_sq
                .affine(c.beta2, 0.0)?
                .add(&g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?;
            let denom = exp_avg_sq
                .sqrt()?
                .affine(1.0 / bias_correction2.sqrt(), 0.0)?
                .affine(1.0, c.eps)?;
            let update = exp_avg.div(&denom)?.affine(step_size, 0.0)?;
            slot.var.set(&p.sub(&update)?)?;
            *state = Some(Moments {
                step,
                exp_avg,
                exp_avg_sq,
            });
        }
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.config.beta1 = momentum;
    }

    fn param_names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = HashMap::new();
        for (slot, m) in self.slots.iter().zip(&self.moments) {
            if let Some(m) = m {
                let n = &slot.name;
                tensors.insert(format!("{n}.exp_avg"), m.exp_avg.clone());
                tensors.insert(format!("{n}.exp_avg_sq"), m.exp_avg_sq.clone());
                tensors.insert(
                    format!("{n}.step"),
                    Tensor::new(m.step as f64, &Device::Cpu)?,
                );
            }
        }
        Ok(OptimizerState {
            kind: OptimizerKind::AdamW,
            tensors,
        })
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_keys(
            state,
            OptimizerKind::AdamW,
            &self.slots,
            &["exp_avg", "exp_avg_sq", "step"],
        )?;
        let mut moments = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let keys = ["exp_avg", "exp_avg_sq", "step"].map(|s| format!("{}.{s}", slot.name));
            let found = keys.each_ref().map(|k| state.tensors.get(k));
            moments.push(match found {
                [None, None, None] => None,
                [Some(m), Some(v), Some(s)] => {
                    let step = s.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                    let step = match step.as_slice() {
                        [x] if *x >= 1.0 && x.fract() == 0.0 => *x as u64,
                        _ => {
                            return Err(TrainError::OptimizerState {
                                key: keys[2].clone(),
                                message: format!("expected one whole number >= 1, got {step:?}"),
                            })
                        }
                    };
                    Some(Moments {
                        step,
                        exp_avg: conform(&keys[0], m, &slot.var)?,
                        exp_avg_sq: conform(&keys[1], v, &slot.var)?,
                    })
                }
                _ => {
                    return Err(TrainError::OptimizerState {
                        key: slot.name.clone(),
                        message: "needs all of exp_avg, exp_avg_sq and step, or none".into(),
                    })
                }
            });
        }
        self.moments = moments;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::optim::sgd::tests::{values, var};

    #[test]
    fn in_place_cpu_adamw_gives_the_generic_paths_bits() {
        let configs = [
            AdamWConfig::default(),
            AdamWConfig {
                lr: 3e-3,
                beta1: 0.3, // lerp's other branch
                beta2: 0.99,
                eps: 1e-6,
                weight_decay: 0.0,
            },
        ];
        for config in configs {
            let mut results = Vec::new();
            for in_place in [true, false] {
                let (name, w) = var("w", &values(0.0, 1000));
                let groups = vec![ParamGroup::new("g", vec![(name, w.clone())]).with_lr_scale(0.7)];
                let mut adamw = AdamW::new(groups, config).unwrap();
                adamw.in_place = in_place;
                for step in 0..5 {
                    let target =
                        Tensor::new(values(step as f32 + 1.0, 1000), &Device::Cpu).unwrap();
                    let loss = w.as_tensor().sqr().unwrap().mul(&target).unwrap();
                    adamw
                        .step(&loss.sum_all().unwrap().backward().unwrap())
                        .unwrap();
                }
                let state = adamw.state().unwrap();
                let moments = ["w.exp_avg", "w.exp_avg_sq"]
                    .map(|k| state.tensors[k].to_vec1::<f32>().unwrap());
                results.push((w.as_tensor().to_vec1::<f32>().unwrap(), moments));
            }
            assert!(results[0] == results[1], "{config:?}");
        }
    }
}
