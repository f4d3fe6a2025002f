//! Stopping on a NaN or infinite loss.

use crate::{Result, TrainError};

/// Returns an error naming the epoch and step when `loss` is NaN or infinite.
///
/// The loop calls this after every batch, before the optimiser step, so the
/// parameters (and the last checkpoint) are never touched by a diverged update.
pub fn check_finite_loss(loss: f64, epoch: usize, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFiniteLoss {
            epoch,
            step,
            value: loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_passes_nan_and_inf_stop() {
        assert!(check_finite_loss(2.3, 0, 0).is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = check_finite_loss(bad, 3, 17).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("epoch 3, step 17"), "{msg}");
            assert!(matches!(
                err,
                TrainError::NonFiniteLoss {
                    epoch: 3,
                    step: 17,
                    ..
                }
            ));
        }
    }
}
