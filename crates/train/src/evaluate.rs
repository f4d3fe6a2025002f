//! Evaluation: loss, accuracy and the confusion matrix in eval mode, from
//! images or from cached features.

use candle_core::{DType, Tensor};
use finetune_data::PrefetchLoader;
use finetune_model::{Cut, Mode, Vgg};

use crate::features::Features;
use crate::fit::{batch_tensor, model_err};
use crate::progress::Progress;
use crate::{Metrics, MetricsAccumulator, Result};

/// Rows of features evaluated at once.
const FEATURE_BATCH: usize = 256;

/// Mean cross-entropy of `logits` against `labels`, and the logits on the host.
fn score(logits: &Tensor, labels: &[u32]) -> Result<(f64, Vec<f32>)> {
    let targets = Tensor::from_slice(labels, labels.len(), logits.device())?;
    let loss = candle_nn::loss::cross_entropy(logits, &targets)?;
    let loss = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
    Ok((loss, logits.flatten_all()?.to_vec1()?))
}

/// Evaluates `model` on every batch of `loader`; `on_batch` sees each batch's
/// dataset indices and its softmax probabilities (`[n * num_classes]`,
/// row-major), for prediction files.
pub(crate) fn evaluate_loader(
    model: &Vgg,
    loader: &PrefetchLoader,
    num_classes: usize,
    progress: &Progress,
    mut on_batch: impl FnMut(&[usize], &[f32]) -> Result<()>,
) -> Result<Metrics> {
    let mut metrics = MetricsAccumulator::new(num_classes);
    let bar = progress.images("evaluating", loader.num_samples());
    let mut seen = 0;
    let mut batches = loader.epoch(0);
    while let Some(batch) = batches.next() {
        let batch = batch?;
        let x = batch_tensor(&batch, model.device())?;
        let logits = model.forward_t(&x, &Mode::Eval).map_err(model_err)?;
        let (loss, host) = score(&logits, batch.labels())?;
        let labels: Vec<usize> = batch.labels().iter().map(|&l| l as usize).collect();
        metrics.update(&host, &labels, loss)?;
        let probs: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)?
            .flatten_all()?
            .to_vec1()?;
        on_batch(batch.indices(), &probs)?;
        seen += batch.len();
        bar.update(seen, seen, batches.wait_time());
    }
    bar.finish();
    Ok(metrics.finish())
}

/// Evaluates the part of `model` after `cut` on cached features.
pub(crate) fn evaluate_features(
    model: &Vgg,
    features: &Features,
    cut: Cut,
    num_classes: usize,
    progress: &Progress,
) -> Result<Metrics> {
    let mut metrics = MetricsAccumulator::new(num_classes);
    let bar = progress.images("evaluating", features.len());
    for start in (0..features.len()).step_by(FEATURE_BATCH) {
        let n = FEATURE_BATCH.min(features.len() - start);
        let x = features.data.narrow(0, start, n)?;
        let labels = &features.labels[start..start + n];
        let logits = model
            .forward_range(&x, cut, Cut::Logits, &Mode::Eval)
            .map_err(model_err)?;
        let (loss, host) = score(&logits, labels)?;
        let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        metrics.update(&host, &labels, loss)?;
        bar.update(start + n, start + n, std::time::Duration::ZERO);
    }
    bar.finish();
    Ok(metrics.finish())
}
