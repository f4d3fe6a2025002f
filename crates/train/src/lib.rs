//! Building blocks of the freeze-aware fine-tuning loop.
//!
//! This crate holds the parts of training that need neither a dataset nor a
//! model: which parameters train ([`FreezePolicy`], [`Unfreeze`]), how they are
//! updated ([`Sgd`] and [`AdamW`] with PyTorch's exact formulas and
//! [`ParamGroup`]s), the learning rate over time ([`LrSchedule`]), what an
//! epoch measured ([`MetricsAccumulator`]), and how a run survives crashes
//! ([`checkpoint`]), is logged ([`RunLog`]) and drawn ([`plot_history`],
//! [`plot_confusion`], and [`plot_image_grid`] for input previews). The loop that wires `finetune-data` and
//! `finetune-model` together comes on top of these.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use finetune_train::{FreezePolicy, LrSchedule, Optimizer, ParamGroup, Schedule, Sgd, SgdConfig};
//!
//! # fn main() -> finetune_train::Result<()> {
//! let policy: FreezePolicy = "blocks:1".parse()?;
//! assert!(policy.is_trainable("features.28.weight"));
//! assert!(!policy.is_trainable("features.21.weight"));
//!
//! let w = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu)?)?;
//! let groups = ParamGroup::new("head", vec![("classifier.6.weight".into(), w.clone())])
//!     .split_bias_no_decay();
//! let mut sgd = Sgd::new(groups, SgdConfig { lr: 0.1, momentum: 0.9, weight_decay: 5e-4, ..Default::default() })?;
//!
//! let schedule = LrSchedule::new(Schedule::Cosine { t_max: 20, eta_min: 0.0 });
//! sgd.set_lr(schedule.lr(0.1, 0, 0, 40));
//! let loss = w.as_tensor().sqr()?.sum_all()?;
//! sgd.step(&loss.backward()?)?;
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
mod error;
mod evaluate;
mod features;
pub mod fit;
mod freeze;
pub mod log;
mod metrics;
mod nan;
mod optim;
mod plot;
mod progress;
mod schedule;

pub use checkpoint::{RngState, RunState};
pub use error::{Result, TrainError};
pub use fit::{
    evaluate, evaluate_with, fit, restore, resume_point, FitConfig, FitData, FitSummary, Monitor,
    ResumePoint, StopReason, BEST_WEIGHTS, LAST_WEIGHTS,
};
pub use freeze::{FirstTrainable, FreezePolicy, Unfreeze, VGG16_POOL_INDICES};
pub use log::{EpochRecord, LogRecord, RunLog};
pub use metrics::{ConfusionMatrix, Metrics, MetricsAccumulator};
pub use nan::check_finite_loss;
pub use optim::{
    AdamW, AdamWConfig, Optimizer, OptimizerConfig, OptimizerKind, OptimizerState, ParamGroup, Sgd,
    SgdConfig,
};
pub use plot::{
    plot_confusion, plot_history, plot_image_grid, GridTile, CONFUSION_PNG, HISTORY_PNG,
};
pub use schedule::{LrSchedule, Schedule, Warmup, WarmupUnit};
