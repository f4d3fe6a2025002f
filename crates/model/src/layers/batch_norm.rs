//! `nn.BatchNorm2d(c)` of the `_bn` variants, with torchvision's defaults.

use candle_core::{Tensor, Var};

use super::{Module, Param, Source, TensorRole, TensorSpec};
use crate::ModelError;

/// `BatchNorm2d` defaults in torchvision's VGG (`nn.BatchNorm2d(v)`): eps and momentum.
const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

/// Batch normalisation at `features.{i}`: `weight`, `bias` (learnable),
/// `running_mean`, `running_var`, `num_batches_tracked` (buffers), each
/// `[channels]` but the scalar counter.
#[derive(Debug)]
pub(crate) struct BatchNorm2d {
    path: String,
    weight: Param,
    bias: Param,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
}

impl BatchNorm2d {
    /// The state-dict entries of the batch norm at `path`.
    pub(crate) fn specs(path: &str, channels: usize) -> [TensorSpec; 5] {
        let c = vec![channels];
        [
            TensorSpec::new(path, "weight", c.clone(), TensorRole::BnWeight),
            TensorSpec::new(path, "bias", c.clone(), TensorRole::BnBias),
            TensorSpec::new(path, "running_mean", c.clone(), TensorRole::BnRunningMean),
            TensorSpec::new(path, "running_var", c, TensorRole::BnRunningVar),
            TensorSpec::new(path, "num_batches_tracked", vec![], TensorRole::BnCounter),
        ]
    }

    /// The batch norm at `path`, its tensors from `source`.
    pub(crate) fn new(
        path: &str,
        channels: usize,
        source: &mut Source<'_>,
    ) -> Result<Self, ModelError> {
        let [weight, bias, mean, var, counter] = Self::specs(path, channels);
        Ok(BatchNorm2d {
            path: path.to_string(),
            weight: Param::new(source(&weight)?),
            bias: Param::new(source(&bias)?),
            running_mean: source(&mean)?,
            running_var: source(&var)?,
            num_batches_tracked: source(&counter)?,
        })
    }

    /// Batch statistics (and an update of the running ones) when `training`
    /// and this layer trains; the running statistics otherwise, so a frozen
    /// batch norm is a constant function as in eval mode.
    pub(crate) fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor, ModelError> {
        let c = x.dim(1)?;
        let (mean, var) = if training && self.any_trainable() {
            // Statistics over N, H, W (PyTorch: biased variance to normalise).
            let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred
                .sqr()?
                .mean_keepdim(0)?
                .mean_keepdim(2)?
                .mean_keepdim(3)?;
            // Running statistics use the unbiased variance (PyTorch `_BatchNorm`).
            let n = (x.elem_count() / c) as f64;
            let unbiased = (var.detach().flatten_all()? * (n / (n - 1.0).max(1.0)))?;
            let m = MOMENTUM;
            self.running_mean.set(
                &((self.running_mean.as_detached_tensor() * (1.0 - m))?
                    + (mean.detach().flatten_all()? * m)?)?,
            )?;
            self.running_var
                .set(&((self.running_var.as_detached_tensor() * (1.0 - m))? + (unbiased * m)?)?)?;
            let counter = self.num_batches_tracked.as_detached_tensor();
            self.num_batches_tracked
                .set(&(&counter + counter.ones_like()?)?)?;
            (mean, var)
        } else {
            (
                self.running_mean
                    .as_detached_tensor()
                    .reshape((1, c, 1, 1))?,
                self.running_var
                    .as_detached_tensor()
                    .reshape((1, c, 1, 1))?,
            )
        };
        let y = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight.tensor().reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.bias.tensor().reshape((1, c, 1, 1))?)?;
        Ok(y)
    }
}

impl Module for BatchNorm2d {
    fn path(&self) -> &str {
        &self.path
    }
    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("weight", &self.weight), ("bias", &self.bias)]
    }
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("weight", &mut self.weight), ("bias", &mut self.bias)]
    }
    fn buffers(&self) -> Vec<(&'static str, &Var)> {
        vec![
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
            ("num_batches_tracked", &self.num_batches_tracked),
        ]
    }
}
