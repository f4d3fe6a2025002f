//! Classification metrics accumulated over an epoch from host-side logits.

use finetune_data::Label;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// A confusion matrix: `counts[true_label][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    num_classes: usize,
    /// Row-major, `num_classes * num_classes` counts.
    counts: Vec<u64>,
}

/// One class's scores as scikit-learn's `classification_report` computes
/// them from a confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    /// Of the images predicted as this class, the share that are: `tp / (tp + fp)`
    /// (0 when nothing was predicted as it, scikit-learn's `zero_division`).
    pub precision: f64,
    /// Of this class's images, the share predicted as it: `tp / (tp + fn)`
    /// (its accuracy; 0 without images).
    pub recall: f64,
    /// The harmonic mean of the two (0 when both are).
    pub f1: f64,
    /// This class's images.
    pub support: u64,
}

impl ClassScores {
    fn from_counts(tp: u64, predicted: u64, support: u64) -> ClassScores {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        ClassScores {
            precision,
            recall,
            f1,
            support,
        }
    }
}

impl ConfusionMatrix {
    /// Precision, recall, F1 and support of every class (rows: true class,
    /// columns: predicted), as `sklearn.metrics.precision_recall_fscore_support`.
    pub fn class_scores(&self) -> Vec<ClassScores> {
        let n = self.num_classes;
        (0..n)
            .map(|c| {
                let tp = self.get(c, c);
                let predicted: u64 = (0..n).map(|t| self.get(t, c)).sum();
                let support: u64 = self.row(c).iter().sum();
                ClassScores::from_counts(tp, predicted, support)
            })
            .collect()
    }

    /// The unweighted mean of each score over the classes (`macro avg`) and
    /// the mean weighted by support (`weighted avg`), as scikit-learn reports them.
    pub fn averages(&self) -> (ClassScores, ClassScores) {
        let scores = self.class_scores();
        let total: u64 = scores.iter().map(|s| s.support).sum();
        let mean = |f: &dyn Fn(&ClassScores) -> f64, weighted: bool| {
            let sum: f64 = scores
                .iter()
                .map(|s| f(s) * if weighted { s.support as f64 } else { 1.0 })
                .sum();
            let by = if weighted {
                total as f64
            } else {
                scores.len() as f64
            };
            if by == 0.0 {
                0.0
            } else {
                sum / by
            }
        };
        let avg = |weighted| ClassScores {
            precision: mean(&|s| s.precision, weighted),
            recall: mean(&|s| s.recall, weighted),
            f1: mean(&|s| s.f1, weighted),
            support: total,
        };
        (avg(false), avg(true))
    }
    /// An all-zero matrix for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// The number of classes (rows and columns).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// How many samples of class `truth` were predicted as `predicted`.
    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.num_classes + predicted]
    }

    /// The row of true class `truth`.
    pub fn row(&self, truth: usize) -> &[u64] {
        &self.counts[truth * self.num_classes..(truth + 1) * self.num_classes]
    }

    fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth * self.num_classes + predicted] += 1;
    }
}

/// Running loss and accuracy counters for one pass over a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsAccumulator {
    num_classes: usize,
    loss_sum: f64,
    samples: u64,
    top1: u64,
    top5: u64,
    confusion: ConfusionMatrix,
}

/// The metrics of one pass over a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean loss per sample.
    pub loss: f64,
    /// Fraction of samples whose highest logit is the true class.
    pub top1: f64,
    /// Fraction of samples whose true class is among the 5 highest logits
    /// (all classes when there are fewer than 5).
    pub top5: f64,
    /// Top-1 accuracy per true class; `None` for a class with no samples.
    pub per_class: Vec<Option<f64>>,
    /// Number of samples seen.
    pub samples: u64,
    /// Rows are true labels, columns predictions.
    pub confusion: ConfusionMatrix,
}

impl MetricsAccumulator {
    /// Empty counters for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        MetricsAccumulator {
            num_classes,
            loss_sum: 0.0,
            samples: 0,
            top1: 0,
            top5: 0,
            confusion: ConfusionMatrix::new(num_classes),
        }
    }

    /// Adds a batch: row-major `logits` (`labels.len() * num_classes`), the
    /// true `labels`, and the batch's mean loss (weighted by batch size so the
    /// epoch loss is a per-sample mean, whatever the last batch's size).
    pub fn update(&mut self, logits: &[f32], labels: &[Label], mean_loss: f64) -> Result<()> {
        let c = self.num_classes;
        if logits.len() != labels.len() * c {
            return Err(TrainError::Config(format!(
                "metrics: {} logits for {} labels of {c} classes (expected {})",
                logits.len(),
                labels.len(),
                labels.len() * c
            )));
        }
        for (row, &label) in logits.chunks_exact(c.max(1)).zip(labels) {
            let label = label as usize;
            if label >= c {
                return Err(TrainError::Config(format!(
                    "metrics: label {label} out of range for {c} classes"
                )));
            }
            let rank = rank_of(row, label);
            if rank == 0 {
                self.top1 += 1;
            }
            if rank < 5 {
                self.top5 += 1;
            }
            self.confusion.add(label, argmax(row));
        }
        self.loss_sum += mean_loss * labels.len() as f64;
        self.samples += labels.len() as u64;
        Ok(())
    }

    /// The metrics so far (zero accuracies and a NaN loss before any sample).
    pub fn finish(&self) -> Metrics {
        let n = self.samples as f64;
        let per_class = (0..self.num_classes)
            .map(|k| {
                let row = self.confusion.row(k);
                let total: u64 = row.iter().sum();
                (total > 0).then(|| row[k] as f64 / total as f64)
            })
            .collect();
        Metrics {
            loss: self.loss_sum / n,
            top1: if n > 0.0 { self.top1 as f64 / n } else { 0.0 },
            top5: if n > 0.0 { self.top5 as f64 / n } else { 0.0 },
            per_class,
            samples: self.samples,
            confusion: self.confusion.clone(),
        }
    }
}

/// The first index of the largest logit, like `torch.argmax`.
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The position of `label` in a descending sort of `row` where ties go to the
/// lower index: consistent with [`argmax`] for top-1.
fn rank_of(row: &[f32], label: usize) -> usize {
    let x = row[label];
    row.iter()
        .enumerate()
        .filter(|&(i, &v)| v > x || (v == x && i < label))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_top5_per_class_and_confusion() {
        let mut m = MetricsAccumulator::new(6);
        #[rustfmt::skip]
        let logits = [
            // label 0, predicted 0
            9.0, 1.0, 2.0, 3.0, 4.0, 5.0,
            // label 1, ranks 5th: top-5 yes, top-1 no (predicted 0)
            9.0, 5.0, 8.0, 7.0, 6.0, 0.0,
            // label 2, ranks 6th: neither (predicted 0)
            9.0, 5.0, 0.0, 7.0, 6.0, 8.0,
            // label 1, tie with 3 at the top: ties go to the lower index, so 1 wins
            0.0, 9.0, 0.0, 9.0, 0.0, 0.0,
        ];
        m.update(&logits[..12], &[0, 1], 1.0).unwrap();
        m.update(&logits[12..], &[2, 1], 2.0).unwrap();
        let r = m.finish();
        assert_eq!(r.samples, 4);
        assert!((r.loss - 1.5).abs() < 1e-12);
        assert_eq!(r.top1, 0.5);
        assert_eq!(r.top5, 0.75);
        assert_eq!(r.confusion.row(1), &[1, 1, 0, 0, 0, 0]);
        assert_eq!(r.confusion.get(2, 0), 1);
        assert_eq!(r.per_class[0], Some(1.0));
        assert_eq!(r.per_class[1], Some(0.5));
        assert_eq!(r.per_class[2], Some(0.0));
        assert_eq!(r.per_class[4], None);
    }

    #[test]
    fn rejects_bad_shapes_and_labels() {
        let mut m = MetricsAccumulator::new(3);
        assert!(m.update(&[0.0; 5], &[0, 1], 0.0).is_err());
        assert!(m.update(&[0.0; 3], &[3], 0.0).is_err());
    }
}
