//! The layer kinds of torchvision's VGG, one file each, as modules built from
//! their path in the state dict (`features.0`, `classifier.6`): a module asks
//! for `{path}.weight`, `{path}.bias`, … by name, so the code spells out the
//! keys a checkpoint holds, and knows whether each of its parameters trains.

mod batch_norm;
mod conv;
mod dropout;
mod linear;
mod pool;

use candle_core::{Tensor, Var};

pub(crate) use batch_norm::BatchNorm2d;
pub(crate) use conv::Conv2d;
pub(crate) use dropout::Dropout;
pub(crate) use linear::Linear;
pub(crate) use pool::{AdaptiveAvgPool2d, MaxPool2d};

use crate::ModelError;

/// What kind of state-dict entry a tensor is; decides its dtype and how a
/// new network initialises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TensorRole {
    ConvWeight,
    ConvBias,
    BnWeight,
    BnBias,
    BnRunningMean,
    BnRunningVar,
    BnCounter,
    LinearWeight,
    LinearBias,
    HeadWeight,
    HeadBias,
}

/// One state-dict entry of a module: its full name, shape and role.
#[derive(Debug, Clone)]
pub(crate) struct TensorSpec {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) role: TensorRole,
}

impl TensorSpec {
    /// The entry `{path}.{field}`.
    pub(crate) fn new(path: &str, field: &str, shape: Vec<usize>, role: TensorRole) -> Self {
        TensorSpec {
            name: format!("{path}.{field}"),
            shape,
            role,
        }
    }
}

/// Where a module's tensors come from (a checkpoint, an initialiser): asked
/// for each entry by its spec.
pub(crate) type Source<'a> = dyn FnMut(&TensorSpec) -> Result<Var, ModelError> + 'a;

/// One learnable tensor and whether gradients flow into it.
#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) var: Var,
    pub(crate) trainable: bool,
}

impl Param {
    /// A trainable parameter, as every parameter starts in PyTorch.
    pub(crate) fn new(var: Var) -> Self {
        Param {
            var,
            trainable: true,
        }
    }

    /// The tensor to compute with: attached to the autograd graph only when
    /// trainable, so a frozen layer builds no graph at all.
    pub(crate) fn tensor(&self) -> Tensor {
        if self.trainable {
            self.var.as_tensor().clone()
        } else {
            self.var.as_detached_tensor()
        }
    }
}

/// What every module with state shows the network: its path, its parameters
/// and buffers by field name, in state-dict order (parameters, then buffers).
pub(crate) trait Module {
    /// The module's path in the state dict, e.g. `features.0`.
    fn path(&self) -> &str;
    /// Its learnable parameters, e.g. `[("weight", ..), ("bias", ..)]`.
    fn params(&self) -> Vec<(&'static str, &Param)>;
    /// The same, to change their trainability.
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)>;
    /// Its buffers (batch norm's running statistics); none by default.
    fn buffers(&self) -> Vec<(&'static str, &Var)> {
        Vec::new()
    }

    /// Whether any parameter trains.
    fn any_trainable(&self) -> bool {
        self.params().iter().any(|(_, p)| p.trainable)
    }
}
