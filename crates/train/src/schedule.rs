//! Learning-rate schedules as pure functions of the position in the run.
//!
//! PyTorch's schedulers are stateful objects stepped by the loop; here the
//! learning rate is a closed form of (epoch, batch), so resuming needs no
//! schedule state at all and the numbers match PyTorch's to rounding.

use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// The shape of the learning rate over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// PyTorch's `StepLR`, stepped per epoch: `lr = base * gamma^floor(epoch / step_size)`.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Multiplicative decay.
        gamma: f64,
    },
    /// PyTorch's `CosineAnnealingLR`, stepped per epoch:
    /// `lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2`.
    Cosine {
        /// Half-period in epochs (the recipe uses the run's length).
        t_max: usize,
        /// The floor reached at `epoch == t_max`.
        eta_min: f64,
    },
    /// PyTorch's `OneCycleLR` (two phases, cosine annealing), stepped per batch,
    /// with the base learning rate as `max_lr` and `epochs * steps_per_epoch` steps.
    OneCycle {
        /// Epochs in the cycle (normally the run's length).
        epochs: usize,
        /// Fraction of the cycle spent rising (PyTorch default 0.3).
        pct_start: f64,
        /// `initial_lr = max_lr / div_factor` (PyTorch default 25).
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor` (PyTorch default 1e4).
        final_div_factor: f64,
    },
}

impl Schedule {
    /// A one-cycle schedule with PyTorch's defaults over `epochs` epochs.
    pub fn one_cycle(epochs: usize) -> Self {
        Schedule::OneCycle {
            epochs,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// Checks the parameters PyTorch's constructors would reject.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                if step_size == 0 || !gamma.is_finite() {
                    return bad(format!(
                        "step schedule needs step_size >= 1 and a finite gamma, got {step_size} and {gamma}"
                    ));
                }
                Ok(())
            }
            Schedule::Cosine { t_max, eta_min } => {
                if t_max == 0 || !eta_min.is_finite() {
                    return bad(format!(
                        "cosine schedule needs t_max >= 1 and a finite eta_min, got {t_max} and {eta_min}"
                    ));
                }
                Ok(())
            }
            Schedule::OneCycle {
                epochs,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                if epochs == 0
                    || !(0.0..=1.0).contains(&pct_start)
                    || !div_factor.is_finite()
                    || div_factor <= 0.0
                    || !final_div_factor.is_finite()
                    || final_div_factor <= 0.0
                {
                    return bad(format!(
                        "one-cycle needs epochs >= 1, pct_start in [0, 1] and positive div factors, got {epochs}, {pct_start}, {div_factor}, {final_div_factor}"
                    ));
                }
                Ok(())
            }
        }
    }

    /// The learning rate for batch `step_in_epoch` of zero-based `epoch`.
    pub fn lr(
        &self,
        base_lr: f64,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> f64 {
        match *self {
            Schedule::Constant => base_lr,
            Schedule::Step { step_size, gamma } => {
                base_lr * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            Schedule::Cosine { t_max, eta_min } => {
                let t = epoch as f64 / t_max.max(1) as f64;
                eta_min + (base_lr - eta_min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            Schedule::OneCycle { .. } => self
                .one_cycle_phase(base_lr, epoch, step_in_epoch, steps_per_epoch)
                .map(|(lr, _)| lr)
                .unwrap_or(base_lr),
        }
    }

    /// The momentum (SGD) or beta1 (AdamW) a one-cycle schedule sets at this
    /// batch, cycling inversely to the learning rate between `base_momentum`
    /// 0.85 and `max_momentum` 0.95 (PyTorch's `cycle_momentum=True`
    /// defaults); `None` for schedules that leave momentum alone.
    pub fn momentum(
        &self,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> Option<f64> {
        self.one_cycle_phase(1.0, epoch, step_in_epoch, steps_per_epoch)
            .map(|(_, m)| m)
    }

    /// OneCycleLR's `get_lr` (`torch/optim/lr_scheduler.py`): the phase holding
    /// the step is interpolated with `anneal_cos`; phase ends are float steps.
    fn one_cycle_phase(
        &self,
        max_lr: f64,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> Option<(f64, f64)> {
        let Schedule::OneCycle {
            epochs,
            pct_start,
            div_factor,
            final_div_factor,
        } = *self
        else {
            return None;
        };
        const BASE_MOMENTUM: f64 = 0.85;
        const MAX_MOMENTUM: f64 = 0.95;
        let total = (epochs * steps_per_epoch) as f64;
        let step = (epoch * steps_per_epoch + step_in_epoch) as f64;
        let initial = max_lr / div_factor;
        let min = initial / final_div_factor;
        // (end_step, start_lr, end_lr, start_momentum, end_momentum)
        let phases = [
            (
                pct_start * total - 1.0,
                initial,
                max_lr,
                MAX_MOMENTUM,
                BASE_MOMENTUM,
            ),
            (total - 1.0, max_lr, min, BASE_MOMENTUM, MAX_MOMENTUM),
        ];
        let anneal_cos = |start: f64, end: f64, pct: f64| {
            end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
        };
        let mut start_step = 0.0;
        for (i, &(end_step, lr0, lr1, m0, m1)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let pct = (step - start_step) / (end_step - start_step);
                return Some((anneal_cos(lr0, lr1, pct), anneal_cos(m0, m1, pct)));
            }
            start_step = end_step;
        }
        None
    }
}

/// What a warm-up's length counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupUnit {
    /// Whole epochs: the factor changes at each epoch's start.
    Epochs,
    /// Batches: the factor changes every step.
    Steps,
}

/// A linear warm-up multiplying the schedule's learning rate, like PyTorch's
/// `LinearLR(start_factor, end_factor=1, total_iters=length)` chained with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// How many epochs or steps the warm-up lasts.
    pub length: usize,
    /// Whether `length` counts epochs or steps.
    pub unit: WarmupUnit,
    /// The factor at the very start (PyTorch's `LinearLR` default is 1/3).
    pub start_factor: f64,
}

impl Warmup {
    /// The multiplier at this position: `start + (1 - start) * min(t, length) / length`.
    pub fn factor(&self, epoch: usize, step_in_epoch: usize, steps_per_epoch: usize) -> f64 {
        if self.length == 0 {
            return 1.0;
        }
        let t = match self.unit {
            WarmupUnit::Epochs => epoch,
            WarmupUnit::Steps => epoch * steps_per_epoch + step_in_epoch,
        };
        let frac = t.min(self.length) as f64 / self.length as f64;
        self.start_factor + (1.0 - self.start_factor) * frac
    }
}

/// A schedule with an optional warm-up: what a run's configuration holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// The main schedule.
    pub schedule: Schedule,
    /// The warm-up multiplied onto it, if any.
    #[serde(default)]
    pub warmup: Option<Warmup>,
}

impl LrSchedule {
    /// A schedule without warm-up.
    pub fn new(schedule: Schedule) -> Self {
        LrSchedule {
            schedule,
            warmup: None,
        }
    }

    /// Checks the schedule's and warm-up's parameters.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        if let Some(w) = self.warmup {
            if !(0.0..=1.0).contains(&w.start_factor) {
                return Err(TrainError::Config(format!(
                    "warm-up start_factor must be in [0, 1], got {}",
                    w.start_factor
                )));
            }
        }
        Ok(())
    }

    /// The learning rate for batch `step_in_epoch` of zero-based `epoch`.
    pub fn lr(
        &self,
        base_lr: f64,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> f64 {
        let lr = self
            .schedule
            .lr(base_lr, epoch, step_in_epoch, steps_per_epoch);
        match self.warmup {
            Some(w) => lr * w.factor(epoch, step_in_epoch, steps_per_epoch),
            None => lr,
        }
    }

    /// The momentum to set at this batch, if the schedule cycles it.
    pub fn momentum(
        &self,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> Option<f64> {
        self.schedule
            .momentum(epoch, step_in_epoch, steps_per_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_and_cosine_by_hand() {
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.5,
        };
        let lrs: Vec<f64> = (0..5).map(|e| s.lr(1.0, e, 3, 10)).collect();
        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.25]);
        let c = Schedule::Cosine {
            t_max: 4,
            eta_min: 0.0,
        };
        assert!((c.lr(1.0, 2, 0, 1) - 0.5).abs() < 1e-15);
        assert!(c.lr(1.0, 4, 0, 1).abs() < 1e-15);
        assert_eq!(c.momentum(0, 0, 1), None);
    }

    #[test]
    fn warmup_ramps_then_leaves_schedule_alone() {
        let s = LrSchedule {
            schedule: Schedule::Constant,
            warmup: Some(Warmup {
                length: 4,
                unit: WarmupUnit::Steps,
                start_factor: 0.0,
            }),
        };
        let lrs: Vec<f64> = (0..6).map(|i| s.lr(2.0, i / 3, i % 3, 3)).collect();
        assert_eq!(lrs, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.0]);
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let s = LrSchedule::new(Schedule::one_cycle(3));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), s);
        assert!(Schedule::Cosine {
            t_max: 0,
            eta_min: 0.0
        }
        .validate()
        .is_err());
    }
}
