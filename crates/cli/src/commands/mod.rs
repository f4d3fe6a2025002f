//! One module per subcommand: its flags and the wiring that runs it.

pub mod data;
pub mod eval;
pub mod fetch;
pub mod predict;
pub mod preview;
pub mod train;

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use finetune_cli::setup::{parse_arch, Preprocess, RunArgs};
use finetune_model::Vgg;

/// How `eval` and `predict` rebuild the trained network and its input
/// preparation; each flag overrides what the run directory recorded.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelFlags {
    /// Architecture: vgg11, vgg13, vgg16, vgg19, optionally with _bn
    /// [default: the run's (preprocess.json beside the weights), else vgg16].
    #[arg(long)]
    pub arch: Option<String>,
    /// Side of the square images fed to the network [default: the run's, else 96].
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    /// Normalisation statistics: stl10 or imagenet [default: the run's, else stl10].
    #[arg(long, value_parser = ["stl10", "imagenet"])]
    pub normalize: Option<String>,
    /// Conv widths divided by this [default: the run's args.json, else 1].
    #[arg(long, hide = true)]
    pub width_divisor: Option<usize>,
    /// Width of the classifier's hidden layers [default: the run's, else 4096].
    #[arg(long, hide = true)]
    pub classifier_hidden: Option<usize>,
}

impl ModelFlags {
    /// The run's recorded preparation (if any) with these flags applied.
    pub fn preprocess(&self, weights: &Path) -> Result<Preprocess> {
        Ok(Preprocess::resolve(
            Preprocess::beside(weights)?,
            self.arch.as_deref(),
            self.image_size,
            self.normalize.as_deref(),
        )?)
    }

    /// (width divisor, classifier hidden width): these flags, else the run's.
    pub fn network(&self, run: &RunArgs) -> (usize, usize) {
        (
            self.width_divisor.unwrap_or(run.width_divisor),
            self.classifier_hidden.unwrap_or(run.classifier_hidden),
        )
    }
}

/// Loads `weights` as a network with `num_classes` outputs for inference,
/// refusing weights whose head has another size (a new head would be random).
pub fn load_model(
    weights: &Path,
    preprocess: &Preprocess,
    (width_divisor, classifier_hidden): &(usize, usize),
    num_classes: usize,
    device: &Device,
) -> Result<Vgg> {
    let mut config = parse_arch(&preprocess.arch, num_classes)?;
    config.width_divisor = *width_divisor;
    config.classifier_hidden = *classifier_hidden;
    let (model, report) = Vgg::load(weights, config, device)
        .with_context(|| format!("cannot load the weights from {}", weights.display()))?;
    if let Some((found, wanted)) = report.head_replaced {
        bail!(
            "{}: these weights have a {found}-class head, the data has {wanted} classes; \
             evaluate fine-tuned weights, e.g. RUN/best.safetensors from `finetune train --out RUN`",
            weights.display()
        );
    }
    Ok(model)
}
