//! The VGG network, as torchvision's `VGG` composes it: `features` (conv
//! blocks), `avgpool`, `classifier`. A forward pass can start and stop at
//! any block boundary ([`Cut`]), and each parameter can be frozen.

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::classifier::{Classifier, Dropouts, HEAD};
use crate::config::VggConfig;
use crate::features::ConvBlock;
use crate::init::{initial_value, new_head_vars};
use crate::layers::{AdaptiveAvgPool2d, Linear, Module, Source, TensorSpec};
use crate::ModelError;

/// Smallest input side VGG accepts: five 2x2 max-pools must leave at least one cell.
pub const MIN_INPUT_SIDE: usize = 32;

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

/// A boundary in the network where a forward pass can start or stop, in
/// network order: `Input`, `Block(1)` .. `Block(n)` (after each conv block's
/// max-pool; `n` is 5 for every torchvision VGG, see [`Vgg::cuts`]),
/// `Pooled`, `Hidden`, `Logits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cut {
    /// The image batch, `[N, 3, H, W]`.
    Input,
    /// After conv block `k` (1-based), i.e. after its max-pool; the last
    /// block ends `features`: `[N, 512, H/32, W/32]`.
    Block(usize),
    /// After `avgpool` and `flatten(1)`: `[N, 25088]`.
    Pooled,
    /// After `classifier.4` (ReLU of the second hidden layer): `[N, 4096]`.
    Hidden,
    /// After `classifier.6`: `[N, num_classes]`.
    Logits,
}

/// A VGG network with torchvision's layout, names and semantics.
#[derive(Debug)]
pub struct Vgg {
    config: VggConfig,
    blocks: Vec<ConvBlock>,
    classifier: Classifier,
    device: Device,
}

/// Every state-dict entry of the network `config` describes, in state-dict order.
pub(crate) fn tensor_specs(config: &VggConfig) -> Vec<TensorSpec> {
    let mut specs: Vec<TensorSpec> = config
        .blocks()
        .iter()
        .flat_map(|block| ConvBlock::specs(block, config.batch_norm))
        .collect();
    specs.extend(Classifier::specs(config));
    specs
}

impl Vgg {
    /// Builds the network, asking `source` for each state-dict tensor by its spec.
    pub(crate) fn assemble(
        config: VggConfig,
        device: &Device,
        source: &mut Source<'_>,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let blocks = config
            .blocks()
            .iter()
            .map(|block| ConvBlock::new(block, config.batch_norm, source))
            .collect::<Result<_, _>>()?;
        let classifier = Classifier::new(&config, source)?;
        Ok(Vgg {
            config,
            blocks,
            classifier,
            device: device.clone(),
        })
    }

    /// A network initialised as torchvision's `VGG._initialize_weights` does
    /// (conv: Kaiming normal, fan_out, ReLU gain, bias 0; batch norm 1/0;
    /// linear: N(0, 0.01), bias 0), drawn in state-dict order from our RNG
    /// seeded with `seed`.
    pub fn new_random(config: VggConfig, seed: u64, device: &Device) -> Result<Self, ModelError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut vars = std::collections::HashMap::new();
        for spec in tensor_specs(&config) {
            let var = initial_value(&spec, &mut rng, device)?;
            vars.insert(spec.name, var);
        }
        Self::assemble(config, device, &mut |spec: &TensorSpec| {
            vars.remove(&spec.name).ok_or_else(|| {
                ModelError::InvalidConfig(format!("internal: no initial value for {}", spec.name))
            })
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
        let trainable = self.classifier.head.any_trainable();
        self.classifier.head = Linear::from_vars(HEAD, weight, bias, trainable);
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

    /// Every module with state, in state-dict order.
    fn modules(&self) -> Vec<&dyn Module> {
        let mut modules: Vec<&dyn Module> =
            self.blocks.iter().flat_map(ConvBlock::modules).collect();
        modules.extend(self.classifier.modules());
        modules
    }

    /// The parameters with their torchvision names (only the trainable ones
    /// with `trainable_only`), in state-dict order.
    fn parameters(&self, trainable_only: bool) -> Vec<(String, Var)> {
        self.modules()
            .into_iter()
            .flat_map(|module| {
                module
                    .params()
                    .into_iter()
                    .filter(|(_, p)| p.trainable || !trainable_only)
                    .map(|(field, p)| (format!("{}.{field}", module.path()), p.var.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every learnable parameter with its torchvision name (`features.0.weight`, ...),
    /// in state-dict order. Buffers (batch-norm running statistics) are not included.
    pub fn named_parameters(&self) -> Vec<(String, Var)> {
        self.parameters(false)
    }

    /// The parameters gradients flow into, in state-dict order.
    pub fn trainable_parameters(&self) -> Vec<(String, Var)> {
        self.parameters(true)
    }

    /// Marks each parameter trainable when `pred` holds for its torchvision
    /// name (e.g. `|n| n.starts_with("classifier.6.")` trains only the head).
    /// Every parameter starts trainable, as in PyTorch.
    pub fn set_trainable(&mut self, pred: impl Fn(&str) -> bool) {
        let mut modules: Vec<&mut dyn Module> = self
            .blocks
            .iter_mut()
            .flat_map(ConvBlock::modules_mut)
            .collect();
        modules.extend(self.classifier.modules_mut());
        for module in modules {
            let path = module.path().to_string();
            for (field, p) in module.params_mut() {
                p.trainable = pred(&format!("{path}.{field}"));
            }
        }
    }

    /// The full state dict (parameters and buffers) with torchvision names, in
    /// state-dict order, detached from any graph.
    pub fn to_named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for module in self.modules() {
            let path = module.path();
            for (field, p) in module.params() {
                out.push((format!("{path}.{field}"), p.var.as_detached_tensor()));
            }
            for (field, v) in module.buffers() {
                out.push((format!("{path}.{field}"), v.as_detached_tensor()));
            }
        }
        out
    }

    /// Every cut of this network, in network order.
    pub fn cuts(&self) -> Vec<Cut> {
        let mut cuts = vec![Cut::Input];
        cuts.extend((1..=self.blocks.len()).map(Cut::Block));
        cuts.extend([Cut::Pooled, Cut::Hidden, Cut::Logits]);
        cuts
    }

    /// Position of `cut` in [`Vgg::cuts`].
    fn position(&self, cut: Cut) -> Result<usize, ModelError> {
        let blocks = self.blocks.len();
        match cut {
            Cut::Input => Ok(0),
            Cut::Block(k) if (1..=blocks).contains(&k) => Ok(k),
            Cut::Block(k) => Err(ModelError::BadInput(format!(
                "Cut::Block({k}): this VGG has conv blocks 1..={blocks}"
            ))),
            Cut::Pooled => Ok(blocks + 1),
            Cut::Hidden => Ok(blocks + 2),
            Cut::Logits => Ok(blocks + 3),
        }
    }

    /// The modules with state of the stage that ends at the cut at `position`.
    fn stage_modules(&self, position: usize) -> Vec<&dyn Module> {
        let blocks = self.blocks.len();
        match position {
            p if (1..=blocks).contains(&p) => self.blocks[p - 1].modules(),
            p if p == blocks + 2 => self.classifier.hidden_modules(),
            p if p == blocks + 3 => vec![&self.classifier.head],
            _ => Vec::new(),
        }
    }

    /// The latest cut before which every parameter is frozen: the train crate
    /// can run `[Input, cut)` once, without autograd (and cache its output), and
    /// `[cut, Logits]` with gradients. `Logits` when nothing is trainable.
    pub fn first_trainable_cut(&self) -> Cut {
        let cuts = self.cuts();
        let frozen = (1..cuts.len())
            .take_while(|&p| !self.stage_modules(p).iter().any(|m| m.any_trainable()))
            .count();
        cuts[frozen]
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
        let (start, end) = (self.position(from)?, self.position(to)?);
        if start > end {
            return Err(ModelError::BadInput(format!(
                "forward_range from {from:?} to {to:?}: `from` comes after `to`"
            )));
        }
        self.check_input(x, from)?;
        let training = matches!(mode, Mode::Train { .. });
        let dropouts = self.dropouts(mode);
        let blocks = self.blocks.len();
        let mut x = x.clone();
        for p in start + 1..=end {
            x = match p {
                p if p <= blocks => self.blocks[p - 1].forward(&x, training)?,
                p if p == blocks + 1 => AdaptiveAvgPool2d.forward(&x)?,
                p if p == blocks + 2 => self.classifier.hidden(&x, &dropouts)?,
                _ => self.classifier.logits(&x, &dropouts)?,
            };
        }
        Ok(x)
    }

    /// When the classifier's dropouts fire under `mode`: only after something trainable.
    fn dropouts(&self, mode: &Mode) -> Dropouts {
        let features = self
            .blocks
            .iter()
            .any(|b| b.modules().iter().any(|m| m.any_trainable()));
        let [fc1, fc2] = [0, 1].map(|i| self.classifier.hidden_modules()[i].any_trainable());
        Dropouts {
            seed: match mode {
                Mode::Train { dropout_seed } => Some(*dropout_seed),
                Mode::Eval => None,
            },
            before_first: features || fc1,
            before_second: features || fc1 || fc2,
        }
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
        match at {
            Cut::Input => {
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
            Cut::Block(k) => {
                let c = self.blocks[k - 1].out_channels();
                if dims.len() != 4 || dims[1] != c {
                    return Err(ModelError::BadInput(format!(
                        "input at {at:?} must be [N, {c}, H, W]; got shape {dims:?}"
                    )));
                }
            }
            Cut::Pooled | Cut::Hidden | Cut::Logits => {
                let width = match at {
                    Cut::Pooled => self.config.flat_features(),
                    Cut::Hidden => self.config.classifier_hidden,
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
        crate::max_abs_diff(a, b).expect("same shapes")
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
        let cuts = vgg.cuts();
        assert_eq!(cuts.len(), 9, "{cuts:?}");
        for w in cuts.windows(2) {
            h = vgg.forward_range(&h, w[0], w[1], &Mode::Eval)?;
        }
        assert_eq!(max_diff(&full, &h), 0.0);
        assert_eq!(
            vgg.forward_range(&x, Cut::Input, Cut::Block(5), &Mode::Eval)?
                .dims(),
            &[2, 32, 1, 1]
        );
        assert!(vgg
            .forward_range(&x, Cut::Input, Cut::Block(6), &Mode::Eval)
            .is_err());
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
