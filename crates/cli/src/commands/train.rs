//! `finetune train`: flags in, `finetune_train::fit` out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::builder::TypedValueParser;
use clap::{Args, ValueEnum};
use finetune_data::{fingerprint, DataLayout, Dataset};
use finetune_data::{DataOptions, LoaderConfig, Pipeline, PrefetchLoader, Split};
use finetune_files::sha256_file;
use finetune_model::{select_device, set_precision, Precision, Vgg, VggConfig};
use finetune_train::{
    fit, AdamWConfig, FitConfig, FitData, FreezePolicy, InputsCheck, LrSchedule, Monitor,
    OptimizerConfig, OptimizerKind, RunDir, RunInputs, RunSetup, Schedule, SgdConfig, StopReason,
    Unfreeze, Warmup, WarmupUnit, ARGS_FILE, BEST_WEIGHTS, CONFUSION_PNG, HISTORY_PNG, INPUTS_FILE,
    LAST_WEIGHTS, LOG_FILE, REPORT_HTML,
};
use serde::{Deserialize, Serialize};

use super::{
    as_text, bounded, check_batch_fits, check_image_size, folder_roots, image_side, open_split,
    resolved, Statistics,
};

/// The recipe's run length.
const DEFAULT_EPOCHS: usize = 20;

pub const ABOUT: &str = "\
Fine-tune a pretrained VGG on STL10 or your own image folder.

The defaults reproduce the recipe: VGG16 from ImageNet weights, a new 10-class
head (PyTorch's init), STL10's 5 000 training images with RandomCrop(96,
padding 4) and a horizontal flip, normalised with STL10's statistics; batch
128, 20 epochs, every layer trained with SGD (momentum 0.9, weight decay 5e-4)
under a cosine schedule, evaluated on the 8 000 test images after each epoch.

--data is the folder holding stl10_binary/ (what `finetune fetch stl10`
prints), or an image folder: root/<class>/<image> (split into train and test
by seed), or root/train/<class>/... with root/test/ (or root/val/).
--weights is a safetensors or PyTorch .pth file with torchvision or timm names
(`finetune fetch vgg16` prints the cached one). A head of another size is
replaced by a new one.

The run directory (--out) must be new or empty (--overwrite replaces a run
in it); it is locked while the run trains. It ends up with last.safetensors
and best.safetensors (torchvision names: PyTorch loads them with
vgg16(num_classes=N)), report.html (everything on one page, refreshed each
epoch), log.jsonl (the configuration, then one JSON record per epoch),
history.png, confusion.png, top-losses.png, and a checkpoint to resume from.
Ctrl-C finishes the current batch, saves, and tells you how to resume;
`--resume RUN_DIR` continues exactly where the run stopped, refusing weights
or data that changed since.

Only the head: --train head --no-augment trains in seconds per epoch on a CPU,
because the frozen network's features are computed once and reused.";

/// Flags of `finetune train`.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Folder holding stl10_binary/, or an image folder root.
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Pretrained (or fine-tuned) weights: .safetensors or .pth.
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub weights: Option<PathBuf>,
    /// Run directory for weights, logs, pictures and checkpoints.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory with the flags it was started with
    /// (only --epochs and --quiet may change).
    #[arg(long, value_name = "RUN_DIR")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,

    /// Passes over the training set [default: 20].
    #[arg(long, value_parser = bounded(1..=100_000))]
    pub epochs: Option<usize>,
    /// Training images per step.
    #[arg(long, default_value_t = 128, value_parser = bounded(1..=MAX_BATCH))]
    pub batch_size: usize,
    /// Images per evaluation batch (no gradients, so larger fits).
    #[arg(long, default_value_t = 256, value_parser = bounded(1..=MAX_BATCH))]
    pub eval_batch_size: usize,
    /// Evaluate on the test split every N epochs; 0 never evaluates.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub eval_every: usize,

    /// What trains: `head` (the new last layer; the rest is frozen),
    /// `classifier` (the three fully connected layers), `blocks:K` (the last K
    /// conv blocks plus the classifier) or `all`.
    #[arg(long = "train", value_name = "WHAT", default_value = "all")]
    pub train: FreezePolicy,
    /// Gradual unfreezing: train only the head for N epochs first, then what
    /// --train says, at --lr times --unfreeze-lr-scale.
    #[arg(long, value_name = "N")]
    pub unfreeze_after: Option<usize>,
    /// Learning-rate factor once unfrozen (see --unfreeze-after).
    #[arg(long, default_value_t = 0.1)]
    pub unfreeze_lr_scale: f64,
    /// Learning-rate factor of the convolutional layers relative to the
    /// classifier (discriminative learning rates); 1 trains all alike.
    #[arg(long, default_value_t = 1.0)]
    pub backbone_lr_scale: f64,

    /// Optimiser: `sgd` or `adamw` (PyTorch's update rules).
    #[arg(long, default_value = "sgd", value_parser = optimizer_kind())]
    pub optimizer: OptimizerKind,
    /// Base learning rate. The recipe's companion article uses 1e-5, which
    /// barely moves in 20 epochs; 1e-3 is a sane SGD default for fine-tuning.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// SGD momentum (AdamW: beta1).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay (SGD: L2 added to the gradient; AdamW: decoupled).
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Do not decay biases.
    #[arg(long)]
    pub no_decay_bias: bool,
    /// Learning-rate schedule: `none`, `step` (x --gamma every --step-size
    /// epochs), `cosine` (PyTorch's CosineAnnealingLR over the run) or
    /// `onecycle` (PyTorch's OneCycleLR with --lr as the peak).
    #[arg(long, value_enum, default_value_t = ScheduleKind::Cosine)]
    pub schedule: ScheduleKind,
    /// Epochs between decays of the step schedule.
    #[arg(long, default_value_t = 7)]
    pub step_size: usize,
    /// Decay factor of the step schedule.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Linear warm-up over this many epochs.
    #[arg(long, value_name = "N")]
    pub warmup_epochs: Option<usize>,

    /// Train without RandomCrop and the flip (also lets a frozen network's
    /// features be computed once and reused).
    #[arg(long)]
    pub no_augment: bool,
    /// Visit training images in the same order every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Dropout probability of the classifier's two dropout layers.
    #[arg(long, value_name = "P", default_value_t = 0.5)]
    pub dropout: f32,
    /// Seed of the head's init, the shuffle, augmentation and dropout: the
    /// same seed gives the same run on the CPU whatever the thread count.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Stop when --monitor has not improved for N epochs.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// What picks best.safetensors and drives --patience: test_top1,
    /// test_loss or train_loss.
    #[arg(long, default_value = "test_top1")]
    pub monitor: Monitor,
    /// Recompute frozen features every epoch instead of caching them.
    #[arg(long)]
    pub no_cache_features: bool,
    /// Keep cached features in this directory so a later run with the same
    /// weights, data and transforms starts at once.
    #[arg(long, value_name = "DIR")]
    pub feature_cache: Option<PathBuf>,

    /// Where to compute: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// How the CPU multiplies in convolutions and linear layers: f32 (the
    /// default: PyTorch's numbers) or bf16, on CPUs with AVX512_BF16 only
    /// (AMD Zen 4 and later, Intel Sapphire Rapids and later).
    ///
    /// bf16 rounds both operands of every matrix product to bfloat16 (8
    /// significant bits) and sums the products in f32; weights, gradients
    /// and the optimiser stay f32.
    ///
    /// Speed, measured on a 2-core AMD Zen 4 (VGG16, 96x96, 2 threads): a
    /// training step 1.2-1.5x f32's with every layer training and 1.5x
    /// head only at batch 16, 1.5x and 1.6x at batch 64; 4 epochs of 500
    /// images end to end took 160 s instead of 194 s.
    ///
    /// Drift, on that run (STL10-format images and random weights made by
    /// the tests: no real data could be downloaded there): each epoch's
    /// train and test losses stayed within 5e-4 of f32's (relative), while
    /// the weights moved apart by up to 28% of what training changed them
    /// (largest difference against largest update, per tensor). Results are
    /// no longer PyTorch's to the digit: use f32 to reproduce a PyTorch
    /// run, bf16 for speed.
    #[arg(long, default_value = "f32", value_parser = precision_kind())]
    #[serde(with = "as_text", default)]
    pub precision: Precision,
    /// Side of the square images fed to the network (STL10 is 96; larger is
    /// slower and closer to ImageNet's 224).
    #[arg(long, value_name = "N", default_value_t = 96, value_parser = image_side())]
    pub image_size: usize,
    /// Size of the new head [default: the data set's class count].
    #[arg(long, value_name = "N", value_parser = bounded(1..=100_000))]
    pub num_classes: Option<usize>,
    /// Architecture: vgg11, vgg13, vgg16, vgg19, optionally with _bn.
    #[arg(long, default_value = "vgg16")]
    #[serde(with = "as_text")]
    pub arch: VggConfig,
    /// Normalisation statistics: stl10 (the recipe's) or imagenet.
    #[arg(long, value_enum, default_value_t = Statistics::Stl10)]
    pub normalize: Statistics,
    /// Train on one of STL10's ten predefined 1 000-image folds (0..9).
    #[arg(long, value_name = "K")]
    pub fold: Option<usize>,
    /// Share of each class held out for testing in a folder without a split.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f32,
    /// Skip images that cannot be decoded (each is named) instead of failing.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// Divide every conv width by this (tests and quick experiments with a
    /// narrow network; the weights must match).
    #[arg(long, default_value_t = 1, hide = true, value_parser = bounded(1..=64))]
    pub width_divisor: usize,
    /// Width of the classifier's hidden layers (4096 in torchvision's VGG).
    #[arg(long, default_value_t = 4096, hide = true, value_parser = bounded(1..=65_536))]
    pub classifier_hidden: usize,
    /// The run length the schedule was built for (differs from --epochs only
    /// when a resumed run is extended).
    #[arg(skip)]
    #[serde(skip)]
    pub schedule_epochs: Option<usize>,
    /// No progress bars or per-epoch lines (errors and the final summary only).
    #[arg(long, short)]
    #[serde(skip)]
    pub quiet: bool,
    /// Train into a non-empty --out anyway: the files of the run there are
    /// removed first (anything else in it is left alone).
    #[arg(long)]
    #[serde(skip)]
    pub overwrite: bool,
}

/// The most images a batch may hold.
const MAX_BATCH: u64 = 65_536;

/// The flags `--resume` may be given with: the rest are the run's.
const RESUME_FLAGS: [&str; 3] = ["--resume", "--epochs", "--quiet"];

/// `--optimizer`: the names `OptimizerKind` parses, listed in `--help`.
fn optimizer_kind() -> impl TypedValueParser<Value = OptimizerKind> {
    clap::builder::PossibleValuesParser::new(["sgd", "adamw"])
        .try_map(|name| name.parse::<OptimizerKind>())
}

/// `--precision`: the names `Precision` parses, listed in `--help`.
fn precision_kind() -> impl TypedValueParser<Value = Precision> {
    clap::builder::PossibleValuesParser::new(["f32", "bf16"])
        .try_map(|name| name.parse::<Precision>())
}

/// The learning-rate schedules `--schedule` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base learning rate throughout.
    None,
    /// x --gamma every --step-size epochs (PyTorch's StepLR).
    Step,
    /// PyTorch's CosineAnnealingLR over the run.
    Cosine,
    /// PyTorch's OneCycleLR with --lr as the peak.
    Onecycle,
}

impl TrainArgs {
    /// Sets `--precision` for this process, refusing bf16 off the CPU or on
    /// a CPU without AVX512_BF16.
    pub(crate) fn apply_precision(&self, device: &Device) -> Result<()> {
        if self.precision == Precision::Bf16 && !device.is_cpu() {
            bail!(
                "--precision bf16 is for the CPU; on {device:?} the network runs in f32 \
                 (drop --precision, or add --device cpu)"
            );
        }
        set_precision(self.precision).context("--precision")
    }

    /// The saved flags of the run in `dir`, with this command's --epochs and --quiet.
    pub(crate) fn resumed(&self, dir: &Path) -> Result<TrainArgs> {
        let run = RunDir::new(dir);
        if !run.file(ARGS_FILE).is_file() {
            bail!(
                "cannot resume {}: no {ARGS_FILE} there (is it a run directory of `finetune train`?)",
                dir.display()
            );
        }
        let mut saved: TrainArgs = run
            .read_args()
            .with_context(|| format!("{} is not a valid run configuration", dir.display()))?;
        // The schedule keeps the length the run started with; only the
        // number of epochs run changes.
        saved.schedule_epochs = Some(saved.epochs.unwrap_or(DEFAULT_EPOCHS));
        saved.epochs = self.epochs.or(saved.epochs);
        saved.quiet = self.quiet;
        saved.resume = Some(dir.to_path_buf());
        saved.out = Some(dir.to_path_buf());
        Ok(saved)
    }

    /// How `--data` is opened: the image size, fold, folder split and
    /// unreadable-image policy.
    pub(crate) fn data_options(&self) -> DataOptions {
        DataOptions {
            image_size: self.image_size,
            fold: self.fold,
            test_fraction: self.test_fraction,
            split_seed: self.seed,
            skip_unreadable: self.skip_unreadable,
        }
    }

    /// The network these flags build, with a head of `num_classes`.
    pub(crate) fn vgg_config(&self, num_classes: usize) -> VggConfig {
        VggConfig {
            num_classes,
            dropout: self.dropout,
            width_divisor: self.width_divisor,
            classifier_hidden: self.classifier_hidden,
            seed: self.seed,
            ..self.arch.clone()
        }
    }

    /// The training loader over `train_set`: these flags' batch size,
    /// shuffle, seed and augmentation.
    pub(crate) fn train_loader(&self, train_set: Arc<dyn Dataset>) -> PrefetchLoader {
        let pipeline = Pipeline::training(
            train_set.image_dims(),
            self.image_size,
            self.normalize.normalize(),
            !self.no_augment,
        );
        PrefetchLoader::new(
            train_set,
            pipeline,
            self.loader_config(self.batch_size, !self.no_shuffle),
        )
    }

    fn loader_config(&self, batch_size: usize, shuffle: bool) -> LoaderConfig {
        LoaderConfig {
            batch_size,
            shuffle,
            seed: self.seed,
            ..LoaderConfig::default()
        }
    }

    pub(crate) fn fit_config(&self) -> Result<FitConfig> {
        let epochs = self.epochs.unwrap_or(DEFAULT_EPOCHS);
        let schedule_epochs = self.schedule_epochs.unwrap_or(epochs);
        let optimizer = match self.optimizer {
            OptimizerKind::AdamW => OptimizerConfig::AdamW(AdamWConfig {
                lr: self.lr,
                beta1: self.momentum,
                weight_decay: self.weight_decay,
                ..AdamWConfig::default()
            }),
            OptimizerKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                lr: self.lr,
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
                ..SgdConfig::default()
            }),
        };
        let schedule = match self.schedule {
            ScheduleKind::None => Schedule::Constant,
            ScheduleKind::Step => Schedule::Step {
                step_size: self.step_size,
                gamma: self.gamma,
            },
            ScheduleKind::Onecycle => Schedule::one_cycle(schedule_epochs),
            ScheduleKind::Cosine => Schedule::Cosine {
                t_max: schedule_epochs,
                eta_min: 0.0,
            },
        };
        let mut schedule = LrSchedule::new(schedule);
        schedule.warmup = self.warmup_epochs.map(|length| Warmup {
            length,
            unit: WarmupUnit::Epochs,
            // PyTorch LinearLR's default start_factor.
            start_factor: 1.0 / 3.0,
        });
        let unfreeze = self.unfreeze_after.map(|head_epochs| Unfreeze {
            head_epochs,
            then: self.train,
            lr_scale: self.unfreeze_lr_scale,
        });
        if unfreeze.is_some() && self.train == FreezePolicy::Head {
            bail!("--unfreeze-after needs --train to say what to unfreeze (e.g. --train all)");
        }
        Ok(FitConfig {
            epochs,
            eval_every: self.eval_every,
            optimizer,
            schedule,
            freeze: if unfreeze.is_some() {
                FreezePolicy::Head
            } else {
                self.train
            },
            unfreeze,
            backbone_lr_scale: self.backbone_lr_scale,
            no_decay_bias: self.no_decay_bias,
            seed: self.seed,
            cache_features: !self.no_cache_features,
            feature_cache_dir: self.feature_cache.clone(),
            monitor: self.monitor,
            patience: self.patience,
            quiet: self.quiet,
        })
    }
}

/// Refuses a `--out` that holds anything (the lock file aside) unless
/// `--overwrite`, naming what is there.
fn refuse_a_used_out(run: &RunDir, overwrite: bool) -> Result<()> {
    let contents = run.contents()?;
    if contents.is_empty() || overwrite {
        return Ok(());
    }
    let shown: Vec<&str> = contents.iter().take(8).map(String::as_str).collect();
    let more = contents.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let how = if run.file(ARGS_FILE).is_file() {
        format!(
            "it holds a run: continue it with `finetune train --resume {}`, or",
            run.path().display()
        )
    } else {
        "choose an empty or new directory, or".to_string()
    };
    bail!(
        "--out {} is not empty ({}{more}): {how} replace the run there with --overwrite",
        run.path().display(),
        shown.join(", ")
    )
}

/// Runs `finetune train`; `given` are the flags on the command line.
///
/// Everything that can be checked is, before the first byte is written: the
/// flags, the data, the weights, and that --out is free (or --resume's run
/// unchanged); then the run directory is locked for this process.
pub fn run(args: TrainArgs, given: &[String]) -> Result<()> {
    let args = match &args.resume {
        Some(dir) => {
            let extra: Vec<&str> = given
                .iter()
                .map(String::as_str)
                .filter(|flag| !RESUME_FLAGS.contains(flag))
                .collect();
            if !extra.is_empty() {
                bail!(
                    "--resume continues {} with the flags it was started with (in its {ARGS_FILE}); \
                     only --epochs and --quiet may be given with it, not {}. \
                     To change them, start a new run with --out",
                    dir.display(),
                    extra.join(" ")
                );
            }
            args.resumed(dir)?
        }
        None => args,
    };
    let (Some(data_dir), Some(out)) = (args.data.clone(), args.out.clone()) else {
        bail!("--data and --out are required (or --resume RUN_DIR)");
    };
    let weights = args.weights.clone().context("--weights is required")?;
    check_image_size(args.image_size)?;
    let channels = 64 / args.width_divisor;
    check_batch_fits("--batch-size", args.batch_size, args.image_size, channels)?;
    check_batch_fits(
        "--eval-batch-size",
        args.eval_batch_size,
        args.image_size,
        channels,
    )?;
    let config = args.fit_config()?;
    let run = RunDir::new(&out);
    if args.resume.is_none() {
        refuse_a_used_out(&run, args.overwrite)?;
    }
    let device = select_device(&args.device)?;
    args.apply_precision(&device)?;

    let layout = DataLayout::detect(&data_dir)?;
    let out_real = resolved(&out);
    for root in folder_roots(&layout) {
        if out_real.starts_with(resolved(root)) {
            bail!(
                "--out {} is inside the image folder {}: the run directory would be read as a \
                 class next time; put it elsewhere",
                out.display(),
                root.display()
            );
        }
    }
    if args.fold.is_some() && !matches!(layout, DataLayout::Stl10(_)) {
        bail!(
            "--fold selects one of STL10's predefined folds, and {} is an image folder: \
             leave --fold out (use --test-fraction and --seed to split it)",
            data_dir.display()
        );
    }
    let options = args.data_options();
    let train_set = open_split(&data_dir, Split::Train, &options)?;
    let eval_set = if args.eval_every > 0 {
        Some(open_split(&data_dir, Split::Test, &options)?)
    } else {
        None
    };
    let class_names = train_set.class_names().to_vec();
    let num_classes = args.num_classes.unwrap_or(class_names.len());
    let normalize = args.normalize.normalize();
    let setup = RunSetup {
        image_size: args.image_size,
        mean: normalize.mean,
        std: normalize.std,
        arch: args.arch.name(),
        class_names,
        width_divisor: args.width_divisor,
        classifier_hidden: args.classifier_hidden,
        split_seed: args.seed,
        test_fraction: args.test_fraction,
    };

    if num_classes != setup.class_names.len() {
        bail!(
            "--num-classes {num_classes}: the data in {} has {} classes, and the new head needs one output per class",
            data_dir.display(),
            setup.class_names.len()
        );
    }

    // The model: from the resume checkpoint, or the given weights.
    let vgg_config = args.vgg_config(num_classes);
    config.validate(&vgg_config)?;
    let resume = match &args.resume {
        Some(dir) => Some(run.resume_point()?.with_context(|| {
            format!(
                "{} has no checkpoint yet: start the run again without --resume",
                dir.display()
            )
        })?),
        None => None,
    };
    let (mut model, report) = Vgg::load(&weights, vgg_config, &device).with_context(|| {
        let why = if resume.is_some() {
            " (the run started from them: resuming needs them)"
        } else {
            ""
        };
        format!("cannot load the weights from {}{why}", weights.display())
    })?;
    let inputs = RunInputs {
        weights_sha256: sha256_file(&weights)?,
        weights: weights.clone(),
        data: data_dir.clone(),
        train_fingerprint: fingerprint(train_set.as_ref())?,
        test_fingerprint: eval_set
            .as_ref()
            .map(|set| fingerprint(set.as_ref()))
            .transpose()?,
    };

    // Checked: from here on the run directory is this process's.
    let held = run
        .lock()
        .with_context(|| format!("cannot take the run directory {}", out.display()))?;
    match &resume {
        Some(point) => {
            if held.check_inputs(&inputs)? == InputsCheck::FirstRecorded && !args.quiet {
                eprintln!(
                    "note: {} recorded no inputs (an older run): the weights and data are \
                     assumed unchanged and now recorded in {INPUTS_FILE}",
                    out.display()
                );
            }
            model = point.restore(&model)?;
        }
        None => {
            if !held.contents()?.is_empty() {
                // Again under the lock: something may have arrived since.
                refuse_a_used_out(&held, args.overwrite)?;
                let left = held.clear()?;
                if !left.is_empty() && !args.quiet {
                    eprintln!(
                        "note: left in {} (not a run's files): {}",
                        out.display(),
                        left.join(", ")
                    );
                }
            }
            held.write_args(&args)?;
            held.write_inputs(&inputs)?;
            if !args.quiet {
                eprintln!("{report}");
            }
        }
    }

    let data = FitData {
        train: args.train_loader(train_set),
        eval: eval_set.map(|set| {
            let pipeline = Pipeline::evaluation(set.image_dims(), args.image_size, normalize);
            PrefetchLoader::new(
                set,
                pipeline,
                args.loader_config(args.eval_batch_size, false),
            )
        }),
    };

    held.write_setup(&setup)?;

    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let interrupt = interrupt.clone();
        // A second Ctrl-C while saving would lose nothing either: every write is atomic.
        let _ = ctrlc::set_handler(move || {
            if interrupt.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing the current batch and saving a checkpoint (Ctrl-C again to quit now)");
        });
    }
    let extra = serde_json::json!({
        "data": data_dir,
        "weights": weights,
        "device": format!("{device:?}"),
        "precision": args.precision.to_string(),
        "arch": args.arch.name(),
        "image_size": args.image_size,
    });
    let summary = fit(
        &mut model,
        &data,
        &config,
        &held,
        resume.as_ref(),
        extra,
        interrupt,
    )?;

    let out_str = out.display();
    match summary.stopped {
        StopReason::Interrupted => {
            println!("stopped; the run is saved in {out_str}");
            println!("resume with: finetune train --resume {out_str}");
        }
        StopReason::Completed | StopReason::EarlyStopped => {
            if let Some(last) = summary.history.last() {
                let m = last.test.as_ref().unwrap_or(&last.train);
                println!(
                    "done: epoch {} top-1 {:.2}% (best epoch {})",
                    last.epoch,
                    100.0 * m.top1,
                    summary.best_epoch.unwrap_or(last.epoch)
                );
            }
            println!(
                "results in {out_str}: {REPORT_HTML} (open it in a browser), {BEST_WEIGHTS}, {LAST_WEIGHTS}, {LOG_FILE}, {HISTORY_PNG}, {CONFUSION_PNG}"
            );
            println!(
                "evaluate with: finetune eval --data {} --weights {}",
                data_dir.display(),
                run.file(BEST_WEIGHTS).display()
            );
        }
    }
    Ok(())
}
