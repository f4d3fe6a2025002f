//! `finetune eval`: accuracy, per-class accuracy and the confusion matrix of
//! fine-tuned weights on a split, optionally every image's probabilities.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use finetune_cli::setup::{open_split, select_device, DataOptions, RunArgs};
use finetune_data::{Label, LoaderConfig, PrefetchLoader, Split};
use finetune_train::{evaluate_with, ConfusionMatrix, Metrics};

use super::{load_model, ModelFlags};

pub const ABOUT: &str = "\
Evaluate fine-tuned weights on a split of STL10 or an image folder.

Prints the loss, top-1 and top-5 accuracy, the accuracy of each class, and the
confusion matrix (rows: true class, columns: predicted class). Images are
prepared as in training, without augmentation: when the weights sit in a run
directory of `finetune train` (e.g. RUN/best.safetensors), its preprocess.json
gives the architecture, image size and normalisation, and its args.json the
network's shape and the seed of a folder's train/test split; otherwise the
recipe's VGG16 at 96 pixels with STL10's statistics is assumed. Flags override
either.

The weights must have a head with one output per class of the data set:
ImageNet's 1000-class weights cannot be evaluated on STL10's 10 classes (fine-tune
them first). --data takes the same folders as `finetune train --data`.

--predictions FILE.csv writes one row per image, in data set order, after a
header: index,label,predicted (0-based class numbers), then one probability
column per class, named by the class.

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
    #[arg(long, default_value = "test", value_parser = ["test", "train", "unlabeled"])]
    pub split: String,
    /// Also write each image's label, prediction and class probabilities here.
    #[arg(long, value_name = "FILE.csv")]
    pub predictions: Option<PathBuf>,
    /// Images per batch (no gradients, so larger than training's fits).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Where to compute: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub model: ModelFlags,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `finetune eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let split: Split = args.split.parse()?;
    if split == Split::Unlabeled {
        bail!("--split unlabeled: those images have no labels to score against; use `finetune predict` on image files, or --split test");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = select_device(&args.device)?;
    let preprocess = args.model.preprocess(&args.weights)?;
    let run_args = RunArgs::beside(&args.weights)?;
    let options = DataOptions {
        image_size: preprocess.image_size,
        test_fraction: run_args.test_fraction,
        split_seed: run_args.seed,
        ..DataOptions::default()
    };
    let dataset = open_split(&args.data, split, &options)?;
    let class_names = dataset.class_names().to_vec();
    if !preprocess.class_names.is_empty() && preprocess.class_names != class_names {
        eprintln!(
            "warning: the run was trained on classes {:?}, the data set has {:?}",
            preprocess.class_names, class_names
        );
    }
    let model = load_model(
        &args.weights,
        &preprocess,
        &args.model.network(&run_args),
        dataset.num_classes(),
        &device,
    )?;

    let pipeline = preprocess.eval_pipeline(dataset.image_dims());
    let config = LoaderConfig {
        batch_size: args.batch_size,
        ..LoaderConfig::default()
    };
    let loader = PrefetchLoader::new(dataset.clone(), pipeline, config);
    let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
    let keep = args.predictions.is_some();
    let num_classes = class_names.len();
    let metrics = evaluate_with(&model, &loader, args.quiet, |indices, probs| {
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

    print!(
        "{}",
        report(&metrics, &class_names, split, &args.data, &args.weights)
    );
    if let Some(path) = &args.predictions {
        rows.sort_by_key(|(index, _)| *index);
        let labels: Vec<Label> = rows.iter().map(|(i, _)| dataset.label(*i)).collect();
        let csv = predictions_csv(&rows, &labels, &class_names);
        finetune_train::checkpoint::write_file_atomic(path, csv.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("predictions of {} images in {}", rows.len(), path.display());
    }
    Ok(())
}

/// The text report: accuracy, per-class accuracy and the confusion matrix.
fn report(
    metrics: &Metrics,
    class_names: &[String],
    split: Split,
    data: &Path,
    weights: &Path,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on the {split} split of {} ({} images)",
        weights.display(),
        data.display(),
        metrics.samples
    );
    let _ = writeln!(out, "top-1 accuracy  {:6.2}%", 100.0 * metrics.top1);
    let _ = writeln!(out, "top-5 accuracy  {:6.2}%", 100.0 * metrics.top5);
    let _ = writeln!(out, "loss            {:.4}", metrics.loss);
    let name_width = class_names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(out, "\nper-class accuracy:");
    for (c, name) in class_names.iter().enumerate() {
        let n: u64 = metrics.confusion.row(c).iter().sum();
        let accuracy = match metrics.per_class.get(c).copied().flatten() {
            Some(a) => format!("{:6.2}%", 100.0 * a),
            None => "     -".to_string(),
        };
        let _ = writeln!(
            out,
            "  {c:>2} {name:<name_width$}  {accuracy}  ({n} images)"
        );
    }
    let _ = writeln!(
        out,
        "\nconfusion matrix (rows: true class, columns: predicted class):"
    );
    out.push_str(&confusion_table(&metrics.confusion, class_names));
    out
}

/// The confusion matrix as an aligned text table, rows and columns numbered
/// by class, rows also named.
fn confusion_table(matrix: &ConfusionMatrix, class_names: &[String]) -> String {
    let c = matrix.num_classes();
    let largest = (0..c)
        .flat_map(|t| matrix.row(t).iter().copied())
        .max()
        .unwrap_or(0);
    let cell = largest
        .to_string()
        .len()
        .max(c.saturating_sub(1).to_string().len())
        + 1;
    let name_width = class_names.iter().map(|n| n.len()).max().unwrap_or(0);
    let label = |t: usize| {
        let name = class_names.get(t).map(String::as_str).unwrap_or("");
        format!("{t:>2} {name:<name_width$}")
    };
    let mut out = String::new();
    let _ = write!(out, "  {:width$} |", "", width = name_width + 3);
    for p in 0..c {
        let _ = write!(out, "{p:>cell$}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  {}-+{}",
        "-".repeat(name_width + 3),
        "-".repeat(cell * c)
    );
    for t in 0..c {
        let _ = write!(out, "  {} |", label(t));
        for &n in matrix.row(t) {
            let _ = write!(out, "{n:>cell$}");
        }
        out.push('\n');
    }
    out
}

/// `index,label,predicted,<class names...>` then one row per image.
fn predictions_csv(rows: &[(usize, Vec<f32>)], labels: &[Label], class_names: &[String]) -> String {
    let mut out = String::from("index,label,predicted");
    for name in class_names {
        out.push(',');
        out.push_str(&csv_field(name));
    }
    out.push('\n');
    for ((index, probs), label) in rows.iter().zip(labels) {
        let predicted = argmax(probs);
        let _ = write!(out, "{index},{label},{predicted}");
        for p in probs {
            let _ = write!(out, ",{p:.6}");
        }
        out.push('\n');
    }
    out
}

/// The first index of the largest value (the prediction, as PyTorch's argmax).
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_row_per_image() {
        let names = vec!["cat".to_string(), "dog, big".to_string()];
        let rows = vec![(0, vec![0.25, 0.75]), (1, vec![0.9, 0.1])];
        let csv = predictions_csv(&rows, &[1, 1], &names);
        assert_eq!(
            csv,
            "index,label,predicted,cat,\"dog, big\"\n0,1,1,0.250000,0.750000\n1,1,0,0.900000,0.100000\n"
        );
    }

    #[test]
    fn confusion_table_aligns_counts() {
        let mut metrics = finetune_train::MetricsAccumulator::new(2);
        metrics
            .update(&[2.0, 0.0, 0.0, 3.0, 1.0, 0.0], &[0, 1, 1], 0.5)
            .unwrap();
        let m = metrics.finish();
        let table = confusion_table(&m.confusion, &["cat".into(), "dog".into()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "         | 0 1");
        assert_eq!(lines[2], "   0 cat | 1 0");
        assert_eq!(lines[3], "   1 dog | 1 1");
    }
}
