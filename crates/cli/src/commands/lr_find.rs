//! `finetune lr-find`: the learning-rate range test, with `train`'s flags.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use finetune_data::Split;
use finetune_model::{select_device, Vgg};
use finetune_train::{lr_find, plot_lr_find, FitData, LrFindConfig, LrFindStop};

use super::train::TrainArgs;
use super::{bounded, check_image_size, open_split};

pub const ABOUT: &str = "\
Find a learning rate: the learning-rate range test (Smith 2015; fastai's
lr_find).

Trains from --weights with train's flags for --steps steps while the learning
rate grows exponentially from --start-lr to --end-lr, stopping early once the
smoothed loss passes 4x its minimum, then draws the smoothed loss against the
learning rate (log axis) and prints two suggestions: where the loss falls
fastest, and a tenth of the rate of its minimum. Nothing is saved but the
picture (and, with --feature-cache, the frozen layers' features): the weights
on disk are untouched. --resume RUN uses the flags RUN was started with.

With --train head --no-augment the frozen network runs once and the test takes
seconds. The schedule, epoch and evaluation flags are not used.

Example:
  finetune lr-find --data ~/.cache/finetune/stl10 --weights vgg16.safetensors \\
      --train head --no-augment --plot lr.png";

/// Flags of `finetune lr-find`.
#[derive(Args, Debug)]
pub struct LrFindArgs {
    /// Where to draw the loss against the learning rate.
    #[arg(long, value_name = "FILE.png", default_value = "lr-find.png")]
    pub plot: PathBuf,
    /// Steps from --start-lr to --end-lr.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = bounded(2..=100_000))]
    pub steps: usize,
    /// The learning rate of the first step.
    #[arg(long, value_name = "LR", default_value_t = 1e-7)]
    pub start_lr: f64,
    /// The learning rate of the last step.
    #[arg(long, value_name = "LR", default_value_t = 10.0)]
    pub end_lr: f64,
    #[command(flatten)]
    pub run: TrainArgs,
}

/// Runs `finetune lr-find`.
pub fn run(args: LrFindArgs) -> Result<()> {
    let run = match &args.run.resume {
        Some(dir) => args.run.resumed(dir)?,
        None if args.run.out.is_some() || args.run.overwrite => {
            bail!("lr-find writes no run directory: --plot names the picture it draws (leave --out and --overwrite out)")
        }
        None => args.run.clone(),
    };
    let (Some(data_dir), Some(weights)) = (run.data.clone(), run.weights.clone()) else {
        bail!("--data and --weights are required (or --resume RUN_DIR)");
    };
    let find = LrFindConfig {
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        steps: args.steps,
        ..LrFindConfig::default()
    };
    find.validate().context("--start-lr, --end-lr")?;
    check_image_size(run.image_size)?;
    let config = run.fit_config()?;
    let device = select_device(&run.device)?;
    run.apply_precision(&device)?;
    let train_set = open_split(&data_dir, Split::Train, &run.data_options())?;
    let num_classes = run.num_classes.unwrap_or(train_set.num_classes());
    let vgg_config = run.vgg_config(num_classes);
    config.validate(&vgg_config)?;
    let (mut model, report) = Vgg::load(&weights, vgg_config, &device)
        .with_context(|| format!("cannot load the weights from {}", weights.display()))?;
    if !run.quiet {
        eprintln!("{report}");
    }
    let data = FitData {
        train: run.train_loader(train_set),
        eval: None,
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let interrupt = interrupt.clone();
        let _ = ctrlc::set_handler(move || {
            if interrupt.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let finding = lr_find(&mut model, &data, &config, &find, &interrupt)?;
    if finding.stop == LrFindStop::NonFiniteAtStart {
        bail!(
            "the loss is NaN or infinite from the first step (learning rate {:e}): the weights or \
             the data are broken, so no learning rate can be suggested",
            args.start_lr
        );
    }
    plot_lr_find(&args.plot, &finding)?;
    let (first, last) = (finding.lrs[0], finding.lrs[finding.lrs.len() - 1]);
    match finding.stop {
        LrFindStop::Diverged(step) => println!(
            "{} steps from {first:.1e} to {last:.1e}; the loss diverged at step {} and the test stopped",
            finding.lrs.len(),
            step + 1
        ),
        _ => println!("{} steps from {first:.1e} to {last:.1e}", finding.lrs.len()),
    }
    match (finding.steepest, finding.minimum_tenth) {
        (Some(steep), Some(min10)) => {
            println!("steepest descent of the loss at lr {steep:.2e}");
            println!("minimum of the loss / 10:       lr {min10:.2e}");
            println!("suggested: --lr {steep:.1e}");
        }
        _ => println!("too few steps to suggest a learning rate"),
    }
    println!("loss against learning rate in {}", args.plot.display());
    Ok(())
}
