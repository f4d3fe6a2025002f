//! One module per subcommand: its flags and the wiring that runs it; here,
//! what several of them share.

pub mod data;
pub mod eval;
pub mod fetch;
pub mod lr_find;
pub mod predict;
pub mod preview;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::builder::TypedValueParser;
use clap::{Args, ValueEnum};
use finetune_data::transforms::Normalize;
use finetune_data::{DataError, DataLayout, DataOptions, Dataset, Split};
use finetune_model::{Vgg, VggConfig, MIN_INPUT_SIDE};
use finetune_train::{RunDir, RunSetup, Tta, LOG_FILE, PREPROCESS_FILE};
use serde::{Deserialize, Serialize};

/// The normalisation statistics `--normalize` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistics {
    /// STL10's own (the recipe's).
    Stl10,
    /// ImageNet's (what torchvision's pretrained weights saw).
    Imagenet,
}

impl Statistics {
    /// The `Normalize` step.
    pub fn normalize(self) -> Normalize {
        match self {
            Statistics::Stl10 => Normalize::stl10(),
            Statistics::Imagenet => Normalize::imagenet(),
        }
    }
}

/// The largest `--image-size`: beyond it one image's activations alone
/// outgrow any machine's memory.
pub const MAX_IMAGE_SIZE: usize = 1024;

/// A flag taking a whole number in `range`; clap names the flag, the value
/// and the range when it is outside.
pub fn bounded(range: std::ops::RangeInclusive<u64>) -> impl TypedValueParser<Value = usize> {
    clap::value_parser!(u64)
        .range(range)
        .map(|value| value as usize)
}

/// `--image-size`: what VGG takes and a machine can hold.
pub fn image_side() -> impl TypedValueParser<Value = usize> {
    bounded(MIN_INPUT_SIDE as u64..=MAX_IMAGE_SIZE as u64)
}

/// Opens `split` of `--data` (STL10 or an image folder, detected), naming
/// each image skipped as unreadable. A run directory of `finetune train`
/// inside an image folder is refused rather than read as a class.
pub fn open_split(data: &Path, split: Split, options: &DataOptions) -> Result<Arc<dyn Dataset>> {
    let layout = DataLayout::detect(data)?;
    for root in folder_roots(&layout) {
        refuse_run_dirs_in(root)?;
    }
    let opened = layout.open(split, options).map_err(|e| match e {
        DataError::EmptySplit { .. } => {
            anyhow::Error::new(e).context("--test-fraction leaves one split empty")
        }
        other => other.into(),
    })?;
    for (path, why) in &opened.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    Ok(opened.dataset)
}

/// The folders whose sub-folders a layout reads as classes.
pub fn folder_roots(layout: &DataLayout) -> Vec<&Path> {
    match layout {
        DataLayout::Stl10(_) => Vec::new(),
        DataLayout::SplitFolders { train, test } => vec![train, test],
        DataLayout::Folder(root) => vec![root],
    }
}

/// Refuses a class folder of `root` that is a run directory (it holds the
/// run's log and setup): its pictures and weights are not images of a class.
fn refuse_run_dirs_in(root: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(()); // the data crate reports an unreadable folder
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir.join(LOG_FILE).is_file() && dir.join(PREPROCESS_FILE).is_file() {
            bail!(
                "{} is a run directory of `finetune train` (it holds {LOG_FILE} and {PREPROCESS_FILE}), \
                 not a class of images: move it out of {}",
                dir.display(),
                root.display()
            );
        }
    }
    Ok(())
}

/// `path` made absolute with symlinks resolved, as far as it exists (the
/// rest appended as written), to compare directories that may not exist yet.
pub fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Refuses `batch` images of `size` pixels when `channels` f32 maps of that
/// size per image (a VGG's first convolution makes 64, or 64 /
/// --width-divisor) would not fit in this machine's memory: better said now
/// than an abort at the first batch. Where the memory size cannot be read,
/// nothing is checked.
pub fn check_batch_fits(flag: &str, batch: usize, size: usize, channels: usize) -> Result<()> {
    let Some(total) = physical_memory() else {
        return Ok(());
    };
    let needed = batch as u128 * channels.max(1) as u128 * (size * size) as u128 * 4;
    if needed > u128::from(total) {
        bail!(
            "{flag} {batch} at --image-size {size} needs {:.1} GiB for one layer's \
             outputs alone, and this machine has {:.1} GiB: lower either",
            needed as f64 / f64::from(1u32 << 30),
            total as f64 / f64::from(1u32 << 30),
        );
    }
    Ok(())
}

/// Total physical memory in bytes (Linux: /proc/meminfo).
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The test-time augmentations `--tta` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TtaKind {
    /// The image and its horizontal flip (2 views).
    Flip,
    /// The 4 corner and the centre crops of the image padded by 4 pixels (as
    /// training's RandomCrop pads it), each also flipped (10 views).
    Crops,
}

impl TtaKind {
    /// The views for images normalised with `setup`'s statistics.
    pub fn tta(kind: Option<TtaKind>, setup: &RunSetup) -> Tta {
        let normalize = setup.normalize();
        match kind {
            None => Tta::None,
            Some(TtaKind::Flip) => Tta::Flip,
            Some(TtaKind::Crops) => Tta::Crops {
                padding: TTA_PADDING,
                fill: std::array::from_fn(|c| (0.0 - normalize.mean[c]) / normalize.std[c]),
            },
        }
    }
}

/// Padding of `--tta crops`: the recipe's RandomCrop(96, padding=4).
const TTA_PADDING: usize = 4;

/// How `eval` and `predict` rebuild the trained network and its input
/// preparation; each flag overrides what the run directory recorded.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelFlags {
    /// Architecture: vgg11, vgg13, vgg16, vgg19, optionally with _bn
    /// [default: the run's (preprocess.json beside the weights), else vgg16].
    #[arg(long)]
    pub arch: Option<VggConfig>,
    /// Side of the square images fed to the network [default: the run's, else 96].
    #[arg(long, value_name = "N", value_parser = image_side())]
    pub image_size: Option<usize>,
    /// Normalisation statistics [default: the run's, else stl10].
    #[arg(long)]
    pub normalize: Option<Statistics>,
    /// Conv widths divided by this [default: the run's, else 1].
    #[arg(long, hide = true)]
    pub width_divisor: Option<usize>,
    /// Width of the classifier's hidden layers [default: the run's, else 4096].
    #[arg(long, hide = true)]
    pub classifier_hidden: Option<usize>,
}

impl ModelFlags {
    /// What to feed the network and how to build it: the run's
    /// `preprocess.json` when `weights` sit in a run directory, else the
    /// recipe's (VGG16, 96 pixels, STL10's statistics), with each flag given
    /// overriding.
    pub fn setup(&self, weights: &Path) -> Result<RunSetup> {
        let mut setup = match RunDir::of_weights(weights) {
            Some(run) => run.read_setup()?,
            None => RunSetup::recipe(),
        };
        if let Some(arch) = &self.arch {
            setup.arch = arch.name();
        }
        if let Some(size) = self.image_size {
            setup.image_size = size;
        }
        if let Some(statistics) = self.normalize {
            let normalize = statistics.normalize();
            (setup.mean, setup.std) = (normalize.mean, normalize.std);
        }
        if let Some(divisor) = self.width_divisor {
            setup.width_divisor = divisor;
        }
        if let Some(hidden) = self.classifier_hidden {
            setup.classifier_hidden = hidden;
        }
        check_image_size(setup.image_size)?;
        Ok(setup)
    }

    /// The channels of the first convolution of the network `setup` builds.
    pub fn first_layer_channels(setup: &RunSetup) -> usize {
        64 / setup.width_divisor.max(1)
    }
}

/// Refuses an `--image-size` VGG cannot take (it halves the image five
/// times) or no machine could hold.
pub fn check_image_size(size: usize) -> Result<()> {
    if !(MIN_INPUT_SIDE..=MAX_IMAGE_SIZE).contains(&size) {
        bail!(
            "--image-size {size}: expected {MIN_INPUT_SIDE} to {MAX_IMAGE_SIZE} pixels \
             (VGG halves the image five times; ImageNet's is 224)"
        );
    }
    Ok(())
}

/// Loads `weights` as a network with `num_classes` outputs for inference,
/// refusing weights whose head has another size (a new head would be random).
pub fn load_model(
    weights: &Path,
    setup: &RunSetup,
    num_classes: usize,
    device: &Device,
) -> Result<Vgg> {
    let mut config: VggConfig = setup.arch.parse()?;
    config.num_classes = num_classes;
    config.width_divisor = setup.width_divisor;
    config.classifier_hidden = setup.classifier_hidden;
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

/// A flag value kept in `args.json` as its text: written with `Display`,
/// read back with `FromStr` (e.g. `--arch vgg16_bn`).
pub mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Writes the value's text.
    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Parses the text back.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_setup_is_the_default_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let recorded = RunSetup {
            image_size: 128,
            arch: "vgg11".into(),
            class_names: vec!["a".into()],
            ..RunSetup::recipe()
        };
        run.write_setup(&recorded).unwrap();
        let weights = run.file(finetune_train::BEST_WEIGHTS);
        assert_eq!(ModelFlags::default().setup(&weights).unwrap(), recorded);
        let flags = ModelFlags {
            arch: Some("vgg16_bn".parse().unwrap()),
            image_size: Some(64),
            normalize: Some(Statistics::Imagenet),
            ..ModelFlags::default()
        };
        let setup = flags.setup(&weights).unwrap();
        assert_eq!((setup.arch.as_str(), setup.image_size), ("vgg16_bn", 64));
        assert_eq!(setup.mean, Normalize::imagenet().mean);
        assert_eq!(setup.class_names, ["a"]);
        let elsewhere = dir.path().join("other").join("w.safetensors");
        assert_eq!(
            ModelFlags::default().setup(&elsewhere).unwrap(),
            RunSetup::recipe()
        );
        let tiny = ModelFlags {
            image_size: Some(8),
            ..ModelFlags::default()
        };
        assert!(tiny.setup(&elsewhere).is_err());
    }
}
