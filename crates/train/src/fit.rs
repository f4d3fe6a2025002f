//! The training loop: epochs over a batch source (images through the
//! loader, or the frozen prefix's cached features), one step per batch,
//! evaluation, the log line, pictures and a checkpoint per epoch, early
//! stopping, gradual unfreezing, and resuming exactly where a run stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use finetune_data::PrefetchLoader;
use finetune_model::{Cut, Mode, Vgg, VggConfig};
use serde::{Deserialize, Serialize};

use crate::early_stopping::{EarlyStopping, Monitor};
use crate::evaluate::evaluate_source;
use crate::feature_cache::FeatureCache;
use crate::features::Features;
use crate::log::{EpochRecord, RunLog};
use crate::progress::Progress;
use crate::run_dir::{ResumePoint, RunDir, RunLock, RunState, STATE_FORMAT_VERSION};
use crate::source::{BatchSource, Next};
use crate::step::{check_finite_loss, forward_loss};
use crate::{
    FreezePolicy, LrSchedule, Metrics, MetricsAccumulator, Optimizer, OptimizerConfig, ParamGroup,
    Result, TrainError, Unfreeze,
};

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

    /// Refuses a configuration no run could use: no epochs, a rate or
    /// factor that is negative or not finite, an invalid schedule; and with
    /// `model`, a freeze policy naming more conv blocks than it has. [`fit`]
    /// calls it first; a caller can call it before writing anything.
    pub fn validate(&self, model: &VggConfig) -> Result<()> {
        if self.epochs == 0 {
            return Err(TrainError::Config("epochs must be at least 1".into()));
        }
        self.optimizer.validate()?;
        let blocks = model.pool_indices().len();
        let policies = [Some(self.freeze), self.unfreeze.map(|u| u.then)];
        for policy in policies.into_iter().flatten() {
            if let FreezePolicy::Blocks(k) = policy {
                if k > blocks {
                    return Err(TrainError::Config(format!(
                        "freeze policy `{policy}`: {} has {blocks} conv blocks, so K must be 0 to {blocks} (`all` trains everything)",
                        model.name()
                    )));
                }
            }
        }
        if let Some(u) = self.unfreeze {
            if !(u.lr_scale.is_finite() && u.lr_scale >= 0.0) {
                return Err(TrainError::Config(format!(
                    "unfreeze lr scale must be finite and >= 0, got {}",
                    u.lr_scale
                )));
            }
        }
        if !(self.backbone_lr_scale.is_finite() && self.backbone_lr_scale >= 0.0) {
            return Err(TrainError::Config(format!(
                "backbone lr scale must be finite and >= 0, got {}",
                self.backbone_lr_scale
            )));
        }
        self.schedule.validate()
    }

    /// The freeze policy in force during zero-based `epoch`.
    pub(crate) fn policy_at(&self, epoch: usize) -> FreezePolicy {
        match self.unfreeze {
            Some(u) => u.policy_at(epoch),
            None => self.freeze,
        }
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

/// Trains `model` on `data` under `config`, writing logs, pictures and
/// checkpoints into `run` (held by this process: [`RunDir::lock`]). With
/// `resume`, continues the run found there (the model must already be the
/// [`ResumePoint`]'s: see [`ResumePoint::restore`]).
/// `interrupt` is polled after every batch: when raised, the run writes a
/// checkpoint and returns [`StopReason::Interrupted`]. `extra` is logged with
/// the configuration (the data set, the weights, the command line).
pub fn fit(
    model: &mut Vgg,
    data: &FitData,
    config: &FitConfig,
    run: &RunLock,
    resume: Option<&ResumePoint>,
    extra: serde_json::Value,
    interrupt: Arc<AtomicBool>,
) -> Result<FitSummary> {
    config.validate(model.config())?;
    let class_names: Vec<String> = data.train.dataset().class_names().to_vec();
    let num_classes = model.config().num_classes;
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
    // Everything that can refuse the run does so before the log is touched.
    let start_epoch = resume.map_or(0, |point| point.state.epoch);
    let mut stage = Stage::new(model, config.policy_at(start_epoch), config)?;
    if let Some(point) = resume {
        point.load_optimizer(&mut *stage.optimizer, model)?;
    }
    let Start {
        epoch: start_epoch,
        mut skip_steps,
        mut global_step,
        mut history,
        mut log,
        mut stopping,
        mut partial,
    } = Start::of(run, config, resume, &logged_config)?;
    let cache = FeatureCache::new(config.cache_features, config.feature_cache_dir.clone());
    let progress = Progress::new(config.quiet);
    let snapshot = |epoch, step_in_epoch, global_step, stopping: &EarlyStopping, stage: &Stage| {
        run_state(
            &logged_config,
            epoch,
            step_in_epoch,
            global_step,
            stopping,
            &*stage.optimizer,
        )
    };
    let mut stopped = StopReason::Completed;
    // The latest evaluation's per-image probabilities, and when the report
    // page was last written.
    let (mut latest_rows, mut last_report) = (Vec::new(), None::<Instant>);
    let page = ReportPage {
        config: &logged_config,
        class_names: &class_names,
    };

    for epoch in start_epoch..config.epochs {
        let policy = config.policy_at(epoch);
        if policy != stage.policy {
            progress.println(&format!(
                "epoch {}: unfreezing `{policy}` (was `{}`)",
                epoch + 1,
                stage.policy
            ));
            stage = Stage::new(model, policy, config)?;
        }
        let started = Instant::now();
        let epoch_run = EpochRun {
            model,
            data,
            config,
            epoch,
            progress: &progress,
        };
        let trained = epoch_run.train(
            &mut stage,
            &cache,
            (skip_steps, partial.take()),
            &mut global_step,
            &interrupt,
        )?;
        skip_steps = 0;
        let train_seconds = started.elapsed().as_secs_f64();
        if let Some(step_in_epoch) = trained.interrupted_at {
            let mut state = snapshot(epoch, step_in_epoch, global_step, &stopping, &stage);
            state.partial_metrics = Some(trained.so_far);
            run.save_checkpoint(model, &state, &*stage.optimizer, false)?;
            stopped = StopReason::Interrupted;
            break;
        }
        let evaluated = epoch_run.evaluate(&mut stage, &cache)?;
        let (test, rows) = match evaluated {
            Some(e) => (Some(e.metrics), e.rows),
            None => (None, Vec::new()),
        };

        let record = EpochRecord {
            epoch: epoch + 1,
            epochs: config.epochs,
            lr: trained.lr,
            train: trained.so_far.finish(),
            test,
            seconds: started.elapsed().as_secs_f64(),
            images_per_sec: trained.images as f64 / train_seconds.max(1e-9),
            data_wait_seconds: trained.waited.as_secs_f64(),
        };
        log.epoch(&record)?;
        progress.println(&record.summary());
        let improved = stopping.update(&record);
        let confusion = record
            .test
            .as_ref()
            .unwrap_or(&record.train)
            .confusion
            .clone();
        history.push(record);
        let state = snapshot(epoch + 1, 0, global_step, &stopping, &stage);
        run.save_checkpoint(model, &state, &*stage.optimizer, improved)?;
        run.draw(&history, &confusion, &class_names)?;
        if !rows.is_empty() {
            latest_rows = rows;
        }
        // At most once a second: epochs over cached features take
        // milliseconds, and the page is for people.
        if last_report.is_none_or(|t| t.elapsed() >= REPORT_INTERVAL) {
            let status = format!("running: epoch {} of {} done", epoch + 1, config.epochs);
            page.write(run, data, (&history, &latest_rows), &status, true)?;
            last_report = Some(Instant::now());
        }
        if stopping.should_stop() && epoch + 1 < config.epochs {
            progress.println(&format!(
                "early stop: {:?} has not improved for {} epochs (best at epoch {})",
                stopping.monitor(),
                stopping.stale(),
                stopping.best().map_or(0, |b| b.0)
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
    let best_epoch = stopping.best().map(|b| b.0);
    let best_is_last =
        stopped != StopReason::Interrupted && best_epoch == history.last().map(|r| r.epoch);
    run.export_weights(model, best_is_last)?;
    let status = match stopped {
        StopReason::Completed => "finished".to_string(),
        StopReason::EarlyStopped => "stopped early (no improvement)".to_string(),
        StopReason::Interrupted => "interrupted (resume with --resume)".to_string(),
    };
    if !history.is_empty() {
        page.write(run, data, (&history, &latest_rows), &status, false)?;
    }
    Ok(FitSummary {
        history,
        best_epoch,
        stopped,
        run_dir: run.path().to_path_buf(),
    })
}

/// Where a run starts: its first epoch and batch, the steps already taken,
/// and its past (log, history, best epoch).
struct Start {
    epoch: usize,
    skip_steps: usize,
    global_step: u64,
    history: Vec<EpochRecord>,
    log: RunLog,
    stopping: EarlyStopping,
    /// The metrics of the batches trained before an interruption mid-epoch.
    partial: Option<MetricsAccumulator>,
}

impl Start {
    /// A new run's start, or where `resume` left off (refusing a resume
    /// whose configuration differs from `config` beyond its length).
    fn of(
        run: &RunDir,
        config: &FitConfig,
        resume: Option<&ResumePoint>,
        logged_config: &serde_json::Value,
    ) -> Result<Start> {
        let Some(point) = resume else {
            return Ok(Start {
                epoch: 0,
                skip_steps: 0,
                global_step: 0,
                history: Vec::new(),
                log: run.create_log(logged_config)?,
                stopping: EarlyStopping::new(config.monitor, config.patience),
                partial: None,
            });
        };
        let state = &point.state;
        let saved: FitConfig =
            serde_json::from_value(state.config["fit"].clone()).map_err(|source| {
                TrainError::Json {
                    path: point.state_file(),
                    source,
                }
            })?;
        if !saved.same_run_as(config) {
            return Err(TrainError::Checkpoint {
                path: point.state_file(),
                message: format!(
                    "the run was started with another configuration; resume with the same flags (only --epochs may change)\n  saved:   {}\n  current: {}",
                    serde_json::to_string(&saved).unwrap_or_default(),
                    serde_json::to_string(config).unwrap_or_default()
                ),
            });
        }
        let (log, history) = run.resume_log(state.epoch)?;
        Ok(Start {
            epoch: state.epoch,
            skip_steps: state.step_in_epoch,
            global_step: state.global_step,
            history,
            log,
            stopping: EarlyStopping::resumed(
                config.monitor,
                config.patience,
                state.best_epoch.zip(state.best_metric),
                state.epochs_without_improvement,
            ),
            partial: state.partial_metrics.clone(),
        })
    }
}

/// What a training epoch measured.
struct Trained {
    /// The epoch's metrics so far (all of it unless interrupted), those of
    /// the batches before a resume included.
    so_far: MetricsAccumulator,
    /// The learning rate of the epoch's last step.
    lr: f64,
    /// Images trained on.
    images: usize,
    /// Time spent waiting for the loader.
    waited: Duration,
    /// The batch after which the interrupt flag stopped the epoch, if it did.
    interrupted_at: Option<usize>,
}

/// One epoch of a run: what training and evaluation share.
struct EpochRun<'a> {
    model: &'a Vgg,
    data: &'a FitData,
    config: &'a FitConfig,
    epoch: usize,
    progress: &'a Progress,
}

impl EpochRun<'_> {
    /// Trains on every batch of the epoch from `skip` on (whose batches
    /// before measured `before`, when resumed mid-epoch), one optimiser step
    /// per batch, until the epoch ends or `interrupt` is raised.
    fn train(
        &self,
        stage: &mut Stage,
        cache: &FeatureCache,
        (skip, before): (usize, Option<MetricsAccumulator>),
        global_step: &mut u64,
        interrupt: &AtomicBool,
    ) -> Result<Trained> {
        let (model, config, epoch) = (self.model, self.config, self.epoch);
        let loader = &self.data.train;
        stage.prepare_train_features(model, loader, cache, self.progress)?;
        let source = BatchSource::training(stage.train_features.as_ref(), loader, stage.cut);
        let steps = source.len();
        let bar = self.progress.batches(epoch, config.epochs, steps);
        let mut metrics =
            before.unwrap_or_else(|| MetricsAccumulator::new(model.config().num_classes));
        let (mut lr, mut images, mut interrupted_at) = (0.0, 0, None);
        let optimizer = &mut stage.optimizer;
        let (cut, base_lr) = (stage.cut, stage.base_lr);
        let waited = source.for_each(model, epoch, skip, |batch| {
            lr = config.schedule.lr(base_lr, epoch, batch.step, steps);
            optimizer.set_lr(lr);
            if let Some(m) = config.schedule.momentum(epoch, batch.step, steps) {
                optimizer.set_momentum(m);
            }
            let mode = Mode::Train {
                dropout_seed: step_seed(config.seed, epoch, batch.step),
            };
            let output = forward_loss(model, &batch.input, cut, &batch.labels, &mode)?;
            check_finite_loss(output.loss_value, epoch, batch.step)?;
            optimizer.step(&output.loss.backward()?)?;
            *global_step += 1;
            output.record(&mut metrics, &batch.labels)?;
            images += batch.labels.len();
            bar.update(batch.step + 1, images, batch.waited);
            // After the last batch the epoch ends normally and the interrupt
            // is honoured once its checkpoint is written.
            if interrupt.load(Ordering::SeqCst) && batch.step + 1 < steps {
                interrupted_at = Some(batch.step + 1);
                return Ok(Next::Stop);
            }
            Ok(Next::Continue)
        })?;
        bar.finish();
        Ok(Trained {
            so_far: metrics,
            lr,
            images,
            waited,
            interrupted_at,
        })
    }

    /// The test metrics when this epoch is evaluated (every `eval_every`
    /// epochs and the last), from cached features when the prefix is frozen.
    /// Also returns each test image's dataset index and probabilities, for
    /// the report's top-loss grid.
    fn evaluate(&self, stage: &mut Stage, cache: &FeatureCache) -> Result<Option<Evaluated>> {
        let (model, config) = (self.model, self.config);
        let due = config.eval_every > 0
            && ((self.epoch + 1).is_multiple_of(config.eval_every)
                || self.epoch + 1 == config.epochs);
        let Some(loader) = self.data.eval.as_ref().filter(|_| due) else {
            return Ok(None);
        };
        let cut = model.first_trainable_cut();
        if cut != Cut::Input && stage.eval_features.is_none() {
            stage.eval_features = cache.features(model, loader, cut, "eval", self.progress)?;
        }
        let source = match &stage.eval_features {
            Some(features) => BatchSource::StoredFeatures(features),
            None => BatchSource::Images {
                loader,
                cut: Cut::Input,
            },
        };
        let mut rows = Vec::new();
        let classes = model.config().num_classes;
        let mut keep = |indices: &[usize], probs: &[f32]| {
            for (i, &index) in indices.iter().enumerate() {
                rows.push((index, probs[i * classes..(i + 1) * classes].to_vec()));
            }
            Ok(())
        };
        let metrics = evaluate_source(model, &source, self.progress, Some(&mut keep))?;
        Ok(Some(Evaluated { metrics, rows }))
    }
}

/// Shortest time between two rewrites of the report page during a run.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What the report page shows of every run: its configuration and classes.
struct ReportPage<'a> {
    config: &'a serde_json::Value,
    class_names: &'a [String],
}

impl ReportPage<'_> {
    /// Draws the top-loss grid from the latest evaluation's (dataset index,
    /// probabilities), when there is one, then writes the page with the
    /// epochs so far (reloading itself while `running`).
    fn write(
        &self,
        run: &RunLock,
        data: &FitData,
        (history, rows): (&[EpochRecord], &[(usize, Vec<f32>)]),
        status: &str,
        running: bool,
    ) -> Result<()> {
        if let Some(eval) = data.eval.as_ref().filter(|_| !rows.is_empty()) {
            run.draw_top_losses(eval.dataset().as_ref(), rows, self.class_names)?;
        }
        run.write_report(self.config, history, self.class_names, status, running)
    }
}

/// An evaluation's metrics and per-image probabilities (dataset index, softmax).
struct Evaluated {
    metrics: Metrics,
    rows: Vec<(usize, Vec<f32>)>,
}

/// The run state a checkpoint records.
fn run_state(
    logged_config: &serde_json::Value,
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    stopping: &EarlyStopping,
    optimizer: &dyn Optimizer,
) -> RunState {
    RunState {
        format_version: STATE_FORMAT_VERSION,
        epoch,
        step_in_epoch,
        global_step,
        best_metric: stopping.best().map(|b| b.1),
        best_epoch: stopping.best().map(|b| b.0),
        epochs_without_improvement: stopping.stale(),
        rng: None,
        partial_metrics: None,
        optimizer: optimizer.kind(),
        config: logged_config.clone(),
    }
}

/// A seed for one optimiser step's dropout masks, from the run seed, epoch and step.
pub(crate) fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
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
    let trainable = policy.trainable_in(model.config());
    model.set_trainable(trainable);
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
pub(crate) struct Stage {
    pub(crate) policy: FreezePolicy,
    pub(crate) cut: Cut,
    pub(crate) base_lr: f64,
    pub(crate) optimizer: Box<dyn Optimizer>,
    pub(crate) train_features: Option<Features>,
    pub(crate) eval_features: Option<Features>,
}

impl Stage {
    /// Computes (or loads) the frozen prefix's features of `loader`'s images
    /// once, when every epoch sees each image the same way.
    pub(crate) fn prepare_train_features(
        &mut self,
        model: &Vgg,
        loader: &PrefetchLoader,
        cache: &FeatureCache,
        progress: &Progress,
    ) -> Result<()> {
        if self.cut != Cut::Input && self.train_features.is_none() && !loader.pipeline().is_random()
        {
            self.train_features = cache.features(model, loader, self.cut, "train", progress)?;
        }
        Ok(())
    }

    pub(crate) fn new(model: &mut Vgg, policy: FreezePolicy, config: &FitConfig) -> Result<Stage> {
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
