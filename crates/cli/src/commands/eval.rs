//! `finetune eval`: accuracy, per-class scores and the confusion matrix of
//! fine-tuned weights on a split, optionally every image's probabilities.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use finetune_data::{DataOptions, Label, LoaderConfig, Pipeline, PrefetchLoader, Split};
use finetune_files::atomic::write_file_atomic;
use finetune_model::select_device;
use finetune_train::{evaluate_with, plot_top_losses, predictions_csv, report, Tta};

use super::{bounded, check_batch_fits, load_model, open_split, ModelFlags, TtaKind};

pub const ABOUT: &str = "\
Evaluate fine-tuned weights on a split of STL10 or an image folder.

Prints the loss, top-1 and top-5 accuracy, each class's recall (its
accuracy), precision, F1 and support with their macro and weighted averages
(scikit-learn's classification_report), and the confusion matrix (rows: true
class, columns: predicted class). Images are
prepared as in training, without augmentation: when the weights sit in a run
directory of `finetune train` (e.g. RUN/best.safetensors), its preprocess.json
gives the architecture, the network's shape, image size and normalisation, and
the seed of a folder's train/test split; otherwise the recipe's VGG16 at 96
pixels with STL10's statistics is assumed. Flags override either.

The weights must have a head with one output per class of the data set:
ImageNet's 1000-class weights cannot be evaluated on STL10's 10 classes (fine-tune
them first). --data takes the same folders as `finetune train --data`.

--predictions FILE.csv writes one row per image, in data set order, after a
header: index,label,predicted (0-based class numbers), then one probability
column per class, named by the class. --top-losses FILE.png draws the images
the network got most wrong. --tta averages over the image and its mirror
(--tta=crops: ten views), and says so.

Example:
  finetune eval --data ~/.cache/finetune/stl10 --weights runs/stl10-vgg16/best.safetensors \\
      --predictions test.csv";

/// Flags of `finetune eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder holding stl10_binary/, or an image folder root (as for train).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Fine-tuned weights, e.g. RUN/best.safetensors (.safetensors or .pth).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// Which split to evaluate: test or train.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Also write each image's label, prediction and class probabilities here.
    #[arg(long, value_name = "FILE.csv")]
    pub predictions: Option<PathBuf>,
    /// Also draw the test images the network got most wrong (the highest
    /// loss), each captioned with predicted and true class and the predicted
    /// class's probability, as a PNG grid here (fastai's plot_top_losses).
    #[arg(long, value_name = "FILE.png")]
    pub top_losses: Option<PathBuf>,
    /// How many images --top-losses draws.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = bounded(1..=1024))]
    pub top_losses_count: usize,
    /// Images per batch (no gradients, so larger than training's fits).
    #[arg(long, default_value_t = 256, value_parser = bounded(1..=65_536))]
    pub batch_size: usize,
    /// Where to compute: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Average the softmax over views of each image: `flip` (the image and
    /// its mirror; what a bare --tta does) or `--tta=crops` (ten views: five
    /// crops of the padded image, each also flipped). Costs 2x or 10x the time.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_missing_value = "flip", value_name = "VIEWS")]
    pub tta: Option<TtaKind>,
    #[command(flatten)]
    pub model: ModelFlags,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `finetune eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let split = args.split;
    if split == Split::Unlabeled {
        bail!("--split unlabeled: those images have no labels to score against; use `finetune predict` on image files, or --split test");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = select_device(&args.device)?;
    let setup = args.model.setup(&args.weights)?;
    check_batch_fits(
        "--batch-size",
        args.batch_size,
        setup.image_size,
        ModelFlags::first_layer_channels(&setup),
    )?;
    let options = DataOptions {
        image_size: setup.image_size,
        test_fraction: setup.test_fraction,
        split_seed: setup.split_seed,
        ..DataOptions::default()
    };
    let dataset = open_split(&args.data, split, &options)?;
    let class_names = dataset.class_names().to_vec();
    if !setup.class_names.is_empty() && setup.class_names != class_names {
        eprintln!(
            "warning: the run was trained on classes {:?}, the data set has {:?}",
            setup.class_names, class_names
        );
    }
    let model = load_model(&args.weights, &setup, dataset.num_classes(), &device)?;

    let pipeline = Pipeline::evaluation(dataset.image_dims(), setup.image_size, setup.normalize());
    let config = LoaderConfig {
        batch_size: args.batch_size,
        ..LoaderConfig::default()
    };
    let loader = PrefetchLoader::new(dataset.clone(), pipeline, config);
    let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
    let keep = args.predictions.is_some() || args.top_losses.is_some();
    let num_classes = class_names.len();
    let tta = TtaKind::tta(args.tta, &setup);
    let metrics = evaluate_with(&model, &loader, args.quiet, &tta, |indices, probs| {
        if keep {
            for (i, &index) in indices.iter().enumerate() {
                rows.push((
                    index,
                    probs[i * num_classes..(i + 1) * num_classes].to_vec(),
                ));
            }
        }
        Ok(())
    })
    .with_context(|| format!("evaluating {} failed", args.weights.display()))?;

    println!(
        "{} on the {split} split of {} ({} images)",
        args.weights.display(),
        args.data.display(),
        metrics.samples
    );
    if tta != Tta::None {
        println!("{tta}");
    }
    print!("{}", report(&metrics, &class_names));
    rows.sort_by_key(|(index, _)| *index);
    let labels: Vec<Label> = rows.iter().map(|(i, _)| dataset.label(*i)).collect();
    if let Some(path) = &args.top_losses {
        let drawn = plot_top_losses(
            path,
            dataset.as_ref(),
            &rows,
            &class_names,
            args.top_losses_count,
        )?;
        println!(
            "the {drawn} images with the highest loss (predicted / actual probability) in {}",
            path.display()
        );
    }
    if let Some(path) = &args.predictions {
        let csv = predictions_csv(&rows, &labels, &class_names);
        write_file_atomic(path, csv.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("predictions of {} images in {}", rows.len(), path.display());
    }
    Ok(())
}
