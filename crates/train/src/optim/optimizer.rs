//! The [`Optimizer`] trait, which optimiser a state belongs to, and that
//! state as named tensors for checkpoints.

use std::collections::HashMap;
use std::fmt;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Which optimiser produced a state; stored in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// [`Sgd`](crate::Sgd).
    Sgd,
    /// [`AdamW`](crate::AdamW).
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
