//! One batch through the trainable part of the network: logits, the
//! cross-entropy loss (PyTorch's `nn.CrossEntropyLoss`, mean over the
//! batch), and the metrics it adds to. Training and evaluation share it.

use candle_core::{DType, Tensor};
use finetune_data::Label;
use finetune_model::{Cut, Mode, Vgg};

use crate::{MetricsAccumulator, Result, TrainError};

/// What a batch gave: its logits and its mean loss.
pub(crate) struct BatchOutput {
    /// `[N, num_classes]`.
    pub(crate) logits: Tensor,
    /// The mean cross-entropy, as a tensor to differentiate.
    pub(crate) loss: Tensor,
    /// The same on the host.
    pub(crate) loss_value: f64,
}

/// Runs `input` (at cut `from`) to the logits under `mode` and scores them against `labels`.
pub(crate) fn forward_loss(
    model: &Vgg,
    input: &Tensor,
    from: Cut,
    labels: &[Label],
    mode: &Mode,
) -> Result<BatchOutput> {
    let logits = model.forward_range(input, from, Cut::Logits, mode)?;
    let targets = Tensor::from_slice(labels, labels.len(), logits.device())?;
    let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
    let loss_value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
    Ok(BatchOutput {
        logits,
        loss,
        loss_value,
    })
}

impl BatchOutput {
    /// Adds the batch to `metrics`.
    pub(crate) fn record(&self, metrics: &mut MetricsAccumulator, labels: &[Label]) -> Result<()> {
        let host: Vec<f32> = self.logits.detach().flatten_all()?.to_vec1()?;
        metrics.update(&host, labels, self.loss_value)
    }
}

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
