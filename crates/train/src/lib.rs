//! The freeze-aware fine-tuning loop: [`fit`] trains a `finetune-model`
//! VGG on batches from a `finetune-data` loader, and around it the parts a
//! run is made of, each usable alone:
//!
//! - what trains: [`FreezePolicy`] (`head`, `classifier`, `blocks:K`, `all`)
//!   and gradual unfreezing ([`Unfreeze`]); a frozen prefix runs as a
//!   constant, its output cached when every epoch sees the same images;
//! - how: [`Sgd`] and [`AdamW`] with PyTorch's exact formulas and
//!   [`ParamGroup`]s, the learning rate over time ([`LrSchedule`]);
//! - what it measured: [`MetricsAccumulator`], [`evaluate`] (optionally over
//!   [`Tta`] views), [`EarlyStopping`], as text ([`report`], [`predictions_csv`],
//!   [`top_losses`]); before a run, [`lr_find`];
//! - what it leaves: the run directory ([`RunDir`]: weights, log, pictures,
//!   checkpoints to resume from exactly, what `eval` and `predict` read back).
//!
//! In the source: `fit.rs` is the loop, over a batch source (`source.rs`:
//! images or cached features, `features.rs`, `feature_cache.rs`), one
//! `step.rs` per batch shared with `evaluate.rs`; `early_stopping.rs`,
//! `run_dir/`, `optim/`, `schedule.rs`, `freeze.rs`, `metrics.rs`, `log.rs`,
//! `plot.rs`, `html.rs` (the report page), `lr_find.rs` (the learning-rate
//! range test), `tta.rs` (test-time augmentation) and `progress.rs` one
//! concern each.
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use std::sync::Arc;
//!
//! use candle_core::Device;
//! use finetune_data::transforms::Normalize;
//! use finetune_data::{synthetic, LoaderConfig, Pipeline, PrefetchLoader, Split, Stl10};
//! use finetune_model::{Vgg, VggConfig};
//! use finetune_train::{fit, FitConfig, FitData, FreezePolicy, RunDir, StopReason};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = std::env::temp_dir().join(format!("finetune-train-doc-{}", std::process::id()));
//! synthetic::write_stl10(&tmp, 8, 0, 0)?; // 8 training images, STL10 format
//! let train = Arc::new(Stl10::open(&tmp, Split::Train, None)?);
//! // A narrow VGG16 at 32x32 keeps the example fast.
//! let config = VggConfig { width_divisor: 16, classifier_hidden: 32, ..VggConfig::vgg16(10) };
//! let mut vgg = Vgg::new_random(config, 0, &Device::Cpu)?;
//!
//! let pipeline = Pipeline::training((96, 96), 32, Normalize::stl10(), false);
//! let loader_config = LoaderConfig { batch_size: 4, ..LoaderConfig::default() };
//! let data = FitData { train: PrefetchLoader::new(train, pipeline, loader_config), eval: None };
//! let mut recipe = FitConfig::recipe(1e-3);
//! recipe.epochs = 1;
//! recipe.freeze = FreezePolicy::Head; // the frozen rest runs once, cached
//! recipe.quiet = true;
//!
//! let run = RunDir::new(tmp.join("run")).lock()?; // this process's alone until dropped
//! let stop = Arc::new(AtomicBool::new(false)); // raise it (e.g. on Ctrl-C) to stop and save
//! let summary = fit(&mut vgg, &data, &recipe, &run, None, serde_json::Value::Null, stop)?;
//! assert_eq!(summary.stopped, StopReason::Completed);
//! assert!(run.file(finetune_train::BEST_WEIGHTS).is_file());
//! # std::fs::remove_dir_all(&tmp)?;
//! # Ok(())
//! # }
//! ```

mod early_stopping;
mod error;
mod evaluate;
mod feature_cache;
mod features;
mod fit;
mod freeze;
mod html;
mod log;
mod lr_find;
mod metrics;
mod optim;
mod plot;
mod progress;
mod report;
mod run_dir;
mod schedule;
mod source;
mod step;
mod tta;

pub use early_stopping::{EarlyStopping, Monitor};
pub use error::{Result, TrainError};
pub use evaluate::{evaluate, evaluate_with};
pub use fit::{fit, FitConfig, FitData, FitSummary, StopReason};
pub use freeze::{FreezePolicy, Unfreeze};
pub use html::REPORT_SECTIONS;
pub use log::{read_log, EpochRecord, LogRecord, RunLog};
pub use lr_find::{lr_find, LrFindConfig, LrFindStop, LrFinding};
pub use metrics::{ClassScores, ConfusionMatrix, Metrics, MetricsAccumulator};
pub use optim::{
    AdamW, AdamWConfig, Optimizer, OptimizerConfig, OptimizerKind, OptimizerState, ParamGroup, Sgd,
    SgdConfig,
};
pub use plot::{
    plot_confusion, plot_history, plot_image_grid, plot_lr_find, plot_top_losses, GridTile,
};
pub use report::{confusion_table, predictions_csv, report, top_losses, TopLoss};
pub use run_dir::{
    InputsCheck, ResumePoint, RunDir, RunInputs, RunLock, RunSetup, RunState, ARGS_FILE,
    BEST_WEIGHTS, CONFUSION_PNG, HISTORY_PNG, INPUTS_FILE, LAST_WEIGHTS, LOG_FILE, PREPROCESS_FILE,
    REPORT_HTML, RESUME_POINTER, STATE_FORMAT_VERSION, TOP_LOSSES_PNG,
};
pub use schedule::{LrSchedule, Schedule, Warmup, WarmupUnit};
pub use step::check_finite_loss;
pub use tta::Tta;
