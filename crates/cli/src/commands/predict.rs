//! `finetune predict`: the most likely classes of image files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;
use finetune_data::transforms::RgbImage;
use finetune_data::Pipeline;
use finetune_model::select_device;
use finetune_train::{RunSetup, Tta};

use super::{bounded, load_model, ModelFlags, TtaKind};

pub const ABOUT: &str = "\
Print the most likely classes of image files, with their probabilities.

Images of any size in PNG, JPEG, WebP, BMP, TIFF or PPM/PGM (told by their
content, not their name) are converted to RGB and resized to the network's input size with
the same bilinear resize training used for image folders, then normalised as in
training. When the weights sit in a run directory of `finetune train` (e.g.
RUN/best.safetensors), its preprocess.json gives the architecture, image size,
normalisation and class names; otherwise VGG16 at 96 pixels with STL10's
statistics is assumed. Flags override either.

The number of classes is read from the weights' head. Class names come from
--labels (one name per line, in label order), else from the run directory,
else they are shown as `class N`.

Example:
  finetune predict --weights runs/stl10-vgg16/best.safetensors cat.jpg ship.png";

/// Images per forward pass.
const BATCH: usize = 32;

/// Flags of `finetune predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Fine-tuned weights, e.g. RUN/best.safetensors (.safetensors or .pth).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// Class names, one per line in label order [default: the run's, else `class N`].
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// How many of the most likely classes to print per image.
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = bounded(1..=100_000))]
    pub top: usize,
    /// Average the softmax over views of each image: `flip` (the image and
    /// its mirror; what a bare --tta does) or `--tta=crops` (ten views: five
    /// crops of the padded image, each also flipped). Costs 2x or 10x the time.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_missing_value = "flip", value_name = "VIEWS")]
    pub tta: Option<TtaKind>,
    /// Where to compute: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub model: ModelFlags,
    /// Image files to classify.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
}

/// Runs `finetune predict`.
pub fn run(args: PredictArgs) -> Result<()> {
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let device = select_device(&args.device)?;
    let setup = args.model.setup(&args.weights)?;
    let num_classes = finetune_model::stored_num_classes(&args.weights)
        .with_context(|| format!("cannot read the weights {}", args.weights.display()))?;
    let names = class_names(args.labels.as_deref(), &setup, num_classes)?;
    let model = load_model(&args.weights, &setup, num_classes, &device)?;

    // Decode everything first, so an unreadable file fails before any compute.
    let side = setup.image_size;
    let mut inputs = Vec::with_capacity(args.images.len());
    for path in &args.images {
        inputs.push(prepare(path, &setup)?);
    }
    let top = args.top.min(num_classes);
    let tta = TtaKind::tta(args.tta, &setup);
    if tta != Tta::None {
        println!("{tta}");
    }
    for (paths, chunk) in args.images.chunks(BATCH).zip(inputs.chunks(BATCH)) {
        let flat: Vec<f32> = chunk.concat();
        let x = Tensor::from_vec(flat, (chunk.len(), 3, side, side), &device)?;
        let probs: Vec<Vec<f32>> = tta.probabilities(&model, &x)?.to_vec2()?;
        for (path, probs) in paths.iter().zip(probs) {
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
            println!("{}", path.display());
            let width = order[..top]
                .iter()
                .map(|&c| names[c].len())
                .max()
                .unwrap_or(0);
            for &c in &order[..top] {
                println!("  {:<width$}  {:.4}", names[c], probs[c]);
            }
        }
    }
    Ok(())
}

/// Decodes `path` to RGB and applies the evaluation transforms (a resize to
/// the network's side when needed, ToTensor, Normalize): CHW f32.
fn prepare(path: &Path, setup: &RunSetup) -> Result<Vec<f32>> {
    let rgb = RgbImage::open(path)?;
    let dims = rgb.dims();
    let pipeline = Pipeline::evaluation(dims, setup.image_size, setup.normalize());
    let side = setup.image_size;
    let mut out = vec![0f32; 3 * side * side];
    // The evaluation pipeline draws nothing at random, so no choices are given.
    pipeline
        .apply_choices(&rgb.data, dims, &[], &mut out)
        .with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(out)
}

/// Class names from `--labels`, else the run's, else `class N`.
fn class_names(labels: Option<&Path>, setup: &RunSetup, num_classes: usize) -> Result<Vec<String>> {
    if let Some(path) = labels {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --labels {}", path.display()))?;
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() != num_classes {
            bail!(
                "--labels {}: {} names for a {num_classes}-class head; give one name per line, in label order",
                path.display(),
                names.len()
            );
        }
        return Ok(names);
    }
    if setup.class_names.len() == num_classes {
        return Ok(setup.class_names.clone());
    }
    Ok((0..num_classes).map(|c| format!("class {c}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_fall_back_to_numbers() {
        let p = RunSetup {
            class_names: vec!["a".into(), "b".into()],
            ..RunSetup::recipe()
        };
        assert_eq!(class_names(None, &p, 2).unwrap(), ["a", "b"]);
        assert_eq!(
            class_names(None, &p, 3).unwrap(),
            ["class 0", "class 1", "class 2"]
        );
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "x\n\ny\n").unwrap();
        assert_eq!(class_names(Some(&labels), &p, 2).unwrap(), ["x", "y"]);
        let err = class_names(Some(&labels), &p, 3).unwrap_err().to_string();
        assert!(err.contains("2 names for a 3-class head"), "{err}");
    }
}
