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
//! - `optimizer.rs`: the [`Optimizer`] trait and its state for checkpoints;
//! - `slots.rs`: what both optimisers keep per parameter and check on load;
//! - here: [`OptimizerConfig`], which builds either.

mod adamw;
mod adamw_cpu;
mod groups;
mod in_place;
mod optimizer;
mod sgd;
mod sgd_cpu;
mod slots;

use serde::{Deserialize, Serialize};

pub use adamw::{AdamW, AdamWConfig};
pub use groups::ParamGroup;
pub use optimizer::{Optimizer, OptimizerKind, OptimizerState};
pub use sgd::{Sgd, SgdConfig};

use crate::Result;

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
    /// Refuses values the optimiser's PyTorch constructor refuses.
    pub fn validate(&self) -> Result<()> {
        match self {
            OptimizerConfig::Sgd(c) => c.validate(),
            OptimizerConfig::AdamW(c) => c.validate(),
        }
    }

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
