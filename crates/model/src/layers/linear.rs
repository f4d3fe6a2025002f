//! `nn.Linear(in, out)`, the classifier's layers.

use candle_core::{Tensor, Var};

use super::{Module, Param, Source, TensorRole, TensorSpec};
use crate::ops::linear::linear;
use crate::ModelError;

/// A fully connected layer at `classifier.{i}`: `weight` `[out, in]`, `bias` `[out]`.
#[derive(Debug)]
pub(crate) struct Linear {
    path: String,
    weight: Param,
    bias: Param,
}

impl Linear {
    /// The state-dict entries of the layer at `path`; `head` marks the last
    /// layer, which a new class count replaces.
    pub(crate) fn specs(path: &str, inputs: usize, outputs: usize, head: bool) -> [TensorSpec; 2] {
        let (weight, bias) = if head {
            (TensorRole::HeadWeight, TensorRole::HeadBias)
        } else {
            (TensorRole::LinearWeight, TensorRole::LinearBias)
        };
        [
            TensorSpec::new(path, "weight", vec![outputs, inputs], weight),
            TensorSpec::new(path, "bias", vec![outputs], bias),
        ]
    }

    /// The layer at `path`, its tensors from `source`.
    pub(crate) fn new(
        path: &str,
        inputs: usize,
        outputs: usize,
        head: bool,
        source: &mut Source<'_>,
    ) -> Result<Self, ModelError> {
        let [weight, bias] = Self::specs(path, inputs, outputs, head);
        Ok(Linear {
            path: path.to_string(),
            weight: Param::new(source(&weight)?),
            bias: Param::new(source(&bias)?),
        })
    }

    /// The layer at `path` made of the given tensors, trainable or not.
    pub(crate) fn from_vars(path: &str, weight: Var, bias: Var, trainable: bool) -> Self {
        Linear {
            path: path.to_string(),
            weight: Param {
                var: weight,
                trainable,
            },
            bias: Param {
                var: bias,
                trainable,
            },
        }
    }

    /// `x · weightᵀ + bias`, with the ReLU that follows fused in when `relu`.
    pub(crate) fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor, ModelError> {
        linear(x, &self.weight.tensor(), &self.bias.tensor(), relu)
    }
}

impl Module for Linear {
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
