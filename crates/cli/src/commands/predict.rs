//! `finetune predict`: the most likely classes of image files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;
use finetune_cli::setup::{select_device, Preprocess, RunArgs};
use finetune_model::Mode;

use super::{load_model, ModelFlags};

pub const ABOUT: &str = "\
Print the most likely classes of image files, with their probabilities.

Images of any size and format the `image` crate decodes (PNG, JPEG, BMP, GIF,
WebP, ...) are converted to RGB and resized to the network's input size with
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
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub top: usize,
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
    let preprocess = args.model.preprocess(&args.weights)?;
    let num_classes = finetune_model::stored_num_classes(&args.weights)
        .with_context(|| format!("cannot read the weights {}", args.weights.display()))?;
    let names = class_names(args.labels.as_deref(), &preprocess, num_classes)?;
    let run_args = RunArgs::beside(&args.weights)?;
    let model = load_model(
        &args.weights,
        &preprocess,
        &args.model.network(&run_args),
        num_classes,
        &device,
    )?;

    // Decode everything first, so an unreadable file fails before any compute.
    let side = preprocess.image_size;
    let mut inputs = Vec::with_capacity(args.images.len());
    for path in &args.images {
        inputs.push(prepare(path, &preprocess)?);
    }
    let top = args.top.min(num_classes);
    for (paths, chunk) in args.images.chunks(BATCH).zip(inputs.chunks(BATCH)) {
        let flat: Vec<f32> = chunk.concat();
        let x = Tensor::from_vec(flat, (chunk.len(), 3, side, side), &device)?;
        let logits = model.forward_t(&x, &Mode::Eval)?;
        let logits: Vec<Vec<f32>> = logits.to_device(&candle_core::Device::Cpu)?.to_vec2()?;
        for (path, logits) in paths.iter().zip(logits) {
            let probs = softmax(&logits);
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
fn prepare(path: &Path, preprocess: &Preprocess) -> Result<Vec<f32>> {
    let unreadable = |e: String| anyhow::anyhow!("cannot read image {}: {e}", path.display());
    let rgb = image::ImageReader::open(path)
        .map_err(|e| unreadable(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| unreadable(e.to_string()))?
        .decode()
        .map_err(|e| unreadable(e.to_string()))?
        .into_rgb8();
    let dims = (rgb.height() as usize, rgb.width() as usize);
    let pipeline = preprocess.eval_pipeline(dims);
    let side = preprocess.image_size;
    let mut out = vec![0f32; 3 * side * side];
    // The evaluation pipeline draws nothing at random, so no choices are given.
    pipeline
        .apply_choices(rgb.as_raw(), dims, &[], &mut out)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(out)
}

/// Class names from `--labels`, else the run's, else `class N`.
fn class_names(
    labels: Option<&Path>,
    preprocess: &Preprocess,
    num_classes: usize,
) -> Result<Vec<String>> {
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
    if preprocess.class_names.len() == num_classes {
        return Ok(preprocess.class_names.clone());
    }
    Ok((0..num_classes).map(|c| format!("class {c}")).collect())
}

/// Softmax of one row of logits, computed stably (max subtracted).
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1000.0, 1001.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
    }

    #[test]
    fn class_names_fall_back_to_numbers() {
        let p = Preprocess::new(96, "stl10", "vgg16", vec!["a".into(), "b".into()]).unwrap();
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
