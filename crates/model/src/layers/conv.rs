//! `nn.Conv2d(in, out, kernel_size=3, padding=1)`, VGG's only convolution.

use candle_core::Tensor;

use super::{Module, Param, Source, TensorRole, TensorSpec};
use crate::ops::conv::conv3x3;
use crate::ModelError;

/// A 3x3 convolution with padding 1 at `features.{i}`: `weight` `[out, in,
/// 3, 3]`, `bias` `[out]`.
#[derive(Debug)]
pub(crate) struct Conv2d {
    path: String,
    weight: Param,
    bias: Param,
}

impl Conv2d {
    /// The state-dict entries of the convolution at `path`.
    pub(crate) fn specs(path: &str, in_channels: usize, out_channels: usize) -> [TensorSpec; 2] {
        [
            TensorSpec::new(
                path,
                "weight",
                vec![out_channels, in_channels, 3, 3],
                TensorRole::ConvWeight,
            ),
            TensorSpec::new(path, "bias", vec![out_channels], TensorRole::ConvBias),
        ]
    }

    /// The convolution at `path`, its tensors from `source`.
    pub(crate) fn new(
        path: &str,
        in_channels: usize,
        out_channels: usize,
        source: &mut Source<'_>,
    ) -> Result<Self, ModelError> {
        let [weight, bias] = Self::specs(path, in_channels, out_channels);
        Ok(Conv2d {
            path: path.to_string(),
            weight: Param::new(source(&weight)?),
            bias: Param::new(source(&bias)?),
        })
    }

    /// Output channels.
    pub(crate) fn out_channels(&self) -> usize {
        self.weight.var.dims()[0]
    }

    /// `conv2d(x) + bias`, with the ReLU that follows fused in when `relu`.
    pub(crate) fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor, ModelError> {
        conv3x3(x, &self.weight.tensor(), &self.bias.tensor(), relu)
    }
}

impl Module for Conv2d {
    fn path(&self) -> &str {
        &self.path
    }
    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("weight", &self.weight), ("bias", &self.bias)]
    }
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("weight", &mut self.weight), ("bias", &mut self.bias)]
    }
}
