//! Where the batches of an epoch come from: images through the loader (the
//! frozen prefix of the network run on each batch without a graph), or the
//! cached outputs of that prefix. Training and evaluation walk both the same way.

use std::time::Duration;

use candle_core::{Device, Tensor};
use finetune_data::{Batch, Label, PrefetchLoader};
use finetune_model::{Cut, Mode, Vgg};

use crate::features::Features;
use crate::Result;

/// Rows of cached features evaluated at once.
const FEATURE_BATCH: usize = 256;

/// A batch as a `[N, C, H, W]` tensor on `device`.
pub(crate) fn batch_tensor(batch: &Batch, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        batch.images(),
        batch.shape().to_vec(),
        device,
    )?)
}

/// The batches of one pass over a data set, at the cut the trainable part starts from.
pub(crate) enum BatchSource<'a> {
    /// Images from `loader`, run through the network up to `cut` (nothing
    /// when `cut` is `Input`) in eval mode.
    Images {
        /// The loader (its shuffle, batch size and augmentation are the pass's).
        loader: &'a PrefetchLoader,
        /// Where the batches enter the trainable part.
        cut: Cut,
    },
    /// Cached features in the order and batch size of `loader`'s epoch.
    Features {
        /// The cache.
        features: &'a Features,
        /// The loader whose order and batch size the pass follows.
        loader: &'a PrefetchLoader,
    },
    /// Cached features in the order they are stored, [`FEATURE_BATCH`] at a time.
    StoredFeatures(&'a Features),
}

/// One batch at the cut, ready for the trainable part.
pub(crate) struct SourceBatch {
    /// Zero-based position of the batch in the epoch.
    pub(crate) step: usize,
    /// `[N, ...]` at the cut.
    pub(crate) input: Tensor,
    /// One label per row.
    pub(crate) labels: Vec<Label>,
    /// The dataset index of each row.
    pub(crate) indices: Vec<usize>,
    /// Time spent waiting for the loader so far this epoch.
    pub(crate) waited: Duration,
}

/// What the visitor of [`BatchSource::for_each`] says after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Go on with the next batch.
    Continue,
    /// Stop the pass here.
    Stop,
}

impl<'a> BatchSource<'a> {
    /// A training pass over `loader`: its batches of cached `features` when
    /// there are some, else its images run up to `cut`.
    pub(crate) fn training(
        features: Option<&'a Features>,
        loader: &'a PrefetchLoader,
        cut: Cut,
    ) -> BatchSource<'a> {
        match features {
            Some(features) => BatchSource::Features { features, loader },
            None => BatchSource::Images { loader, cut },
        }
    }

    /// Where the batches enter the network.
    pub(crate) fn cut(&self) -> Cut {
        match self {
            BatchSource::Images { cut, .. } => *cut,
            BatchSource::Features { features, .. } | BatchSource::StoredFeatures(features) => {
                features.cut
            }
        }
    }

    /// Number of batches in a pass.
    pub(crate) fn len(&self) -> usize {
        match self {
            BatchSource::Images { loader, .. } | BatchSource::Features { loader, .. } => {
                loader.len()
            }
            BatchSource::StoredFeatures(features) => features.len().div_ceil(FEATURE_BATCH),
        }
    }

    /// Number of images in a pass.
    pub(crate) fn num_samples(&self) -> usize {
        match self {
            BatchSource::Images { loader, .. } | BatchSource::Features { loader, .. } => {
                loader.num_samples()
            }
            BatchSource::StoredFeatures(features) => features.len(),
        }
    }

    /// Hands `visit` the batches of `epoch` from batch `skip` on, in order,
    /// until it says [`Next::Stop`] or the epoch ends. Skipped batches are
    /// still drawn from the loader (each image's augmentation depends only on
    /// the seed, the epoch and its index) but not computed. Returns the time
    /// spent waiting for the loader.
    pub(crate) fn for_each(
        &self,
        model: &Vgg,
        epoch: usize,
        skip: usize,
        mut visit: impl FnMut(SourceBatch) -> Result<Next>,
    ) -> Result<Duration> {
        match *self {
            BatchSource::Images { loader, cut } => {
                let mut batches = loader.epoch(epoch as u64);
                let mut step = 0;
                while let Some(batch) = batches.next() {
                    let batch = batch?;
                    let current = step;
                    step += 1;
                    if current < skip {
                        continue;
                    }
                    let mut input = batch_tensor(&batch, model.device())?;
                    if cut != Cut::Input {
                        input = model
                            .forward_range(&input, Cut::Input, cut, &Mode::Eval)?
                            .detach();
                    }
                    let next = visit(SourceBatch {
                        step: current,
                        input,
                        labels: batch.labels().to_vec(),
                        indices: batch.indices().to_vec(),
                        waited: batches.wait_time(),
                    })?;
                    if next == Next::Stop {
                        break;
                    }
                }
                Ok(batches.wait_time())
            }
            BatchSource::Features { features, loader } => {
                let order = loader.epoch_order(epoch as u64);
                let chunks = order
                    .chunks(loader.config().batch_size)
                    // `len()` already leaves out a short last batch under drop_last.
                    .take(loader.len());
                visit_features(features, chunks, skip, visit)
            }
            BatchSource::StoredFeatures(features) => {
                // Rows in stored order: each batch is a view, not a copy.
                let n = features.len();
                for (step, start) in (0..n).step_by(FEATURE_BATCH).enumerate().skip(skip) {
                    let rows = FEATURE_BATCH.min(n - start);
                    let next = visit(SourceBatch {
                        step,
                        input: features.data.narrow(0, start, rows)?,
                        labels: features.labels[start..start + rows].to_vec(),
                        indices: features.indices[start..start + rows].to_vec(),
                        waited: Duration::ZERO,
                    })?;
                    if next == Next::Stop {
                        break;
                    }
                }
                Ok(Duration::ZERO)
            }
        }
    }
}

fn visit_features<'a>(
    features: &Features,
    chunks: impl Iterator<Item = &'a [usize]>,
    skip: usize,
    mut visit: impl FnMut(SourceBatch) -> Result<Next>,
) -> Result<Duration> {
    for (step, indices) in chunks.enumerate().skip(skip) {
        let (input, labels) = features.gather(indices)?;
        let next = visit(SourceBatch {
            step,
            input,
            labels,
            indices: indices.to_vec(),
            waited: Duration::ZERO,
        })?;
        if next == Next::Stop {
            break;
        }
    }
    Ok(Duration::ZERO)
}
