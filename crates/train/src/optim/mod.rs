//! Optimisers with PyTorch's exact update rules, parameter groups, and
//! exportable state.
//!
//! candle-nn's `SGD` has no momentum or weight decay and its optimisers have no
//! parameter groups, so both optimisers are written here. Updates run on
//! detached tensors and land in the parameters through [`Var::set`], so an
//! optimiser step never grows an autograd graph.

//!
//! - `groups.rs`: [`ParamGroup`], the parameter groups;
//! - `sgd.rs`: [`Sgd`] (and `sgd_cpu.rs`, its in-place CPU update);
//! - `adamw.rs`: [`AdamW`];
//! - here: the [`Optimizer`] trait, its state for checkpoints and
//!   [`OptimizerConfig`], which builds either.

mod adamw;
mod groups;
mod sgd;
mod sgd_cpu;

use std::collections::{HashMap, HashSet};
use std::fmt;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

pub use adamw::{AdamW, AdamWConfig};
pub use groups::ParamGroup;
pub use sgd::{Sgd, SgdConfig};

use crate::{Result, TrainError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
