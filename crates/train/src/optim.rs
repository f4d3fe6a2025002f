//! Optimisers with PyTorch's exact update rules, parameter groups, and
//! exportable state.
//!
//! candle-nn's `SGD` has no momentum or weight decay and its optimisers have no
//! parameter groups, so both optimisers are written here. Updates run on
//! detached tensors and land in the parameters through [`Var::set`], so an
//! optimiser step never grows an autograd graph.

mod sgd_cpu;

use std::collections::{HashMap, HashSet};
use std::fmt;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Parameters that share a learning-rate multiplier and a weight decay.
///
/// Groups give discriminative learning rates (a backbone at a tenth of the
/// head's rate) and no-decay sets (biases), like PyTorch's `param_groups`.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// A label for logs and errors, e.g. `"backbone"`.
    pub name: String,
    /// The parameters, with their checkpoint names (`"classifier.6.weight"`).
    pub params: Vec<(String, Var)>,
    /// The group's learning rate is the optimiser's learning rate times this.
    pub lr_scale: f64,
    /// Overrides the optimiser's weight decay for this group when set.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group with learning-rate scale 1 and the optimiser's weight decay.
    pub fn new(name: impl Into<String>, params: Vec<(String, Var)>) -> Self {
        ParamGroup {
            name: name.into(),
            params,
            lr_scale: 1.0,
            weight_decay: None,
        }
    }

    /// Sets the learning-rate multiplier.
    pub fn with_lr_scale(mut self, lr_scale: f64) -> Self {
        self.lr_scale = lr_scale;
        self
    }

    /// Sets the group's own weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// Splits off the parameters whose names end in `.bias` into a group named
    /// `"<name>.no_decay"` with weight decay 0 and the same learning-rate scale.
    ///
    /// Empty groups are dropped, so the result has one or two groups (or none
    /// for an empty group).
    pub fn split_bias_no_decay(self) -> Vec<ParamGroup> {
        let (biases, others): (Vec<_>, Vec<_>) = self
            .params
            .into_iter()
            .partition(|(name, _)| name.ends_with(".bias"));
        let decay = ParamGroup {
            name: self.name.clone(),
            params: others,
            lr_scale: self.lr_scale,
            weight_decay: self.weight_decay,
        };
        let no_decay = ParamGroup {
            name: format!("{}.no_decay", self.name),
            params: biases,
            lr_scale: self.lr_scale,
            weight_decay: Some(0.0),
        };
        [decay, no_decay]
            .into_iter()
            .filter(|g| !g.params.is_empty())
            .collect()
    }
}

/// Which optimiser produced a state; stored in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// [`Sgd`].
    Sgd,
    /// [`AdamW`].
    AdamW,
}

impl OptimizerKind {
    /// The lowercase name used in files: `"sgd"` or `"adamw"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OptimizerKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adamw" => Ok(OptimizerKind::AdamW),
            other => Err(TrainError::Config(format!(
                "unknown optimizer `{other}` (expected `sgd` or `adamw`)"
            ))),
        }
    }
}

/// An optimiser's state as named tensors, for checkpoints.
///
/// Keys are `"<param name>.<slot>"`: `momentum_buffer` for SGD; `exp_avg`,
/// `exp_avg_sq` and `step` (an F64 scalar) for AdamW, as in PyTorch's
/// `state_dict()["state"]`. A parameter without entries has not been stepped yet.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    /// The optimiser the state belongs to.
    pub kind: OptimizerKind,
    /// The named state tensors.
    pub tensors: HashMap<String, Tensor>,
}

/// A parameter-updating optimiser.
pub trait Optimizer {
    /// Which optimiser this is.
    fn kind(&self) -> OptimizerKind;
    /// Applies one update to every parameter that has a gradient in `grads`;
    /// parameters without one are skipped, as PyTorch skips `grad is None`.
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The base learning rate (each group uses it times its `lr_scale`).
    fn lr(&self) -> f64;
    /// Sets the base learning rate, e.g. from a [`crate::LrSchedule`].
    fn set_lr(&mut self, lr: f64);
    /// Sets the momentum (SGD) or `beta1` (AdamW), as one-cycle schedules do.
    fn set_momentum(&mut self, momentum: f64);
    /// The names of the parameters this optimiser updates, in group order.
    fn param_names(&self) -> Vec<&str>;
    /// Exports the state (buffers, moments, step counts) as named tensors.
    fn state(&self) -> Result<OptimizerState>;
    /// Restores a state exported by [`Optimizer::state`]; resuming is then exact.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
}

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

/// Either optimiser's settings; serialised with a `"kind"` tag for run configs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// Build an [`Sgd`].
    Sgd(SgdConfig),
    /// Build an [`AdamW`].
    AdamW(AdamWConfig),
}

impl OptimizerConfig {
    /// Builds the optimiser over `groups`.
    pub fn build(&self, groups: Vec<ParamGroup>) -> Result<Box<dyn Optimizer>> {
        Ok(match *self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::new(groups, c)?),
            OptimizerConfig::AdamW(c) => Box::new(AdamW::new(groups, c)?),
        })
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
        }
    }

    /// The same settings at another base learning rate.
    pub fn with_lr(mut self, lr: f64) -> OptimizerConfig {
        match &mut self {
            OptimizerConfig::Sgd(c) => c.lr = lr,
            OptimizerConfig::AdamW(c) => c.lr = lr,
        }
        self
    }

    /// Which optimiser this builds.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            OptimizerConfig::Sgd(_) => OptimizerKind::Sgd,
            OptimizerConfig::AdamW(_) => OptimizerKind::AdamW,
        }
    }
}

/// One parameter with its group's settings resolved.
#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    lr_scale: f64,
    weight_decay: f64,
}

/// Flattens groups into slots, rejecting duplicate names and non-float parameters.
fn flatten(groups: Vec<ParamGroup>, default_wd: f64) -> Result<Vec<Slot>> {
    let mut seen = HashSet::new();
    let mut slots = Vec::new();
    for group in groups {
        if !(group.lr_scale.is_finite() && group.lr_scale >= 0.0) {
            return Err(TrainError::Config(format!(
                "parameter group `{}`: lr_scale must be finite and >= 0, got {}",
                group.name, group.lr_scale
            )));
        }
        let weight_decay = group.weight_decay.unwrap_or(default_wd);
        check_non_negative(
            &format!("group `{}` weight_decay", group.name),
            weight_decay,
        )?;
        for (name, var) in group.params {
            if !var.dtype().is_float() {
                return Err(TrainError::Config(format!(
                    "parameter `{name}` has dtype {:?}; only float parameters can be optimised",
                    var.dtype()
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(TrainError::Config(format!(
                    "parameter `{name}` appears in more than one group"
                )));
            }
            slots.push(Slot {
                name,
                var,
                lr_scale: group.lr_scale,
                weight_decay,
            });
        }
    }
    Ok(slots)
}

fn check_non_negative(what: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "{what} must be finite and >= 0, got {v}"
        )))
    }
}

/// Splits `"<param>.<slot>"` at the last dot (parameter names contain dots).
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('.')
}

/// Checks that a state tensor has its parameter's shape and converts it to the
/// parameter's dtype and device.
fn conform(key: &str, t: &Tensor, var: &Var) -> Result<Tensor> {
    if t.dims() != var.dims() {
        return Err(TrainError::OptimizerState {
            key: key.to_string(),
            message: format!(
                "shape {:?} does not match the parameter's {:?}",
                t.dims(),
                var.dims()
            ),
        });
    }
    Ok(t.to_dtype(var.dtype())?.to_device(var.device())?.copy()?)
}

/// Validates the kind and that every key names a known parameter and slot.
fn check_keys(
    state: &OptimizerState,
    kind: OptimizerKind,
    slots: &[Slot],
    allowed: &[&str],
) -> Result<()> {
    if state.kind != kind {
        return Err(TrainError::OptimizerState {
            key: "<kind>".into(),
            message: format!("state is for {}, optimizer is {}", state.kind, kind),
        });
    }
    let names: HashSet<&str> = slots.iter().map(|s| s.name.as_str()).collect();
    for key in state.tensors.keys() {
        let ok = split_key(key)
            .map(|(p, s)| names.contains(p) && allowed.contains(&s))
            .unwrap_or(false);
        if !ok {
            return Err(TrainError::OptimizerState {
                key: key.clone(),
                message: format!(
                    "not a state of this {kind} optimizer (expected `<parameter>.{{{}}}`)",
                    allowed.join(",")
                ),
            });
        }
    }
    Ok(())
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
        check_non_negative("lr", config.lr)?;
        check_non_negative("momentum", config.momentum)?;
        check_non_negative("dampening", config.dampening)?;
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            // Same rule as torch.optim.SGD's constructor.
            return Err(TrainError::Config(
                "Nesterov momentum requires a momentum > 0 and zero dampening".into(),
            ));
        }
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
}

impl AdamW {
    /// Builds AdamW over `groups`; groups without a weight decay use `config.weight_decay`.
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        check_non_negative("lr", config.lr)?;
        check_non_negative("eps", config.eps)?;
        for (what, b) in [("beta1", config.beta1), ("beta2", config.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(TrainError::Config(format!(
                    "{what} must be in [0, 1), got {b}"
                )));
            }
        }
        let slots = flatten(groups, config.weight_decay)?;
        let moments = vec![None; slots.len()];
        Ok(AdamW {
            config,
            slots,
            moments,
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
            let mut p = slot.var.as_detached_tensor();
            if slot.weight_decay != 0.0 {
                p = p.affine(1.0 - lr * slot.weight_decay, 0.0)?;
            }
            let prev = match state.take() {
                Some(m) => m,
                None => Moments {
                    step: 0,
                    exp_avg: g.zeros_like()?,
                    exp_avg_sq: g.zeros_like()?,
                },
            };
            let step = prev.step + 1;
            let exp_avg = lerp(&prev.exp_avg, &g, 1.0 - c.beta1)?;
            let exp_avg_sq = prev
                .exp_avg_sq
                .affine(c.beta2, 0.0)?
                .add(&g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?;
            // Step counts are whole numbers; PyTorch raises the betas to them in f64.
            let bias_correction1 = 1.0 - c.beta1.powf(step as f64);
            let bias_correction2 = 1.0 - c.beta2.powf(step as f64);
            let step_size = lr / bias_correction1;
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
    use super::*;

    fn var(name: &str, vals: &[f32]) -> (String, Var) {
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
        let values = |seed: f32, n: usize| -> Vec<f32> {
            (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
        };
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
    fn split_bias_no_decay_moves_only_biases() {
        let g = ParamGroup::new("all", vec![var("a.weight", &[1.0]), var("a.bias", &[2.0])])
            .with_lr_scale(0.5)
            .with_weight_decay(1e-2);
        let groups = g.split_bias_no_decay();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].params[0].0, "a.weight");
        assert_eq!(groups[0].weight_decay, Some(1e-2));
        assert_eq!(groups[1].name, "all.no_decay");
        assert_eq!(groups[1].params[0].0, "a.bias");
        assert_eq!(groups[1].weight_decay, Some(0.0));
        assert_eq!(groups[1].lr_scale, 0.5);
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

    #[test]
    fn config_serialises_with_kind_tag() {
        let c = OptimizerConfig::Sgd(SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..SgdConfig::default()
        });
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"kind\":\"sgd\""), "{json}");
        let back: OptimizerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
