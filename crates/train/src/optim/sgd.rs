//! PyTorch's SGD: momentum, dampening, Nesterov, weight decay, in place on
//! the CPU.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::groups::ParamGroup;
use super::optimizer::{Optimizer, OptimizerKind, OptimizerState};
use super::sgd_cpu;
use super::slots::{check_keys, check_non_negative, conform, flatten, Slot};
use crate::{Result, TrainError};

/// Settings of [`Sgd`]; the defaults are PyTorch's except the learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables the buffer).
    pub momentum: f64,
    /// Dampening of the momentum's gradient term.
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0, as in PyTorch).
    pub nesterov: bool,
    /// L2 penalty added to the gradient (`d = g + wd * p`).
    pub weight_decay: f64,
}

impl SgdConfig {
    /// Refuses what `torch.optim.SGD`'s constructor refuses (negative values,
    /// Nesterov without momentum), and any value that is not finite.
    pub fn validate(&self) -> Result<()> {
        check_non_negative("lr", self.lr)?;
        check_non_negative("momentum", self.momentum)?;
        check_non_negative("dampening", self.dampening)?;
        check_non_negative("weight decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            // Same rule as torch.optim.SGD's constructor.
            return Err(TrainError::Config(
                "Nesterov momentum requires a momentum > 0 and zero dampening".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// PyTorch's SGD (`torch/optim/sgd.py`), per parameter p with gradient g:
/// `d = g + wd*p`; `buf = d` on the first step, else
/// `buf = momentum*buf + (1-dampening)*d`; `d = d + momentum*buf` if Nesterov
/// else `d = buf`; `p = p - lr*d`.
#[derive(Debug)]
pub struct Sgd {
    config: SgdConfig,
    slots: Vec<Slot>,
    buffers: Vec<Option<Tensor>>,
    /// Use the in-place CPU update where it applies (tests turn it off to
    /// compare it with the generic path).
    in_place: bool,
}

impl Sgd {
    /// Builds SGD over `groups`; groups without a weight decay use `config.weight_decay`.
    pub fn new(groups: Vec<ParamGroup>, config: SgdConfig) -> Result<Self> {
        config.validate()?;
        let slots = flatten(groups, config.weight_decay)?;
        let buffers = vec![None; slots.len()];
        Ok(Sgd {
            config,
            slots,
            buffers,
            in_place: true,
        })
    }

    /// The current settings (lr and momentum reflect `set_lr` / `set_momentum`).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl Optimizer for Sgd {
    fn kind(&self) -> OptimizerKind {
        OptimizerKind::Sgd
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = self.config;
        let in_place = self.in_place;
        for (slot, buf) in self.slots.iter().zip(self.buffers.iter_mut()) {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let p = slot.var.as_detached_tensor();
            let g = g.detach();
            // On the CPU the update runs in place (no temporaries: see sgd_cpu.rs).
            let fused = sgd_cpu::SgdStep {
                lr: (c.lr * slot.lr_scale) as f32,
                weight_decay: slot.weight_decay as f32,
                momentum: c.momentum as f32,
                keep: (1.0 - c.dampening) as f32,
                nesterov: c.nesterov,
                first: buf.is_none(),
            };
            if !in_place {
                // The generic path below.
            } else if c.momentum == 0.0 {
                if sgd_cpu::step_in_place(&p, &g, None, fused)? {
                    continue;
                }
            } else if sgd_cpu::eligible(&p) {
                let b = match buf.take() {
                    Some(b) => b,
                    None => p.zeros_like()?,
                };
                let done = sgd_cpu::step_in_place(&p, &g, Some(&b), fused)?;
                if done {
                    *buf = Some(b);
                    continue;
                }
                // Not done: the generic path below starts from this buffer.
                if !fused.first {
                    *buf = Some(b);
                }
            }
            let mut d = if slot.weight_decay != 0.0 {
                g.add(&p.affine(slot.weight_decay, 0.0)?)?
            } else {
                g
            };
            if c.momentum != 0.0 {
                let new_buf = match buf.take() {
                    // A copy, not the gradient itself: the buffer must own its storage.
                    None => d.copy()?,
                    Some(b) => {
                        let b = b.affine(c.momentum, 0.0)?;
                        if c.dampening == 0.0 {
                            b.add(&d)?
                        } else {
                            b.add(&d.affine(1.0 - c.dampening, 0.0)?)?
                        }
                    }
                };
                d = if c.nesterov {
                    d.add(&new_buf.affine(c.momentum, 0.0)?)?
                } else {
                    new_buf.clone()
                };
                *buf = Some(new_buf);
            }
            let lr = c.lr * slot.lr_scale;
            slot.var.set(&p.sub(&d.affine(lr, 0.0)?)?)?;
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
        self.config.momentum = momentum;
    }

    fn param_names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = HashMap::new();
        for (slot, buf) in self.slots.iter().zip(&self.buffers) {
            if let Some(b) = buf {
                tensors.insert(format!("{}.momentum_buffer", slot.name), b.clone());
            }
        }
        Ok(OptimizerState {
            kind: OptimizerKind::Sgd,
            tensors,
        })
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_keys(state, OptimizerKind::Sgd, &self.slots, &["momentum_buffer"])?;
        let mut buffers = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let key = format!("{}.momentum_buffer", slot.name);
            buffers.push(match state.tensors.get(&key) {
                Some(t) => Some(conform(&key, t, &slot.var)?),
                None => None,
            });
        }
        self.buffers = buffers;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `n` smooth pseudo-random values in [-1, 1], different for each `seed`.
    pub(in crate::optim) fn values(seed: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
    }

    pub(in crate::optim) fn var(name: &str, vals: &[f32]) -> (String, Var) {
        let v = Var::from_tensor(&Tensor::new(vals, &Device::Cpu).unwrap()).unwrap();
        (name.to_string(), v)
    }

    #[test]
    fn in_place_cpu_sgd_gives_the_generic_paths_bits() {
        let configs = [
            SgdConfig {
                lr: 0.1,
                weight_decay: 1e-2,
                ..SgdConfig::default()
            },
            SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 5e-4,
                ..SgdConfig::default()
            },
            SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4,
                ..SgdConfig::default()
            },
            SgdConfig {
                lr: 0.05,
                momentum: 0.8,
                dampening: 0.3,
                ..SgdConfig::default()
            },
        ];
        for config in configs {
            let mut results = Vec::new();
            for in_place in [true, false] {
                let (name, w) = var("w", &values(0.0, 1000));
                let groups = vec![ParamGroup::new("g", vec![(name, w.clone())]).with_lr_scale(0.7)];
                let mut sgd = Sgd::new(groups, config).unwrap();
                sgd.in_place = in_place;
                for step in 0..4 {
                    let target =
                        Tensor::new(values(step as f32 + 1.0, 1000), &Device::Cpu).unwrap();
                    let loss = w.as_tensor().mul(&target).unwrap().sum_all().unwrap();
                    sgd.step(&loss.backward().unwrap()).unwrap();
                }
                results.push(w.as_tensor().to_vec1::<f32>().unwrap());
            }
            assert_eq!(results[0], results[1], "{config:?}");
        }
    }

    #[test]
    fn duplicate_names_and_bad_nesterov_are_rejected() {
        let a = var("a", &[1.0]);
        let groups = vec![
            ParamGroup::new("x", vec![a.clone()]),
            ParamGroup::new("y", vec![a]),
        ];
        let err = Sgd::new(groups, SgdConfig::default()).unwrap_err();
        assert!(err.to_string().contains("more than one group"), "{err}");
        let cfg = SgdConfig {
            nesterov: true,
            ..SgdConfig::default()
        };
        assert!(Sgd::new(vec![], cfg).is_err());
    }

    #[test]
    fn step_does_not_track_gradients() {
        let (name, p) = var("p", &[1.0, 2.0]);
        let mut opt = Sgd::new(
            vec![ParamGroup::new("g", vec![(name, p.clone())])],
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..SgdConfig::default()
            },
        )
        .unwrap();
        let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads).unwrap();
        // d(sum p^2)/dp = 2p: p - 0.1 * 2p = 0.8p.
        assert_eq!(p.as_tensor().to_vec1::<f32>().unwrap(), vec![0.8, 1.6]);
        let buf = &opt.state().unwrap().tensors["p.momentum_buffer"];
        assert!(!buf.track_op(), "state must be detached");
    }

    #[test]
    fn load_state_names_the_bad_key() {
        let mut opt = Sgd::new(
            vec![ParamGroup::new("g", vec![var("p", &[1.0])])],
            SgdConfig::default(),
        )
        .unwrap();
        let mut tensors = HashMap::new();
        tensors.insert(
            "q.momentum_buffer".to_string(),
            Tensor::new(&[0f32], &Device::Cpu).unwrap(),
        );
        let err = opt
            .load_state(&OptimizerState {
                kind: OptimizerKind::Sgd,
                tensors: tensors.clone(),
            })
            .unwrap_err();
        assert!(err.to_string().contains("q.momentum_buffer"), "{err}");
        let err = opt
            .load_state(&OptimizerState {
                kind: OptimizerKind::AdamW,
                tensors,
            })
            .unwrap_err();
        assert!(err.to_string().contains("adamw"), "{err}");
    }
}
