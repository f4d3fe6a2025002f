//! Which epoch is the best, and when to stop for lack of progress (Keras's
//! and burn-train's early stopping): a [`Monitor`] picks the number, a
//! patience says how many epochs without a new best end the run.

use serde::{Deserialize, Serialize};

use crate::log::EpochRecord;
use crate::{Result, TrainError};

/// Which number decides the "best" epoch and early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Test top-1 accuracy (higher is better); falls back to train top-1 when
    /// the epoch was not evaluated.
    TestTop1,
    /// Test loss (lower is better); falls back to train loss.
    TestLoss,
    /// Training loss (lower is better).
    TrainLoss,
}

impl Monitor {
    /// The monitored value of an epoch, oriented so that higher is better.
    pub fn score(self, record: &EpochRecord) -> f64 {
        let test = record.test.as_ref();
        match self {
            Monitor::TestTop1 => test.map_or(record.train.top1, |m| m.top1),
            Monitor::TestLoss => -test.map_or(record.train.loss, |m| m.loss),
            Monitor::TrainLoss => -record.train.loss,
        }
    }
}

impl std::str::FromStr for Monitor {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "test_top1" | "top1" | "accuracy" => Ok(Monitor::TestTop1),
            "test_loss" => Ok(Monitor::TestLoss),
            "train_loss" => Ok(Monitor::TrainLoss),
            other => Err(TrainError::Config(format!(
                "unknown metric `{other}`: expected test_top1, test_loss or train_loss"
            ))),
        }
    }
}

/// The best epoch so far and the epochs since, judged by a [`Monitor`].
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    monitor: Monitor,
    patience: Option<usize>,
    /// (1-based epoch, its score) of the best epoch so far.
    best: Option<(usize, f64)>,
    /// Epochs since `best`.
    stale: usize,
}

impl EarlyStopping {
    /// A fresh run: no best epoch yet. `patience: None` never stops.
    pub fn new(monitor: Monitor, patience: Option<usize>) -> Self {
        EarlyStopping {
            monitor,
            patience,
            best: None,
            stale: 0,
        }
    }

    /// A resumed run's: its best epoch and score and the epochs since.
    pub fn resumed(
        monitor: Monitor,
        patience: Option<usize>,
        best: Option<(usize, f64)>,
        stale: usize,
    ) -> Self {
        EarlyStopping {
            monitor,
            patience,
            best,
            stale,
        }
    }

    /// Takes an epoch's record; returns whether it is the new best (ties keep the older).
    pub fn update(&mut self, record: &EpochRecord) -> bool {
        let score = self.monitor.score(record);
        let improved = self.best.is_none_or(|(_, best)| score > best);
        if improved {
            self.best = Some((record.epoch, score));
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        improved
    }

    /// Whether `patience` epochs have passed without a new best.
    pub fn should_stop(&self) -> bool {
        self.patience.is_some_and(|p| self.stale >= p)
    }

    /// (1-based epoch, score) of the best epoch so far.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    /// Epochs since the best one.
    pub fn stale(&self) -> usize {
        self.stale
    }

    /// What is being watched.
    pub fn monitor(&self) -> Monitor {
        self.monitor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetricsAccumulator;

    fn epoch(epoch: usize, train_loss: f64) -> EpochRecord {
        let mut m = MetricsAccumulator::new(2);
        m.update(&[1.0, 0.0], &[0], train_loss).unwrap();
        EpochRecord {
            epoch,
            epochs: 10,
            lr: 0.1,
            train: m.finish(),
            test: None,
            seconds: 1.0,
            images_per_sec: 1.0,
            data_wait_seconds: 0.0,
        }
    }

    #[test]
    fn the_best_epoch_is_kept_and_patience_counts_epochs_since() {
        let mut stopping = EarlyStopping::new(Monitor::TrainLoss, Some(2));
        assert!(stopping.update(&epoch(1, 1.0)));
        assert!(stopping.update(&epoch(2, 0.5)));
        assert!(!stopping.update(&epoch(3, 0.5)), "a tie is no improvement");
        assert!(!stopping.should_stop());
        assert!(!stopping.update(&epoch(4, 0.7)));
        assert!(stopping.should_stop());
        assert_eq!(stopping.best(), Some((2, -0.5)));
        assert!(!EarlyStopping::new(Monitor::TrainLoss, None).should_stop());
    }
}
