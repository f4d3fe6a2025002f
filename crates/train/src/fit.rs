//! The training loop: epochs over a [`PrefetchLoader`], a frozen prefix run as
//! constants (and cached when it sees every image the same way), the rest
//! trained with autograd, evaluation, logs, pictures and crash-safe checkpoints.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use finetune_data::{Batch, PrefetchLoader};
use finetune_model::{Cut, Mode, Vgg};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, RngState, RunState, STATE_FORMAT_VERSION};
use crate::evaluate::{evaluate_features, evaluate_loader};
use crate::features::{FeatureCache, Features};
use crate::log::{read_log, EpochRecord, LogRecord, RunLog, LOG_FILE};
use crate::progress::Progress;
use crate::{
    check_finite_loss, plot_confusion, plot_history, FreezePolicy, LrSchedule, Metrics,
    MetricsAccumulator, Optimizer, OptimizerConfig, ParamGroup, Result, TrainError, Unfreeze,
    CONFUSION_PNG, HISTORY_PNG,
};

/// The user-facing weights after the latest epoch (torchvision names).
pub const LAST_WEIGHTS: &str = "last.safetensors";
/// The user-facing weights of the best epoch so far (torchvision names).
pub const BEST_WEIGHTS: &str = "best.safetensors";
/// The file naming the current resume checkpoint directory.
pub const RESUME_POINTER: &str = "resume.json";
/// In a checkpoint directory: the tensors of the layers that trained.
const CHANGED_FILE: &str = "changed.safetensors";
/// In a checkpoint directory: those tensors at the best epoch so far.
const BEST_CHANGED_FILE: &str = "best-changed.safetensors";

/// Which number decides the "best" epoch and early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Test top-1 accuracy (higher is better); falls back to train top-1 when
    /// the epoch was not evaluated.
    TestTop1,
    /// Test loss (lower is better); falls back to train loss.
    TestLoss,
    /// Training loss (lower is better).
    TrainLoss,
}

impl Monitor {
    /// The monitored value of an epoch, oriented so that higher is better.
    fn score(self, record: &EpochRecord) -> f64 {
        let test = record.test.as_ref();
        match self {
            Monitor::TestTop1 => test.map_or(record.train.top1, |m| m.top1),
            Monitor::TestLoss => -test.map_or(record.train.loss, |m| m.loss),
            Monitor::TrainLoss => -record.train.loss,
        }
    }
}

impl std::str::FromStr for Monitor {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "test_top1" | "top1" | "accuracy" => Ok(Monitor::TestTop1),
            "test_loss" => Ok(Monitor::TestLoss),
            "train_loss" => Ok(Monitor::TrainLoss),
            other => Err(TrainError::Config(format!(
                "unknown metric `{other}`: expected test_top1, test_loss or train_loss"
            ))),
        }
    }
}

/// Everything that decides how a run trains. Serialised into the run log and
/// the checkpoints; a resumed run must use the same values (but may extend
/// `epochs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Epochs in the whole run.
    pub epochs: usize,
    /// Evaluate on the eval loader every this many epochs (0 = never); the last
    /// epoch is always evaluated when an eval loader is given and this is not 0.
    pub eval_every: usize,
    /// Optimiser and its base learning rate.
    pub optimizer: OptimizerConfig,
    /// Learning rate over time.
    pub schedule: LrSchedule,
    /// Which layers train.
    pub freeze: FreezePolicy,
    /// Optional gradual unfreezing (head first, then `then`).
    pub unfreeze: Option<Unfreeze>,
    /// Learning-rate multiplier of `features.*` parameters (discriminative
    /// learning rates); 1 trains everything at the same rate.
    pub backbone_lr_scale: f64,
    /// Exempt biases from weight decay.
    pub no_decay_bias: bool,
    /// Seed of dropout masks (the loaders carry their own seeds).
    pub seed: u64,
    /// Compute the frozen prefix's output once per run when the inputs are
    /// the same every epoch.
    pub cache_features: bool,
    /// Directory for feature caches that outlive the run (None = memory only).
    pub feature_cache_dir: Option<PathBuf>,
    /// What decides the best epoch.
    pub monitor: Monitor,
    /// Stop after this many epochs without improvement of `monitor`.
    pub patience: Option<usize>,
    /// No progress bars and no per-epoch lines.
    pub quiet: bool,
}

impl FitConfig {
    /// The recipe's run: 20 epochs, SGD momentum 0.9 weight decay 5e-4 at
    /// `lr`, cosine over the run, everything trainable, evaluated each epoch.
    pub fn recipe(lr: f64) -> FitConfig {
        FitConfig {
            epochs: 20,
            eval_every: 1,
            optimizer: OptimizerConfig::Sgd(crate::SgdConfig {
                lr,
                momentum: 0.9,
                weight_decay: 5e-4,
                ..Default::default()
            }),
            schedule: LrSchedule::new(crate::Schedule::Cosine {
                t_max: 20,
                eta_min: 0.0,
            }),
            freeze: FreezePolicy::All,
            unfreeze: None,
            backbone_lr_scale: 1.0,
            no_decay_bias: false,
            seed: 0,
            cache_features: true,
            feature_cache_dir: None,
            monitor: Monitor::TestTop1,
            patience: None,
            quiet: false,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(TrainError::Config("epochs must be at least 1".into()));
        }
        if !(self.backbone_lr_scale.is_finite() && self.backbone_lr_scale >= 0.0) {
            return Err(TrainError::Config(format!(
                "backbone lr scale must be finite and >= 0, got {}",
                self.backbone_lr_scale
            )));
        }
        self.schedule.validate()
    }

    /// Whether two configurations describe the same run, up to its length.
    fn same_run_as(&self, other: &FitConfig) -> bool {
        let strip = |c: &FitConfig| FitConfig {
            epochs: 0,
            quiet: false,
            patience: None,
            ..c.clone()
        };
        strip(self) == strip(other)
    }
}

/// The data of a run: the training loader (its pipeline, batch size, shuffle
/// and seed are the run's) and an optional evaluation loader.
pub struct FitData {
    /// Batches to train on.
    pub train: PrefetchLoader,
    /// Batches to evaluate on (no augmentation, no shuffle), if any.
    pub eval: Option<PrefetchLoader>,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct FitSummary {
    /// Every epoch's record, including those of the run before a resume.
    pub history: Vec<EpochRecord>,
    /// The best epoch (1-based) by the monitored metric.
    pub best_epoch: Option<usize>,
    /// Why the run ended.
    pub stopped: StopReason,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// Why [`fit`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// `patience` epochs passed without improvement.
    EarlyStopped,
    /// The interrupt flag was raised; a checkpoint was written.
    Interrupted,
}

/// Where a run can be resumed from, as found in its run directory.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The tensors of every layer that trained (torchvision names); the rest
    /// of the network is the run's starting weights. See [`restore`].
    pub changed: PathBuf,
    /// The directory holding `state.json` and `optimizer.safetensors`.
    pub dir: PathBuf,
    /// The run state saved with them.
    pub state: RunState,
}

#[derive(Serialize, Deserialize)]
struct ResumePointer {
    dir: String,
}

/// Finds the latest complete checkpoint of the run in `run_dir`, or `None`
/// when the run has not written one yet.
pub fn resume_point(run_dir: &Path) -> Result<Option<ResumePoint>> {
    let pointer = run_dir.join(RESUME_POINTER);
    if !pointer.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&pointer).map_err(|e| TrainError::io(&pointer, e))?;
    let p: ResumePointer = serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
        path: pointer.clone(),
        source,
    })?;
    let dir = run_dir.join(&p.dir);
    let state = checkpoint::load_run_state(&dir)?;
    Ok(Some(ResumePoint {
        changed: dir.join(CHANGED_FILE),
        dir,
        state,
    }))
}

/// The model of a resume point: `start` (the run's starting weights, e.g.
/// loaded from the same file with the same configuration) with the layers
/// that trained replaced by the checkpoint's.
pub fn restore(start: &Vgg, point: &ResumePoint) -> Result<Vgg> {
    overlay(start, &point.changed)
}

/// `model`'s tensors with those stored in `file` put in their place, as a new model.
fn overlay(model: &Vgg, file: &Path) -> Result<Vgg> {
    let named = overlay_tensors(model, file)?;
    let (vgg, _) = Vgg::from_named_tensors(named, model.config().clone(), model.device())?;
    Ok(vgg)
}

/// `model`'s named tensors with those stored in `file` in their place.
fn overlay_tensors(model: &Vgg, file: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut stored = candle_core::safetensors::load(file, model.device())?;
    let named: Vec<(String, Tensor)> = model
        .to_named_tensors()
        .into_iter()
        .map(|(name, t)| {
            let t = stored.remove(&name).unwrap_or(t);
            (name, t)
        })
        .collect();
    if let Some(name) = stored.keys().next() {
        return Err(TrainError::Checkpoint {
            path: file.to_path_buf(),
            message: format!("tensor `{name}` is not part of the model"),
        });
    }
    Ok(named)
}

/// The tensors of every layer holding a trainable parameter (batch-norm
/// running statistics included): all that training changes.
fn changed_tensors(model: &Vgg) -> Vec<(String, Tensor)> {
    let layer = |name: &str| name.rsplit_once('.').map_or(name, |(l, _)| l).to_string();
    let trained: std::collections::HashSet<String> = model
        .trainable_parameters()
        .iter()
        .map(|(name, _)| layer(name))
        .collect();
    model
        .to_named_tensors()
        .into_iter()
        .filter(|(name, _)| trained.contains(&layer(name)))
        .collect()
}

/// A seed for one optimiser step's dropout masks, from the run seed, epoch and step.
fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    // splitmix64 over the three numbers: neighbouring steps get unrelated masks.
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Puts the model's trainable set under `policy` and builds the optimiser's
/// parameter groups: the backbone (`features.*`) at `backbone_lr_scale`, the
/// classifier at 1, biases optionally without weight decay.
fn param_groups(model: &mut Vgg, policy: FreezePolicy, config: &FitConfig) -> Vec<ParamGroup> {
    let pools = model.config().pool_indices();
    model.set_trainable(|name| policy.is_trainable_with(name, &pools));
    let (backbone, head): (Vec<_>, Vec<_>) = model
        .trainable_parameters()
        .into_iter()
        .partition(|(name, _)| name.starts_with("features."));
    let mut groups = Vec::new();
    for (name, params, scale) in [
        ("backbone", backbone, config.backbone_lr_scale),
        ("classifier", head, 1.0),
    ] {
        if params.is_empty() {
            continue;
        }
        let group = ParamGroup::new(name, params).with_lr_scale(scale);
        if config.no_decay_bias {
            groups.extend(group.split_bias_no_decay());
        } else {
            groups.push(group);
        }
    }
    groups
}

/// The parts of a run that change when the trainable set changes (gradual unfreezing).
struct Stage {
    policy: FreezePolicy,
    cut: Cut,
    base_lr: f64,
    optimizer: Box<dyn Optimizer>,
    train_features: Option<Features>,
    eval_features: Option<Features>,
}

impl Stage {
    fn new(model: &mut Vgg, policy: FreezePolicy, config: &FitConfig) -> Result<Stage> {
        let mut optimizer_config = config.optimizer;
        if let Some(u) = config.unfreeze.filter(|u| u.then == policy) {
            optimizer_config = optimizer_config.with_lr(optimizer_config.lr() * u.lr_scale);
        }
        let groups = param_groups(model, policy, config);
        if groups.is_empty() {
            return Err(TrainError::Config(format!(
                "freeze policy `{policy}` leaves nothing to train"
            )));
        }
        Ok(Stage {
            policy,
            cut: model.first_trainable_cut(),
            base_lr: optimizer_config.lr(),
            optimizer: optimizer_config.build(groups)?,
            train_features: None,
            eval_features: None,
        })
    }
}

/// Trains `model` on `data` under `config`, writing logs, pictures and
/// checkpoints into `run_dir`. With `resume`, continues the run found in
/// `run_dir` (the model must already be the [`ResumePoint`]'s: see [`restore`]).
/// `interrupt` is polled after every batch: when raised, the run writes a
/// checkpoint and returns [`StopReason::Interrupted`]. `extra` is logged with
/// the configuration (the data set, the weights, the command line).
pub fn fit(
    model: &mut Vgg,
    data: &FitData,
    config: &FitConfig,
    run_dir: &Path,
    resume: Option<&ResumePoint>,
    extra: serde_json::Value,
    interrupt: Arc<AtomicBool>,
) -> Result<FitSummary> {
    config.validate()?;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let device = model.device().clone();
    let num_classes = model.config().num_classes;
    let class_names: Vec<String> = data.train.dataset().class_names().to_vec();
    if class_names.len() != num_classes {
        return Err(TrainError::Config(format!(
            "the data set has {} classes but the model's head has {num_classes} outputs",
            class_names.len()
        )));
    }
    let logged_config = serde_json::json!({
        "fit": config,
        "train_pipeline": data.train.pipeline().to_string(),
        "eval_pipeline": data.eval.as_ref().map(|l| l.pipeline().to_string()),
        "batch_size": data.train.config().batch_size,
        "shuffle": data.train.config().shuffle,
        "data_seed": data.train.config().seed,
        "extra": extra,
    });

    // Where the run starts, and its past.
    let log_path = run_dir.join(LOG_FILE);
    let (start_epoch, mut skip_steps, mut global_step, mut best, mut stale, mut history, mut log) =
        match resume {
            Some(point) => {
                let saved: FitConfig = serde_json::from_value(point.state.config["fit"].clone())
                    .map_err(|source| TrainError::Json {
                        path: point.dir.join(checkpoint::STATE_FILE),
                        source,
                    })?;
                if !saved.same_run_as(config) {
                    return Err(TrainError::Checkpoint {
                        path: point.dir.join(checkpoint::STATE_FILE),
                        message: format!(
                        "the run was started with another configuration; resume with the same flags (only --epochs may change)\n  saved:   {}\n  current: {}",
                        serde_json::to_string(&saved).unwrap_or_default(),
                        serde_json::to_string(config).unwrap_or_default()
                    ),
                    });
                }
                let history: Vec<EpochRecord> = read_log(&log_path)?
                    .into_iter()
                    .filter_map(|r| match r {
                        LogRecord::Epoch(e) if e.epoch <= point.state.epoch => Some(e),
                        _ => None,
                    })
                    .collect();
                let log = RunLog::resume(&log_path, point.state.epoch)?;
                let best = point.state.best_epoch.zip(point.state.best_metric);
                (
                    point.state.epoch,
                    point.state.step_in_epoch,
                    point.state.global_step,
                    best,
                    point.state.epochs_without_improvement,
                    history,
                    log,
                )
            }
            None => (
                0,
                0,
                0,
                None,
                0,
                Vec::new(),
                RunLog::create(&log_path, &logged_config)?,
            ),
        };

    let policy_at = |epoch: usize| match config.unfreeze {
        Some(u) => u.policy_at(epoch),
        None => config.freeze,
    };
    let mut stage = Stage::new(model, policy_at(start_epoch), config)?;
    if let Some(point) = resume {
        let (_, state) = checkpoint::load_checkpoint(&point.dir, &device)?;
        stage.optimizer.load_state(&state)?;
    }
    let cache = FeatureCache::new(config.cache_features, config.feature_cache_dir.clone());
    let progress = Progress::new(config.quiet);
    let steps_per_epoch = data.train.len();
    let mut stopped = StopReason::Completed;

    for epoch in start_epoch..config.epochs {
        let policy = policy_at(epoch);
        if policy != stage.policy {
            progress.println(&format!(
                "epoch {}: unfreezing `{policy}` (was `{}`)",
                epoch + 1,
                stage.policy
            ));
            stage = Stage::new(model, policy, config)?;
        }
        let started = Instant::now();

        // Training.
        let frozen_prefix = stage.cut != Cut::Input;
        if frozen_prefix && stage.train_features.is_none() && !data.train.pipeline().is_random() {
            stage.train_features =
                cache.features(model, &data.train, stage.cut, "train", &progress)?;
        }
        let mut metrics = MetricsAccumulator::new(num_classes);
        let mut lr = 0.0;
        let mut wait = Duration::ZERO;
        let mut seen = 0usize;
        let bar = progress.batches(epoch, config.epochs, steps_per_epoch);
        let mut train_step = |step: usize, input: &Tensor, labels: &[u32]| -> Result<()> {
            lr = config
                .schedule
                .lr(stage.base_lr, epoch, step, steps_per_epoch);
            stage.optimizer.set_lr(lr);
            if let Some(m) = config.schedule.momentum(epoch, step, steps_per_epoch) {
                stage.optimizer.set_momentum(m);
            }
            let mode = Mode::Train {
                dropout_seed: step_seed(config.seed, epoch, step),
            };
            let logits = model.forward_range(input, stage.cut, Cut::Logits, &mode)?;
            let targets = Tensor::from_slice(labels, labels.len(), &device)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
            let loss_value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            check_finite_loss(loss_value, epoch, step)?;
            let grads = loss.backward()?;
            stage.optimizer.step(&grads)?;
            global_step += 1;
            let host: Vec<f32> = logits.detach().flatten_all()?.to_vec1()?;
            let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
            metrics.update(&host, &labels, loss_value)?;
            Ok(())
        };
        let mut interrupted_at = None;
        match &stage.train_features {
            Some(features) => {
                let order = data.train.epoch_order(epoch as u64);
                for (step, chunk) in order
                    .chunks(data.train.config().batch_size)
                    // `len()` already leaves out a short last batch under drop_last.
                    .take(steps_per_epoch)
                    .enumerate()
                    .skip(skip_steps)
                {
                    let (input, labels) = features.gather(chunk)?;
                    train_step(step, &input, &labels)?;
                    seen += chunk.len();
                    bar.update(step + 1, seen, Duration::ZERO);
                    // After the last batch the epoch ends normally and the
                    // interrupt is honoured once its checkpoint is written.
                    if interrupt.load(Ordering::SeqCst) && step + 1 < steps_per_epoch {
                        interrupted_at = Some(step + 1);
                        break;
                    }
                }
            }
            None => {
                let mut batches = data.train.epoch(epoch as u64);
                let mut step = 0;
                while let Some(batch) = batches.next() {
                    let batch = batch?;
                    if step >= skip_steps {
                        let input = batch_tensor(&batch, &device)?;
                        let input = if frozen_prefix {
                            model
                                .forward_range(&input, Cut::Input, stage.cut, &Mode::Eval)?
                                .detach()
                        } else {
                            input
                        };
                        train_step(step, &input, batch.labels())?;
                        seen += batch.len();
                    }
                    wait = batches.wait_time();
                    bar.update(step + 1, seen, wait);
                    step += 1;
                    if interrupt.load(Ordering::SeqCst) && step < steps_per_epoch {
                        interrupted_at = Some(step);
                        break;
                    }
                }
            }
        }
        bar.finish();
        skip_steps = 0;
        let train_seconds = started.elapsed().as_secs_f64();

        if let Some(step_in_epoch) = interrupted_at {
            let state = run_state(
                config,
                &logged_config,
                epoch,
                step_in_epoch,
                global_step,
                best,
                stale,
                &*stage.optimizer,
            );
            save_resume(run_dir, model, &state, &*stage.optimizer, false)?;
            stopped = StopReason::Interrupted;
            break;
        }

        // Evaluation.
        let evaluate_now = config.eval_every > 0
            && ((epoch + 1) % config.eval_every == 0 || epoch + 1 == config.epochs);
        let test = match (&data.eval, evaluate_now) {
            (Some(eval), true) => {
                let eval_cut = model.first_trainable_cut();
                if eval_cut != Cut::Input && stage.eval_features.is_none() {
                    stage.eval_features =
                        cache.features(model, eval, eval_cut, "eval", &progress)?;
                }
                Some(match &stage.eval_features {
                    Some(f) => evaluate_features(model, f, eval_cut, num_classes, &progress)?,
                    None => evaluate_loader(model, eval, num_classes, &progress, |_, _| Ok(()))?,
                })
            }
            _ => None,
        };

        let record = EpochRecord {
            epoch: epoch + 1,
            epochs: config.epochs,
            lr,
            train: metrics.finish(),
            test,
            seconds: started.elapsed().as_secs_f64(),
            images_per_sec: seen as f64 / train_seconds.max(1e-9),
            data_wait_seconds: wait.as_secs_f64(),
        };
        log.epoch(&record)?;
        progress.println(&record.summary());

        // Best epoch, checkpoints, pictures.
        let score = config.monitor.score(&record);
        let improved = best.is_none_or(|(_, b)| score > b);
        if improved {
            best = Some((epoch + 1, score));
            stale = 0;
        } else {
            stale += 1;
        }
        history.push(record);
        let state = run_state(
            config,
            &logged_config,
            epoch + 1,
            0,
            global_step,
            best,
            stale,
            &*stage.optimizer,
        );
        save_resume(run_dir, model, &state, &*stage.optimizer, improved)?;
        plot_history(&run_dir.join(HISTORY_PNG), &history)?;
        let last = history.last().map(|r| r.test.as_ref().unwrap_or(&r.train));
        if let Some(m) = last {
            plot_confusion(&run_dir.join(CONFUSION_PNG), &m.confusion, &class_names)?;
        }
        if config.patience.is_some_and(|p| stale >= p) && epoch + 1 < config.epochs {
            progress.println(&format!(
                "early stop: {:?} has not improved for {stale} epochs (best at epoch {})",
                config.monitor,
                best.map_or(0, |b| b.0)
            ));
            stopped = StopReason::EarlyStopped;
            break;
        }
        if interrupt.load(Ordering::SeqCst) {
            stopped = StopReason::Interrupted;
            break;
        }
    }

    // After an interruption mid-epoch the model has moved past every
    // evaluated epoch, the best included.
    let best_is_last =
        stopped != StopReason::Interrupted && best.map(|b| b.0) == history.last().map(|r| r.epoch);
    export_weights(run_dir, model, best_is_last)?;
    Ok(FitSummary {
        history,
        best_epoch: best.map(|b| b.0),
        stopped,
        run_dir: run_dir.to_path_buf(),
    })
}

/// A training batch as a `[N, C, H, W]` tensor on `device`.
pub fn batch_tensor(batch: &Batch, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        batch.images(),
        batch.shape().to_vec(),
        device,
    )?)
}

pub(crate) fn model_err(e: finetune_model::ModelError) -> TrainError {
    TrainError::Model(e)
}

#[allow(clippy::too_many_arguments)] // one flat record of the loop's state; a struct would only rename it
fn run_state(
    config: &FitConfig,
    logged_config: &serde_json::Value,
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    best: Option<(usize, f64)>,
    stale: usize,
    optimizer: &dyn Optimizer,
) -> RunState {
    RunState {
        format_version: STATE_FORMAT_VERSION,
        epoch,
        step_in_epoch,
        global_step,
        best_metric: best.map(|b| b.1),
        best_epoch: best.map(|b| b.0),
        epochs_without_improvement: stale,
        // Every random draw is a pure function of (seed, epoch, step): the
        // generator itself carries no state worth saving beyond the seed.
        rng: RngState {
            seed: config.seed,
            stream: 0,
            word_pos: 0,
        },
        optimizer: optimizer.kind(),
        config: logged_config.clone(),
    }
}

/// Writes a complete resume checkpoint into a fresh directory: the tensors
/// of the layers that trained (small when little trains: a head-only epoch
/// does not rewrite 528 MB of frozen weights), those of the best epoch so
/// far, the optimiser and the run state. Then points `resume.json` at it and
/// removes the previous one: a crash at any moment leaves a complete
/// checkpoint behind the pointer.
fn save_resume(
    run_dir: &Path,
    model: &Vgg,
    state: &RunState,
    optimizer: &dyn Optimizer,
    improved: bool,
) -> Result<()> {
    let previous = resume_point(run_dir)?;
    let name = format!("checkpoint-{:08}", state.global_step);
    let dir = run_dir.join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    checkpoint::write_safetensors_atomic(&dir.join(CHANGED_FILE), &changed_tensors(model), None)?;
    let best_before = previous.map(|p| p.dir.join(BEST_CHANGED_FILE));
    match best_before.filter(|best| !improved && best.is_file()) {
        Some(best) => checkpoint::link_atomic(&best, &dir.join(BEST_CHANGED_FILE))?,
        None => checkpoint::link_atomic(&dir.join(CHANGED_FILE), &dir.join(BEST_CHANGED_FILE))?,
    }
    checkpoint::save_checkpoint(&dir, state, &optimizer.state()?)?;
    let pointer = serde_json::to_vec(&ResumePointer { dir: name.clone() }).map_err(|source| {
        TrainError::Json {
            path: run_dir.join(RESUME_POINTER),
            source,
        }
    })?;
    checkpoint::write_file_atomic(&run_dir.join(RESUME_POINTER), &pointer)?;
    // Older checkpoints are now unreachable; failing to delete one is harmless.
    if let Ok(entries) = std::fs::read_dir(run_dir) {
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with("checkpoint-") && file_name != name {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Writes the full `last.safetensors` (the model as it is) and
/// `best.safetensors` (with the best epoch's trained layers; a link to the
/// former when the last epoch was the best), in torchvision's names, once the
/// run stops.
fn export_weights(run_dir: &Path, model: &Vgg, best_is_last: bool) -> Result<()> {
    let Some(point) = resume_point(run_dir)? else {
        return Ok(());
    };
    let last = run_dir.join(LAST_WEIGHTS);
    model.save_safetensors(&last).map_err(model_err)?;
    let best = run_dir.join(BEST_WEIGHTS);
    if best_is_last {
        return checkpoint::link_atomic(&last, &best);
    }
    let named = overlay_tensors(model, &point.dir.join(BEST_CHANGED_FILE))?;
    checkpoint::write_safetensors_atomic(&best, &named, None)
}

/// Metrics of `model` on `loader` in eval mode, for `finetune eval`.
pub fn evaluate(model: &Vgg, loader: &PrefetchLoader, quiet: bool) -> Result<Metrics> {
    let progress = Progress::new(quiet);
    evaluate_loader(
        model,
        loader,
        model.config().num_classes,
        &progress,
        |_, _| Ok(()),
    )
}

/// Like [`evaluate`], also handing `on_batch` each batch's dataset indices and
/// softmax probabilities (`[batch * num_classes]`, row-major), for prediction
/// files. An error from `on_batch` stops the evaluation and is returned.
pub fn evaluate_with(
    model: &Vgg,
    loader: &PrefetchLoader,
    quiet: bool,
    on_batch: impl FnMut(&[usize], &[f32]) -> Result<()>,
) -> Result<Metrics> {
    let progress = Progress::new(quiet);
    evaluate_loader(
        model,
        loader,
        model.config().num_classes,
        &progress,
        on_batch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_seeds_differ_across_steps_and_epochs() {
        let a = step_seed(0, 0, 0);
        assert_ne!(a, step_seed(0, 0, 1));
        assert_ne!(a, step_seed(0, 1, 0));
        assert_ne!(a, step_seed(1, 0, 0));
        assert_eq!(a, step_seed(0, 0, 0));
    }
}
