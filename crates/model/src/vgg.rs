//! The VGG network itself: layers laid out with torchvision's indices, a
//! forward pass that can start and stop at block boundaries, and per-parameter
//! trainability.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adaptive_pool::adaptive_avg_pool2d;
use crate::config::{CfgItem, VggConfig};
use crate::conv::conv3x3;
use crate::dropout::dropout;
use crate::linear::linear;
use crate::max_pool::max_pool2x2;
use crate::ModelError;

/// Smallest input side VGG accepts: five 2x2 max-pools must leave at least one cell.
pub const MIN_INPUT_SIDE: usize = 32;

/// `BatchNorm2d` defaults in torchvision's VGG (`nn.BatchNorm2d(v)`): eps and momentum.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Whether the network runs as in `model.train()` or `model.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dropout is the identity and batch norm uses its running statistics.
    Eval,
    /// Dropout fires (masks drawn from `dropout_seed`) and trainable batch
    /// norm uses batch statistics and updates its running ones.
    Train {
        /// Seed of this step's dropout masks; use a new one per step.
        dropout_seed: u64,
    },
}

/// A boundary in the network where a forward pass can start or stop.
///
/// In network order: `Input`, `Block(1)` .. `Block(5)` (== `Features`),
/// `Pooled`, `Hidden`, `Logits`.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// The image batch, `[N, 3, H, W]`.
    Input,
    /// After conv block `k` in `1..=5`, i.e. after its max-pool.
    Block(usize),
    /// After `features` (same as `Block(5)`): `[N, 512, H/32, W/32]`.
    Features,
    /// After `avgpool` and `flatten(1)`: `[N, 25088]`.
    Pooled,
    /// After `classifier.4` (ReLU of the second hidden layer): `[N, 4096]`.
    Hidden,
    /// After `classifier.6`: `[N, num_classes]`.
    Logits,
}

impl Cut {
    /// Every distinct cut, in network order.
    pub const ALL: [Cut; 9] = [
        Cut::Input,
        Cut::Block(1),
        Cut::Block(2),
        Cut::Block(3),
        Cut::Block(4),
        Cut::Features,
        Cut::Pooled,
        Cut::Hidden,
        Cut::Logits,
    ];

    /// Position in network order: `Input` is 0, `Block(k)` is k, `Logits` is 8.
    pub fn position(self) -> Result<usize, ModelError> {
        match self {
            Cut::Input => Ok(0),
            Cut::Block(k @ 1..=5) => Ok(k),
            Cut::Block(k) => Err(ModelError::BadInput(format!(
                "Cut::Block({k}): VGG has conv blocks 1..=5"
            ))),
            Cut::Features => Ok(5),
            Cut::Pooled => Ok(6),
            Cut::Hidden => Ok(7),
            Cut::Logits => Ok(8),
        }
    }

    fn from_position(p: usize) -> Cut {
        match p {
            0 => Cut::Input,
            1..=4 => Cut::Block(p),
            5 => Cut::Features,
            6 => Cut::Pooled,
            7 => Cut::Hidden,
            _ => Cut::Logits,
        }
    }
}

impl PartialEq for Cut {
    fn eq(&self, other: &Self) -> bool {
        match (self.position(), other.position()) {
            (Ok(a), Ok(b)) => a == b,
            _ => matches!((self, other), (Cut::Block(a), Cut::Block(b)) if a == b),
        }
    }
}

impl Eq for Cut {}

/// One learnable tensor and whether gradients flow into it.
#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) var: Var,
    pub(crate) trainable: bool,
}

impl Param {
    fn new(var: Var) -> Self {
        Self {
            var,
            trainable: true,
        }
    }

    /// The tensor to compute with: attached to the autograd graph only when trainable,
    /// so a frozen layer builds no graph at all.
    fn tensor(&self) -> Tensor {
        if self.trainable {
            self.var.as_tensor().clone()
        } else {
            self.var.as_detached_tensor()
        }
    }
}

/// One entry of `features` or `classifier`, at its torchvision index.
#[derive(Debug)]
pub(crate) enum Layer {
    Conv2d {
        weight: Param,
        bias: Param,
    },
    BatchNorm2d {
        weight: Param,
        bias: Param,
        running_mean: Var,
        running_var: Var,
        num_batches_tracked: Var,
    },
    Relu,
    MaxPool2d,
    Linear {
        weight: Param,
        bias: Param,
    },
    Dropout,
}

impl Layer {
    fn params(&self) -> Vec<(&'static str, &Param)> {
        match self {
            Layer::Conv2d { weight, bias }
            | Layer::Linear { weight, bias }
            | Layer::BatchNorm2d { weight, bias, .. } => vec![("weight", weight), ("bias", bias)],
            _ => vec![],
        }
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        match self {
            Layer::Conv2d { weight, bias }
            | Layer::Linear { weight, bias }
            | Layer::BatchNorm2d { weight, bias, .. } => vec![("weight", weight), ("bias", bias)],
            _ => vec![],
        }
    }

    fn any_trainable(&self) -> bool {
        self.params().iter().any(|(_, p)| p.trainable)
    }

    /// State-dict entries in PyTorch's order: parameters, then buffers.
    fn state(&self) -> Vec<(&'static str, Tensor)> {
        let mut out: Vec<(&'static str, Tensor)> = self
            .params()
            .into_iter()
            .map(|(n, p)| (n, p.var.as_detached_tensor()))
            .collect();
        if let Layer::BatchNorm2d {
            running_mean,
            running_var,
            num_batches_tracked,
            ..
        } = self
        {
            out.push(("running_mean", running_mean.as_detached_tensor()));
            out.push(("running_var", running_var.as_detached_tensor()));
            out.push((
                "num_batches_tracked",
                num_batches_tracked.as_detached_tensor(),
            ));
        }
        out
    }
}

/// What kind of state-dict entry a tensor is; decides dtype and initialisation.
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

/// One state-dict entry the configured network has: torchvision name, shape, role.
#[derive(Debug, Clone)]
pub(crate) struct TensorSpec {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) role: TensorRole,
}

/// The layer list of `features` for a config (torchvision's `make_layers`).
fn feature_layout(config: &VggConfig) -> Vec<(usize, CfgItem)> {
    let mut out = Vec::new();
    let mut index = 0;
    for item in config.cfg.cfg(config.width_divisor) {
        out.push((index, item));
        index += match item {
            CfgItem::MaxPool => 1,
            // conv, [bn], relu
            CfgItem::Conv(_) if config.batch_norm => 3,
            CfgItem::Conv(_) => 2,
        };
    }
    out
}

/// Every state-dict entry of the configured network, in state-dict order.
pub(crate) fn tensor_specs(config: &VggConfig) -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    let mut push =
        |name: String, shape: Vec<usize>, role| specs.push(TensorSpec { name, shape, role });
    let mut in_c = 3;
    for (index, item) in feature_layout(config) {
        if let CfgItem::Conv(c) = item {
            let p = format!("features.{index}");
            push(
                format!("{p}.weight"),
                vec![c, in_c, 3, 3],
                TensorRole::ConvWeight,
            );
            push(format!("{p}.bias"), vec![c], TensorRole::ConvBias);
            if config.batch_norm {
                let p = format!("features.{}", index + 1);
                push(format!("{p}.weight"), vec![c], TensorRole::BnWeight);
                push(format!("{p}.bias"), vec![c], TensorRole::BnBias);
                push(
                    format!("{p}.running_mean"),
                    vec![c],
                    TensorRole::BnRunningMean,
                );
                push(
                    format!("{p}.running_var"),
                    vec![c],
                    TensorRole::BnRunningVar,
                );
                push(
                    format!("{p}.num_batches_tracked"),
                    vec![],
                    TensorRole::BnCounter,
                );
            }
            in_c = c;
        }
    }
    let (flat, hidden, classes) = (
        config.flat_features(),
        config.classifier_hidden,
        config.num_classes,
    );
    push(
        "classifier.0.weight".into(),
        vec![hidden, flat],
        TensorRole::LinearWeight,
    );
    push(
        "classifier.0.bias".into(),
        vec![hidden],
        TensorRole::LinearBias,
    );
    push(
        "classifier.3.weight".into(),
        vec![hidden, hidden],
        TensorRole::LinearWeight,
    );
    push(
        "classifier.3.bias".into(),
        vec![hidden],
        TensorRole::LinearBias,
    );
    push(
        "classifier.6.weight".into(),
        vec![classes, hidden],
        TensorRole::HeadWeight,
    );
    push(
        "classifier.6.bias".into(),
        vec![classes],
        TensorRole::HeadBias,
    );
    specs
}

/// Draws from N(0, std²) by Box-Muller (rand 0.9 has no normal distribution without rand_distr).
fn normal(rng: &mut ChaCha8Rng, std: f64) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1], keeps ln finite
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
}

/// Uniform in `[-bound, bound)`.
fn uniform(rng: &mut ChaCha8Rng, bound: f64) -> f32 {
    ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32
}

/// A VGG network with torchvision's layout, names and semantics.
#[derive(Debug)]
pub struct Vgg {
    config: VggConfig,
    features: Vec<Layer>,
    classifier: Vec<Layer>,
    /// Index in `features` of the max-pool closing each of the five blocks.
    block_ends: Vec<usize>,
    device: Device,
}

impl Vgg {
    /// Builds the network, asking `make` for every state-dict tensor in order.
    pub(crate) fn assemble(
        config: VggConfig,
        device: &Device,
        mut make: impl FnMut(&TensorSpec) -> Result<Var, ModelError>,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let specs = tensor_specs(&config);
        let mut specs = specs.iter();
        let mut next = |expect: &str| -> Result<Var, ModelError> {
            let spec = specs.next().ok_or_else(|| {
                ModelError::InvalidConfig(format!("internal: no spec left for {expect}"))
            })?;
            debug_assert!(spec.name.ends_with(expect));
            make(spec)
        };
        let mut features = Vec::new();
        let mut block_ends = Vec::new();
        for (_, item) in feature_layout(&config) {
            match item {
                CfgItem::Conv(_) => {
                    let weight = Param::new(next("weight")?);
                    let bias = Param::new(next("bias")?);
                    features.push(Layer::Conv2d { weight, bias });
                    if config.batch_norm {
                        let weight = Param::new(next("weight")?);
                        let bias = Param::new(next("bias")?);
                        let running_mean = next("running_mean")?;
                        let running_var = next("running_var")?;
                        let num_batches_tracked = next("num_batches_tracked")?;
                        features.push(Layer::BatchNorm2d {
                            weight,
                            bias,
                            running_mean,
                            running_var,
                            num_batches_tracked,
                        });
                    }
                    features.push(Layer::Relu);
                }
                CfgItem::MaxPool => {
                    block_ends.push(features.len());
                    features.push(Layer::MaxPool2d);
                }
            }
        }
        let mut classifier = Vec::new();
        for i in 0..3 {
            let weight = Param::new(next("weight")?);
            let bias = Param::new(next("bias")?);
            classifier.push(Layer::Linear { weight, bias });
            if i < 2 {
                classifier.push(Layer::Relu);
                classifier.push(Layer::Dropout);
            }
        }
        Ok(Self {
            config,
            features,
            classifier,
            block_ends,
            device: device.clone(),
        })
    }

    /// A network initialised as torchvision's `VGG._initialize_weights` does
    /// (conv: Kaiming normal, fan_out, ReLU gain, bias 0; batch norm 1/0;
    /// linear: N(0, 0.01), bias 0), drawn from our RNG seeded with `seed`.
    pub fn new_random(config: VggConfig, seed: u64, device: &Device) -> Result<Self, ModelError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self::assemble(config, device, |spec| {
            let n: usize = spec.shape.iter().product();
            let data: Vec<f32> = match spec.role {
                TensorRole::ConvWeight => {
                    let fan_out = (spec.shape[0] * spec.shape[2] * spec.shape[3]) as f64;
                    let std = (2.0 / fan_out).sqrt();
                    (0..n).map(|_| normal(&mut rng, std)).collect()
                }
                TensorRole::LinearWeight | TensorRole::HeadWeight => {
                    (0..n).map(|_| normal(&mut rng, 0.01)).collect()
                }
                TensorRole::BnWeight | TensorRole::BnRunningVar => vec![1.0; n],
                _ => vec![0.0; n],
            };
            if spec.role == TensorRole::BnCounter {
                return Ok(Var::from_vec(vec![0i64], (), device)?);
            }
            Ok(Var::from_vec(data, spec.shape.as_slice(), device)?)
        })
    }

    /// Replaces `classifier.6` by a new `Linear(hidden, num_classes)` initialised
    /// as PyTorch's `nn.Linear` does: weight, then bias, each uniform in
    /// ±1/sqrt(hidden) (1/64 at full width), drawn from our RNG seeded with `seed`.
    /// The new head keeps the old head's trainability.
    pub fn new_head(&mut self, num_classes: usize, seed: u64) -> Result<(), ModelError> {
        if num_classes == 0 {
            return Err(ModelError::InvalidConfig(
                "num_classes must be at least 1".into(),
            ));
        }
        let hidden = self.config.classifier_hidden;
        let (weight, bias) = new_head_vars(hidden, num_classes, seed, &self.device)?;
        let trainable = self.classifier[6].any_trainable();
        self.classifier[6] = Layer::Linear {
            weight: Param {
                var: weight,
                trainable,
            },
            bias: Param {
                var: bias,
                trainable,
            },
        };
        self.config.num_classes = num_classes;
        Ok(())
    }

    /// The state dict a checkpoint for `config` holds: torchvision names and
    /// shapes, in state-dict order (parameters and batch-norm buffers).
    pub fn state_dict_layout(config: &VggConfig) -> Vec<(String, Vec<usize>)> {
        tensor_specs(config)
            .into_iter()
            .map(|s| (s.name, s.shape))
            .collect()
    }

    /// The configuration this network was built with (its `num_classes` follows `new_head`).
    pub fn config(&self) -> &VggConfig {
        &self.config
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Visits every layer with its torchvision module path, e.g. `features.28`.
    fn layers(&self) -> impl Iterator<Item = (String, &Layer)> {
        let f = self
            .features
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("features.{i}"), l));
        let c = self
            .classifier
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("classifier.{i}"), l));
        f.chain(c)
    }

    /// Every learnable parameter with its torchvision name (`features.0.weight`, ...),
    /// in state-dict order. Buffers (batch-norm running statistics) are not included.
    pub fn named_parameters(&self) -> Vec<(String, Var)> {
        self.layers()
            .flat_map(|(path, layer)| {
                layer
                    .params()
                    .into_iter()
                    .map(move |(n, p)| (format!("{path}.{n}"), p.var.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The parameters gradients flow into, in state-dict order.
    pub fn trainable_parameters(&self) -> Vec<(String, Var)> {
        self.layers()
            .flat_map(|(path, layer)| {
                layer
                    .params()
                    .into_iter()
                    .filter(|(_, p)| p.trainable)
                    .map(move |(n, p)| (format!("{path}.{n}"), p.var.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Marks each parameter trainable when `pred` holds for its torchvision
    /// name (e.g. `|n| n.starts_with("classifier.6.")` trains only the head).
    /// Every parameter starts trainable, as in PyTorch.
    pub fn set_trainable(&mut self, pred: impl Fn(&str) -> bool) {
        let f = self
            .features
            .iter_mut()
            .enumerate()
            .map(|(i, l)| ("features", i, l));
        let c = self
            .classifier
            .iter_mut()
            .enumerate()
            .map(|(i, l)| ("classifier", i, l));
        for (seq, i, layer) in f.chain(c) {
            for (n, p) in layer.params_mut() {
                p.trainable = pred(&format!("{seq}.{i}.{n}"));
            }
        }
    }

    /// The full state dict (parameters and buffers) with torchvision names, in
    /// state-dict order, detached from any graph.
    pub fn to_named_tensors(&self) -> Vec<(String, Tensor)> {
        self.layers()
            .flat_map(|(path, layer)| {
                layer
                    .state()
                    .into_iter()
                    .map(move |(n, t)| (format!("{path}.{n}"), t))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The latest cut before which every parameter is frozen: the train crate
    /// can run `[Input, cut)` once, without autograd (and cache its output), and
    /// `[cut, Logits]` with gradients. `Logits` when nothing is trainable.
    pub fn first_trainable_cut(&self) -> Cut {
        let mut latest = 0;
        for p in 1..=8 {
            if self.stage_layers(p).iter().any(|l| l.any_trainable()) {
                break;
            }
            latest = p;
        }
        Cut::from_position(latest)
    }

    /// The layers of stage `p` (the part of the network between cut `p-1` and cut `p`).
    fn stage_layers(&self, p: usize) -> &[Layer] {
        match p {
            1..=5 => {
                let start = if p == 1 {
                    0
                } else {
                    self.block_ends[p - 2] + 1
                };
                &self.features[start..=self.block_ends[p - 1]]
            }
            7 => &self.classifier[0..=4],
            8 => &self.classifier[5..=6],
            _ => &[],
        }
    }

    /// The forward pass of the whole network, `forward_range(x, Input, Logits, mode)`.
    pub fn forward_t(&self, x: &Tensor, mode: &Mode) -> Result<Tensor, ModelError> {
        self.forward_range(x, Cut::Input, Cut::Logits, mode)
    }

    /// Runs the network from cut `from` (where `x` must have that cut's shape)
    /// to cut `to`.
    ///
    /// Frozen layers always compute as in eval mode: a dropout layer fires in
    /// `Mode::Train` only when some parameter before it is trainable, and a
    /// frozen batch norm uses its running statistics. So a frozen prefix is a
    /// constant function whose output can be cached. This differs from
    /// PyTorch, where `model.train()` makes dropout fire even between frozen
    /// layers (e.g. `classifier.5` when only the head trains).
    pub fn forward_range(
        &self,
        x: &Tensor,
        from: Cut,
        to: Cut,
        mode: &Mode,
    ) -> Result<Tensor, ModelError> {
        let (start, end) = (from.position()?, to.position()?);
        if start > end {
            return Err(ModelError::BadInput(format!(
                "forward_range from {from:?} to {to:?}: `from` comes after `to`"
            )));
        }
        self.check_input(x, from)?;
        let mut x = x.clone();
        for p in start + 1..=end {
            x = match p {
                1..=5 => self.run_block(&x, p, mode)?,
                6 => adaptive_avg_pool2d(&x, 7, 7)?.flatten_from(1)?,
                7 => self.run_classifier(&x, 0..=4, mode)?,
                _ => self.run_classifier(&x, 5..=6, mode)?,
            };
        }
        Ok(x)
    }

    /// Refuses, before any compute, a tensor that cannot enter the network at `at`.
    fn check_input(&self, x: &Tensor, at: Cut) -> Result<(), ModelError> {
        if x.dtype() != DType::F32 {
            return Err(ModelError::BadInput(format!(
                "expected f32 input, got {:?}",
                x.dtype()
            )));
        }
        let dims = x.dims();
        let p = at.position()?;
        match p {
            0 => {
                let ok = dims.len() == 4
                    && dims[1] == 3
                    && dims[2] >= MIN_INPUT_SIDE
                    && dims[3] >= MIN_INPUT_SIDE;
                if !ok {
                    return Err(ModelError::BadInput(format!(
                        "VGG takes images as [N, 3, H, W] with H, W >= {MIN_INPUT_SIDE}; got shape {dims:?}"
                    )));
                }
            }
            1..=5 => {
                let c = self.block_channels(p);
                if dims.len() != 4 || dims[1] != c {
                    return Err(ModelError::BadInput(format!(
                        "input at {at:?} must be [N, {c}, H, W]; got shape {dims:?}"
                    )));
                }
            }
            _ => {
                let width = match p {
                    6 => self.config.flat_features(),
                    7 => self.config.classifier_hidden,
                    _ => self.config.num_classes,
                };
                if dims.len() != 2 || dims[1] != width {
                    return Err(ModelError::BadInput(format!(
                        "input at {at:?} must be [N, {width}]; got shape {dims:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Channels leaving conv block `k`.
    fn block_channels(&self, k: usize) -> usize {
        self.stage_layers(k)
            .iter()
            .rev()
            .find_map(|l| match l {
                Layer::Conv2d { weight, .. } => Some(weight.var.dims()[0]),
                _ => None,
            })
            .unwrap_or(3)
    }

    fn run_block(&self, x: &Tensor, k: usize, mode: &Mode) -> Result<Tensor, ModelError> {
        let mut x = x.clone();
        let layers = self.stage_layers(k);
        // A ReLU right after a conv is fused into it (one pass over the output).
        let mut fused_relu = false;
        for (i, layer) in layers.iter().enumerate() {
            x = match layer {
                Layer::Conv2d { weight, bias } => {
                    fused_relu = matches!(layers.get(i + 1), Some(Layer::Relu));
                    conv3x3(&x, &weight.tensor(), &bias.tensor(), fused_relu)?
                }
                Layer::BatchNorm2d { .. } => batch_norm(&x, layer, mode)?,
                Layer::Relu if fused_relu => {
                    fused_relu = false;
                    x
                }
                Layer::Relu => x.relu()?,
                Layer::MaxPool2d => max_pool2x2(&x)?,
                Layer::Linear { .. } | Layer::Dropout => x,
            };
        }
        Ok(x)
    }

    fn run_classifier(
        &self,
        x: &Tensor,
        range: std::ops::RangeInclusive<usize>,
        mode: &Mode,
    ) -> Result<Tensor, ModelError> {
        let range_end = *range.end();
        let mut x = x.clone();
        // A ReLU right after a linear layer is fused into it.
        let mut fused_relu = false;
        for i in range {
            x = match &self.classifier[i] {
                Layer::Linear { weight, bias } => {
                    fused_relu =
                        matches!(self.classifier.get(i + 1), Some(Layer::Relu)) && range_end > i;
                    linear(&x, &weight.tensor(), &bias.tensor(), fused_relu)?
                }
                Layer::Relu if fused_relu => {
                    fused_relu = false;
                    x
                }
                Layer::Relu => x.relu()?,
                Layer::Dropout => match mode {
                    Mode::Train { dropout_seed } if self.trainable_before_classifier(i) => {
                        dropout(&x, self.config.dropout, *dropout_seed, i as u64)?
                    }
                    _ => x,
                },
                _ => x,
            };
        }
        Ok(x)
    }

    /// Whether any parameter before `classifier.{i}` is trainable.
    fn trainable_before_classifier(&self, i: usize) -> bool {
        self.features.iter().any(Layer::any_trainable)
            || self.classifier[..i].iter().any(Layer::any_trainable)
    }
}

/// A `Linear(hidden, num_classes)` weight and bias as PyTorch's `nn.Linear.reset_parameters`
/// draws them: `kaiming_uniform_(a=sqrt(5))` on the weight is uniform ±1/sqrt(fan_in),
/// the bias uniform ±1/sqrt(fan_in). Weight first, then bias, from one stream.
pub(crate) fn new_head_vars(
    hidden: usize,
    num_classes: usize,
    seed: u64,
    device: &Device,
) -> Result<(Var, Var), ModelError> {
    let bound = 1.0 / (hidden as f64).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w: Vec<f32> = (0..num_classes * hidden)
        .map(|_| uniform(&mut rng, bound))
        .collect();
    let b: Vec<f32> = (0..num_classes).map(|_| uniform(&mut rng, bound)).collect();
    Ok((
        Var::from_vec(w, (num_classes, hidden), device)?,
        Var::from_vec(b, num_classes, device)?,
    ))
}

/// `BatchNorm2d` forward: batch statistics (and a running-statistics update)
/// when training a trainable layer, running statistics otherwise.
fn batch_norm(x: &Tensor, layer: &Layer, mode: &Mode) -> Result<Tensor, ModelError> {
    let Layer::BatchNorm2d {
        weight,
        bias,
        running_mean,
        running_var,
        num_batches_tracked,
    } = layer
    else {
        return Ok(x.clone());
    };
    let c = x.dim(1)?;
    let training = matches!(mode, Mode::Train { .. }) && layer.any_trainable();
    let (mean, var) = if training {
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
        let m = BN_MOMENTUM;
        running_mean.set(
            &((running_mean.as_detached_tensor() * (1.0 - m))?
                + (mean.detach().flatten_all()? * m)?)?,
        )?;
        running_var.set(&((running_var.as_detached_tensor() * (1.0 - m))? + (unbiased * m)?)?)?;
        let counter = num_batches_tracked.as_detached_tensor();
        num_batches_tracked.set(&(&counter + counter.ones_like()?)?)?;
        (mean, var)
    } else {
        (
            running_mean.as_detached_tensor().reshape((1, c, 1, 1))?,
            running_var.as_detached_tensor().reshape((1, c, 1, 1))?,
        )
    };
    let y = x
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
        .broadcast_mul(&weight.tensor().reshape((1, c, 1, 1))?)?
        .broadcast_add(&bias.tensor().reshape((1, c, 1, 1))?)?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VggVariant;

    fn narrow() -> Vgg {
        let mut config = VggConfig::vgg16(10);
        config.width_divisor = 16;
        config.classifier_hidden = 32;
        Vgg::new_random(config, 3, &Device::Cpu).expect("narrow vgg")
    }

    fn images(h: usize, w: usize) -> Tensor {
        let n = 2 * 3 * h * w;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(v, (2, 3, h, w), &Device::Cpu).expect("images")
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
            .expect("diff")
    }

    #[test]
    fn layout_matches_torchvision_vgg16() {
        let layout = Vgg::state_dict_layout(&VggConfig::vgg16(1000));
        assert_eq!(layout.len(), 32);
        let convs: Vec<usize> = layout
            .iter()
            .filter(|(n, s)| n.starts_with("features.") && s.len() == 4)
            .map(|(n, _)| n.split('.').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(convs, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]);
        let count: usize = layout
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(count, 138_357_544);
        assert_eq!(
            layout[26],
            ("classifier.0.weight".into(), vec![4096, 25088])
        );
        let bn = Vgg::state_dict_layout(&VggConfig::new(VggVariant::Vgg11, true, 10));
        assert!(bn
            .iter()
            .any(|(n, s)| n == "features.1.num_batches_tracked" && s.is_empty()));
    }

    #[test]
    fn ranges_compose_to_the_full_forward() -> Result<(), ModelError> {
        let vgg = narrow();
        let x = images(40, 56);
        let full = vgg.forward_t(&x, &Mode::Eval)?;
        let mut h = x.clone();
        for w in Cut::ALL.windows(2) {
            h = vgg.forward_range(&h, w[0], w[1], &Mode::Eval)?;
        }
        assert_eq!(max_diff(&full, &h), 0.0);
        assert_eq!(
            vgg.forward_range(&x, Cut::Input, Cut::Block(5), &Mode::Eval)?
                .dims(),
            &[2, 32, 1, 1]
        );
        assert_eq!(Cut::Block(5), Cut::Features);
        Ok(())
    }

    #[test]
    fn first_trainable_cut_follows_the_frozen_prefix() {
        let mut vgg = narrow();
        assert_eq!(vgg.first_trainable_cut(), Cut::Input);
        vgg.set_trainable(|n| n.starts_with("classifier.6."));
        assert_eq!(vgg.first_trainable_cut(), Cut::Hidden);
        assert_eq!(vgg.trainable_parameters().len(), 2);
        vgg.set_trainable(|n| n.starts_with("classifier."));
        assert_eq!(vgg.first_trainable_cut(), Cut::Pooled);
        vgg.set_trainable(|n| n.starts_with("features.28") || n.starts_with("classifier."));
        assert_eq!(vgg.first_trainable_cut(), Cut::Block(4));
        vgg.set_trainable(|n| n == "features.10.bias");
        assert_eq!(vgg.first_trainable_cut(), Cut::Block(2));
        vgg.set_trainable(|_| false);
        assert_eq!(vgg.first_trainable_cut(), Cut::Logits);
        assert_eq!(vgg.named_parameters().len(), 32);
    }

    #[test]
    fn frozen_layers_get_no_gradient_and_frozen_dropout_is_identity() -> Result<(), ModelError> {
        let mut vgg = narrow();
        vgg.set_trainable(|n| n.starts_with("classifier.6."));
        let x = images(32, 32);
        let train = Mode::Train { dropout_seed: 9 };
        // Nothing before classifier.2 / classifier.5 trains: both dropouts are identity.
        let eval = vgg.forward_t(&x, &Mode::Eval)?;
        let trained = vgg.forward_t(&x, &train)?;
        assert_eq!(max_diff(&eval, &trained), 0.0);
        let grads = trained.sum_all()?.backward()?;
        for (name, var) in vgg.named_parameters() {
            let has = grads.get(var.as_tensor()).is_some();
            assert_eq!(has, name.starts_with("classifier.6."), "{name}");
        }
        // With classifier.3 trainable, classifier.5's dropout fires (seeded).
        vgg.set_trainable(|n| n.starts_with("classifier.3.") || n.starts_with("classifier.6."));
        let a = vgg.forward_t(&x, &train)?;
        let b = vgg.forward_t(&x, &train)?;
        let c = vgg.forward_t(&x, &Mode::Train { dropout_seed: 10 })?;
        assert_eq!(max_diff(&a, &b), 0.0, "same seed, same masks");
        assert!(max_diff(&a, &c) > 0.0, "another seed, other masks");
        assert!(max_diff(&a, &eval) > 0.0);
        // ... but the prefix up to Pooled is still constant.
        let p_eval = vgg.forward_range(&x, Cut::Input, Cut::Pooled, &Mode::Eval)?;
        let p_train = vgg.forward_range(&x, Cut::Input, Cut::Pooled, &train)?;
        assert_eq!(max_diff(&p_eval, &p_train), 0.0);
        Ok(())
    }

    #[test]
    fn bad_inputs_are_refused_before_compute() {
        let vgg = narrow();
        // Wrong channel count, too small, not batched.
        for shape in [vec![1, 1, 64, 64], vec![1, 3, 31, 64], vec![3, 64, 64]] {
            let x = Tensor::zeros(shape.as_slice(), DType::F32, &Device::Cpu).expect("zeros");
            let err = vgg.forward_t(&x, &Mode::Eval).expect_err("refused");
            assert!(matches!(err, ModelError::BadInput(_)), "{err}");
            let text = err.to_string();
            assert!(text.contains(&format!("{shape:?}")), "{text}");
            assert!(text.contains("[N, 3, H, W] with H, W >= 32"), "{text}");
        }
        let pooled = Tensor::zeros((2, 100), DType::F32, &Device::Cpu).expect("zeros");
        assert!(vgg
            .forward_range(&pooled, Cut::Pooled, Cut::Logits, &Mode::Eval)
            .is_err());
        assert!(vgg
            .forward_range(&pooled, Cut::Logits, Cut::Pooled, &Mode::Eval)
            .is_err());
    }

    #[test]
    fn new_head_is_seeded_and_bounded() -> Result<(), ModelError> {
        let mut a = narrow();
        let mut b = narrow();
        a.new_head(4, 11)?;
        b.new_head(4, 11)?;
        assert_eq!(a.config().num_classes, 4);
        let head = |v: &Vgg| {
            v.to_named_tensors()
                .into_iter()
                .find(|(n, _)| n == "classifier.6.weight")
                .map(|(_, t)| t.flatten_all().and_then(|t| t.to_vec1::<f32>()))
        };
        let (ha, hb) = (head(&a), head(&b));
        assert!(matches!((&ha, &hb), (Some(Ok(x)), Some(Ok(y))) if x == y && x.len() == 4 * 32));
        if let Some(Ok(w)) = ha {
            assert!(w.iter().all(|v| v.abs() <= 1.0 / 32f32.sqrt()));
        }
        let logits = a.forward_t(&images(32, 32), &Mode::Eval)?;
        assert_eq!(logits.dims(), &[2, 4]);
        Ok(())
    }
}
