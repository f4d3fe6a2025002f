//! torchvision VGG's `features`: conv blocks, each a few 3x3 convolutions
//! (with batch norm in the `_bn` variants) and ReLUs, closed by a max-pool.

use candle_core::Tensor;

use crate::config::{BlockAt, ConvAt};
use crate::layers::{BatchNorm2d, Conv2d, MaxPool2d, Module, Source, TensorSpec};
use crate::ModelError;

/// `features.{i}` (a conv), `features.{i+1}` (its batch norm, if any), then a ReLU.
#[derive(Debug)]
pub(crate) struct ConvLayer {
    conv: Conv2d,
    batch_norm: Option<BatchNorm2d>,
}

impl ConvLayer {
    fn specs(at: &ConvAt, batch_norm: bool) -> Vec<TensorSpec> {
        let mut specs =
            Conv2d::specs(&features(at.index), at.in_channels, at.out_channels).to_vec();
        if batch_norm {
            specs.extend(BatchNorm2d::specs(&features(at.index + 1), at.out_channels));
        }
        specs
    }

    fn new(at: &ConvAt, batch_norm: bool, source: &mut Source<'_>) -> Result<Self, ModelError> {
        let conv = Conv2d::new(&features(at.index), at.in_channels, at.out_channels, source)?;
        let batch_norm = if batch_norm {
            Some(BatchNorm2d::new(
                &features(at.index + 1),
                at.out_channels,
                source,
            )?)
        } else {
            None
        };
        Ok(ConvLayer { conv, batch_norm })
    }

    fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor, ModelError> {
        match &self.batch_norm {
            // The ReLU right after a conv is fused into it (one pass over the output).
            None => self.conv.forward(x, true),
            Some(bn) => Ok(crate::ops::relu(
                &bn.forward(&self.conv.forward(x, false)?, training)?,
            )?),
        }
    }

    fn modules(&self) -> Vec<&dyn Module> {
        let mut modules: Vec<&dyn Module> = vec![&self.conv];
        if let Some(bn) = &self.batch_norm {
            modules.push(bn);
        }
        modules
    }

    fn modules_mut(&mut self) -> Vec<&mut dyn Module> {
        let mut modules: Vec<&mut dyn Module> = vec![&mut self.conv];
        if let Some(bn) = &mut self.batch_norm {
            modules.push(bn);
        }
        modules
    }
}

/// One conv block: its conv layers and the max-pool that closes it.
#[derive(Debug)]
pub(crate) struct ConvBlock {
    layers: Vec<ConvLayer>,
    pool: MaxPool2d,
}

impl ConvBlock {
    /// The state-dict entries of the block laid out at `at`.
    pub(crate) fn specs(at: &BlockAt, batch_norm: bool) -> Vec<TensorSpec> {
        at.convs
            .iter()
            .flat_map(|conv| ConvLayer::specs(conv, batch_norm))
            .collect()
    }

    /// The block laid out at `at`, its tensors from `source`.
    pub(crate) fn new(
        at: &BlockAt,
        batch_norm: bool,
        source: &mut Source<'_>,
    ) -> Result<Self, ModelError> {
        let layers = at
            .convs
            .iter()
            .map(|conv| ConvLayer::new(conv, batch_norm, source))
            .collect::<Result<_, _>>()?;
        Ok(ConvBlock {
            layers,
            pool: MaxPool2d,
        })
    }

    /// Channels leaving the block.
    pub(crate) fn out_channels(&self) -> usize {
        self.layers
            .last()
            .map_or(3, |layer| layer.conv.out_channels())
    }

    /// The block on `x`; `training` lets a trainable batch norm use batch statistics.
    pub(crate) fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor, ModelError> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward(&x, training)?;
        }
        self.pool.forward(&x)
    }

    /// The modules with state, in state-dict order.
    pub(crate) fn modules(&self) -> Vec<&dyn Module> {
        self.layers.iter().flat_map(ConvLayer::modules).collect()
    }

    /// The same, to change their trainability.
    pub(crate) fn modules_mut(&mut self) -> Vec<&mut dyn Module> {
        self.layers
            .iter_mut()
            .flat_map(ConvLayer::modules_mut)
            .collect()
    }
}

/// The path of `features.{index}`.
fn features(index: usize) -> String {
    format!("features.{index}")
}
