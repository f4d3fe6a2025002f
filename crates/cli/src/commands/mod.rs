//! One module per subcommand: its flags and the wiring that runs it; here,
//! what several of them share.

pub mod data;
pub mod eval;
pub mod fetch;
pub mod predict;
pub mod preview;
pub mod train;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use finetune_data::transforms::Normalize;
use finetune_data::{DataLayout, DataOptions, Dataset, Split};
use finetune_model::{Vgg, VggConfig, MIN_INPUT_SIDE};
use finetune_train::{RunDir, RunSetup};
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

/// Opens `split` of `--data` (STL10 or an image folder, detected), naming
/// each image skipped as unreadable.
pub fn open_split(data: &Path, split: Split, options: &DataOptions) -> Result<Arc<dyn Dataset>> {
    let opened = DataLayout::detect(data)?.open(split, options)?;
    for (path, why) in &opened.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    Ok(opened.dataset)
}

/// How `eval` and `predict` rebuild the trained network and its input
/// preparation; each flag overrides what the run directory recorded.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelFlags {
    /// Architecture: vgg11, vgg13, vgg16, vgg19, optionally with _bn
    /// [default: the run's (preprocess.json beside the weights), else vgg16].
    #[arg(long)]
    pub arch: Option<VggConfig>,
    /// Side of the square images fed to the network [default: the run's, else 96].
    #[arg(long, value_name = "N")]
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
}

/// Refuses an `--image-size` VGG cannot take.
pub fn check_image_size(size: usize) -> Result<()> {
    if size < MIN_INPUT_SIDE {
        bail!("--image-size: {size} is too small: VGG needs at least {MIN_INPUT_SIDE} pixels");
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
