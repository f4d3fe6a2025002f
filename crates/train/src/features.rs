//! [`Features`]: what the frozen prefix of the network computed for every
//! image of a data set, addressable by dataset index, so that the trainable
//! part can train on it epoch after epoch (see `feature_cache.rs`).

use std::collections::HashMap;

use candle_core::Tensor;
use finetune_data::Label;
use finetune_model::Cut;

use crate::{Result, TrainError};

/// The frozen prefix's output for every image of a loader, with labels.
pub struct Features {
    /// Where in the network the rows were taken: the trainable part starts here.
    pub(crate) cut: Cut,
    /// `[N, ...]`; row `r` belongs to dataset index `indices[r]`.
    pub(crate) data: Tensor,
    pub(crate) labels: Vec<Label>,
    pub(crate) indices: Vec<usize>,
    row_of: HashMap<usize, usize>,
}

impl Features {
    /// Rows `data` taken at `cut`, their labels and the dataset indices they belong to.
    pub(crate) fn new(cut: Cut, data: Tensor, labels: Vec<Label>, indices: Vec<usize>) -> Features {
        let row_of = indices.iter().enumerate().map(|(r, &i)| (i, r)).collect();
        Features {
            cut,
            data,
            labels,
            indices,
            row_of,
        }
    }

    /// The rows of the given dataset indices, in that order, and their labels.
    pub(crate) fn gather(&self, dataset_indices: &[usize]) -> Result<(Tensor, Vec<Label>)> {
        let mut rows = Vec::with_capacity(dataset_indices.len());
        for i in dataset_indices {
            let row = self.row_of.get(i).copied().ok_or_else(|| {
                TrainError::Config(format!("internal: image {i} is not in the feature cache"))
            })?;
            rows.push(row as u32);
        }
        let labels = rows.iter().map(|&r| self.labels[r as usize]).collect();
        let rows = Tensor::from_vec(rows, dataset_indices.len(), self.data.device())?;
        Ok((self.data.index_select(&rows, 0)?, labels))
    }

    /// Number of cached images.
    pub(crate) fn len(&self) -> usize {
        self.indices.len()
    }
}
