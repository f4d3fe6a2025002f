//! The optimisers' shared bookkeeping: parameters with their group's
//! settings resolved, and the checks a loaded state must pass.

use std::collections::HashSet;

use candle_core::{Tensor, Var};

use super::groups::ParamGroup;
use super::optimizer::{OptimizerKind, OptimizerState};
use crate::{Result, TrainError};

/// One parameter with its group's settings resolved.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) var: Var,
    pub(super) lr_scale: f64,
    pub(super) weight_decay: f64,
}

/// Flattens groups into slots, rejecting duplicate names and non-float parameters.
pub(super) fn flatten(groups: Vec<ParamGroup>, default_wd: f64) -> Result<Vec<Slot>> {
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

pub(super) fn check_non_negative(what: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "{what} must be finite and >= 0, got {v}"
        )))
    }
}

/// Splits `"<param>.<slot>"` at the last dot (parameter names contain dots).
pub(super) fn split_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('.')
}

/// Checks that a state tensor has its parameter's shape and converts it to the
/// parameter's dtype and device.
pub(super) fn conform(key: &str, t: &Tensor, var: &Var) -> Result<Tensor> {
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
pub(super) fn check_keys(
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
