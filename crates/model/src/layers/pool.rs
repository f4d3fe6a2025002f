//! The pools: `nn.MaxPool2d(kernel_size=2, stride=2)` closing each conv
//! block, and `nn.AdaptiveAvgPool2d((7, 7))` before the classifier. Neither
//! has state.

use candle_core::Tensor;

use crate::config::POOLED_SIDE;
use crate::ops::adaptive_pool::adaptive_avg_pool2d;
use crate::ops::max_pool::max_pool2x2;
use crate::ModelError;

/// The 2x2 max-pool at `features.{i}` that closes a conv block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxPool2d;

impl MaxPool2d {
    /// Halves height and width (floor), keeping each window's maximum.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        max_pool2x2(x)
    }
}

/// `avgpool`: any map to 7x7 with PyTorch's bins, then `flatten(1)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdaptiveAvgPool2d;

impl AdaptiveAvgPool2d {
    /// `[N, C, H, W]` to `[N, C * 7 * 7]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(adaptive_avg_pool2d(x, POOLED_SIDE, POOLED_SIDE)?.flatten_from(1)?)
    }
}
