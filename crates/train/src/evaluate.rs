//! Evaluation: loss, accuracy and the confusion matrix in eval mode, from
//! images or from cached features, one [`forward_loss`] per batch as in
//! training.

use finetune_data::PrefetchLoader;
use finetune_model::{Mode, Vgg};

use crate::progress::Progress;
use crate::source::{BatchSource, Next};
use crate::step::forward_loss;
use crate::tta::{as_logits, Tta};
use crate::{Metrics, MetricsAccumulator, Result};

/// What [`evaluate_source`] hands out per batch besides the metrics: the
/// batch's dataset indices and softmax probabilities (`[n * num_classes]`,
/// row-major), for prediction files.
pub(crate) type OnBatch<'a> = &'a mut dyn FnMut(&[usize], &[f32]) -> Result<()>;

/// Evaluates `model` on every batch of `source`, handing each batch to
/// `on_batch` when there is one.
pub(crate) fn evaluate_source(
    model: &Vgg,
    source: &BatchSource<'_>,
    progress: &Progress,
    on_batch: Option<OnBatch<'_>>,
) -> Result<Metrics> {
    evaluate_views(model, source, progress, &Tta::None, on_batch)
}

/// [`evaluate_source`] with the probabilities averaged over `tta`'s views of
/// each image (images only: a source of cached features has no views).
fn evaluate_views(
    model: &Vgg,
    source: &BatchSource<'_>,
    progress: &Progress,
    tta: &Tta,
    mut on_batch: Option<OnBatch<'_>>,
) -> Result<Metrics> {
    let cut = source.cut();
    let mut metrics = MetricsAccumulator::new(model.config().num_classes);
    let bar = progress.images("evaluating", source.num_samples());
    let mut seen = 0;
    source.for_each(model, 0, 0, |batch| {
        // The batch's probabilities, when they are computed anyway or wanted.
        let probs = if *tta != Tta::None && cut == finetune_model::Cut::Input {
            let probs = tta.probabilities(model, &batch.input)?;
            let (logits, loss) = as_logits(&probs, &batch.labels)?;
            metrics.update(&logits, &batch.labels, loss)?;
            Some(probs)
        } else {
            let output = forward_loss(model, &batch.input, cut, &batch.labels, &Mode::Eval)?;
            output.record(&mut metrics, &batch.labels)?;
            on_batch
                .is_some()
                .then(|| candle_nn::ops::softmax_last_dim(&output.logits))
                .transpose()?
        };
        if let (Some(on_batch), Some(probs)) = (on_batch.as_mut(), probs) {
            on_batch(&batch.indices, &probs.flatten_all()?.to_vec1::<f32>()?)?;
        }
        seen += batch.labels.len();
        bar.update(seen, seen, batch.waited);
        Ok(Next::Continue)
    })?;
    bar.finish();
    Ok(metrics.finish())
}

/// Metrics of `model` on `loader` in eval mode, for `finetune eval`.
pub fn evaluate(model: &Vgg, loader: &PrefetchLoader, quiet: bool) -> Result<Metrics> {
    let source = BatchSource::Images {
        loader,
        cut: finetune_model::Cut::Input,
    };
    evaluate_source(model, &source, &Progress::new(quiet), None)
}

/// Like [`evaluate`], with each image's probabilities averaged over `tta`'s
/// views (the loss and accuracy are those of the averaged probabilities),
/// also handing `on_batch` each batch's dataset indices and softmax
/// probabilities (`[batch * num_classes]`, row-major), for prediction files.
/// An error from `on_batch` stops the evaluation and is returned.
pub fn evaluate_with(
    model: &Vgg,
    loader: &PrefetchLoader,
    quiet: bool,
    tta: &Tta,
    mut on_batch: impl FnMut(&[usize], &[f32]) -> Result<()>,
) -> Result<Metrics> {
    let source = BatchSource::Images {
        loader,
        cut: finetune_model::Cut::Input,
    };
    evaluate_views(
        model,
        &source,
        &Progress::new(quiet),
        tta,
        Some(&mut on_batch),
    )
}
