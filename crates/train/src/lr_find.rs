//! The learning-rate range test (Smith, "Cyclical Learning Rates for
//! Training Neural Networks", 2015; fastai's `Learner.lr_find`): train for a
//! few steps while the learning rate grows exponentially, and read off where
//! the loss falls fastest.

use std::sync::atomic::{AtomicBool, Ordering};

use finetune_model::{Mode, Vgg};

use crate::feature_cache::FeatureCache;
use crate::fit::{step_seed, Stage};
use crate::progress::Progress;
use crate::source::{BatchSource, Next};
use crate::step::forward_loss;
use crate::{FitConfig, FitData, Result, TrainError};

/// How the range test runs; the defaults are fastai's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrFindConfig {
    /// The learning rate of the first step.
    pub start_lr: f64,
    /// The learning rate of the last step.
    pub end_lr: f64,
    /// Steps from `start_lr` to `end_lr` (the data is passed over again if
    /// an epoch has fewer batches).
    pub steps: usize,
    /// Weight of the past in the loss's exponential moving average.
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds its minimum this many times.
    pub diverge_factor: f64,
}

impl LrFindConfig {
    /// Refuses a test that cannot run: rates not `0 < start < end` (finite),
    /// fewer than 2 steps, smoothing outside [0, 1), a divergence factor <= 1.
    pub fn validate(&self) -> Result<()> {
        let valid = self.start_lr > 0.0
            && self.end_lr > self.start_lr
            && self.end_lr.is_finite()
            && self.steps >= 2
            && (0.0..1.0).contains(&self.smoothing)
            && self.diverge_factor > 1.0;
        if valid {
            return Ok(());
        }
        Err(TrainError::Config(format!(
            "learning-rate range test: start {} and end {} must be 0 < start < end, with at least 2 steps (got {}), smoothing in [0, 1) (got {}) and a divergence factor > 1 (got {})",
            self.start_lr, self.end_lr, self.steps, self.smoothing, self.diverge_factor
        )))
    }
}

impl Default for LrFindConfig {
    /// 1e-7 to 10 in 100 steps, smoothing 0.98, stop at 4x the minimum.
    fn default() -> Self {
        LrFindConfig {
            start_lr: 1e-7,
            end_lr: 10.0,
            steps: 100,
            smoothing: 0.98,
            diverge_factor: 4.0,
        }
    }
}

/// Why the range test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrFindStop {
    /// Every step ran.
    Completed,
    /// The smoothed loss passed `diverge_factor` times its minimum, or
    /// became NaN or infinite, at this zero-based step.
    Diverged(usize),
    /// The loss was NaN or infinite from the first step: the weights or
    /// the data are broken; no rate can be suggested.
    NonFiniteAtStart,
}

/// What the range test measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFinding {
    /// The learning rate of each step taken.
    pub lrs: Vec<f64>,
    /// The loss of each step (before its update).
    pub losses: Vec<f64>,
    /// The bias-corrected exponential moving average of `losses`.
    pub smoothed: Vec<f64>,
    /// The rate where the smoothed loss falls fastest against log(lr)
    /// (fastai's `steep`).
    pub steepest: Option<f64>,
    /// A tenth of the rate of the lowest smoothed loss (fastai's `minimum`).
    pub minimum_tenth: Option<f64>,
    /// Why it ended.
    pub stop: LrFindStop,
}

/// Runs the range test on `model` with `data.train` (its batches, shuffle
/// and augmentation) and `config`'s freeze policy, optimiser and parameter
/// groups; its schedule and epochs are not used. Changes `model`'s weights in
/// memory only: nothing is written but, with `config.feature_cache_dir`, the
/// frozen layers' cached features (which make a head-only test take seconds).
/// `interrupt` stops it after the current step.
pub fn lr_find(
    model: &mut Vgg,
    data: &FitData,
    config: &FitConfig,
    find: &LrFindConfig,
    interrupt: &AtomicBool,
) -> Result<LrFinding> {
    config.validate(model.config())?;
    find.validate()?;
    let progress = Progress::new(config.quiet);
    let mut stage = Stage::new(model, config.policy_at(0), config)?;
    let loader = &data.train;
    let cache = FeatureCache::new(config.cache_features, config.feature_cache_dir.clone());
    stage.prepare_train_features(model, loader, &cache, &progress)?;
    let source = BatchSource::training(stage.train_features.as_ref(), loader, stage.cut);
    let ratio = find.end_lr / find.start_lr;
    let lr_at = |i: usize| find.start_lr * ratio.powf(i as f64 / (find.steps - 1) as f64);
    let bar = progress.images("lr-find", find.steps);
    let (mut lrs, mut losses, mut smoothed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut average, mut best) = (0.0, f64::INFINITY);
    let mut stop = LrFindStop::Completed;
    let cut = stage.cut;
    let optimizer = &mut stage.optimizer;
    let mut epoch = 0;
    'passes: while lrs.len() < find.steps {
        let mut took = false;
        source.for_each(model, epoch, 0, |batch| {
            took = true;
            let i = lrs.len();
            let lr = lr_at(i);
            optimizer.set_lr(lr);
            let mode = Mode::Train {
                dropout_seed: step_seed(config.seed, epoch, batch.step),
            };
            let output = forward_loss(model, &batch.input, cut, &batch.labels, &mode)?;
            let loss = output.loss_value;
            if !loss.is_finite() {
                stop = if i == 0 {
                    LrFindStop::NonFiniteAtStart
                } else {
                    LrFindStop::Diverged(i)
                };
                return Ok(Next::Stop);
            }
            average = find.smoothing * average + (1.0 - find.smoothing) * loss;
            let smooth = average / (1.0 - find.smoothing.powi(i as i32 + 1));
            lrs.push(lr);
            losses.push(loss);
            smoothed.push(smooth);
            bar.update(i + 1, i + 1, batch.waited);
            if i > 0 && smooth > find.diverge_factor * best {
                stop = LrFindStop::Diverged(i);
                return Ok(Next::Stop);
            }
            best = best.min(smooth);
            optimizer.step(&output.loss.backward()?)?;
            let done = lrs.len() >= find.steps || interrupt.load(Ordering::SeqCst);
            Ok(if done { Next::Stop } else { Next::Continue })
        })?;
        if stop != LrFindStop::Completed || !took || interrupt.load(Ordering::SeqCst) {
            break 'passes;
        }
        epoch += 1;
    }
    bar.finish();
    let (steepest, minimum_tenth) = if stop == LrFindStop::NonFiniteAtStart {
        (None, None)
    } else {
        suggestions(&lrs, &smoothed, find.steps)
    };
    Ok(LrFinding {
        lrs,
        losses,
        smoothed,
        steepest,
        minimum_tenth,
        stop,
    })
}

/// fastai's suggestions from the smoothed curve, leaving out the first
/// tenth of the planned steps and the last five points (noise and the
/// divergence) when enough remain: the rate of the steepest descent against
/// log(lr), and a tenth of the rate of the lowest loss.
fn suggestions(lrs: &[f64], smoothed: &[f64], steps: usize) -> (Option<f64>, Option<f64>) {
    let (start, end) = (steps / 10, lrs.len().saturating_sub(5));
    let (lrs, losses) = if end > start + 2 {
        (&lrs[start..end], &smoothed[start..end])
    } else {
        (lrs, smoothed)
    };
    if lrs.len() < 2 {
        return (None, None);
    }
    let steepest = (0..lrs.len() - 1)
        .map(|i| {
            let slope = (losses[i + 1] - losses[i]) / (lrs[i + 1].ln() - lrs[i].ln());
            (slope, lrs[i])
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, lr)| lr);
    let lowest = (0..lrs.len())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .map(|i| lrs[i] / 10.0);
    (steepest, lowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_read_the_steepest_fall_and_the_minimum() {
        // A loss flat at 2, falling fastest around lr 1e-3, lowest at 1e-1,
        // then rising.
        let lrs: Vec<f64> = (0..61)
            .map(|i| 1e-6 * 10f64.powf(i as f64 / 10.0))
            .collect();
        let loss: Vec<f64> = lrs
            .iter()
            .map(|&lr| {
                let x = lr.log10();
                2.0 - 1.0 / (1.0 + (-(x + 3.0) * 4.0).exp())
                    + if x > -1.0 { (x + 1.0) * 3.0 } else { 0.0 }
            })
            .collect();
        let (steep, min10) = suggestions(&lrs, &loss, 61);
        let steep = steep.unwrap().log10();
        assert!((steep + 3.0).abs() <= 0.15, "steepest at 1e{steep}");
        assert!((min10.unwrap().log10() + 2.0).abs() <= 0.11, "{min10:?}");
        assert_eq!(suggestions(&lrs[..1], &loss[..1], 61), (None, None));
    }
}
