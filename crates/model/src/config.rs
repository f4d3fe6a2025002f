//! Which VGG to build: torchvision's cfg lists, plus knobs that tests and
//! fine-tuning need (class count, dropout, narrower widths), and where each
//! layer of `features` sits (torchvision's `make_layers`).

use std::fmt;
use std::str::FromStr;

use crate::ModelError;

/// The side of the map `avgpool` makes, `nn.AdaptiveAvgPool2d((7, 7))`.
pub(crate) const POOLED_SIDE: usize = 7;

/// One of torchvision's four VGG depths (`models/vgg.py`, `cfgs` "A", "B", "D", "E").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VggVariant {
    /// cfg "A": 8 convs.
    Vgg11,
    /// cfg "B": 10 convs.
    Vgg13,
    /// cfg "D": 13 convs, the recipe's network.
    Vgg16,
    /// cfg "E": 16 convs.
    Vgg19,
}

/// One entry of a cfg list: a 3x3 conv with that many output channels, or a 2x2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CfgItem {
    Conv(usize),
    MaxPool,
}

/// One conv of `features`: the conv at `features.{index}` (its batch norm,
/// if any, at `index + 1`), followed by a ReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvAt {
    pub(crate) index: usize,
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
}

/// One conv block of `features`: its convs, closed by the max-pool at
/// `features.{pool}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockAt {
    pub(crate) convs: Vec<ConvAt>,
    pub(crate) pool: usize,
}

impl VggVariant {
    /// The cfg list exactly as torchvision's `cfgs` dict spells it (0 stands for "M").
    fn raw_cfg(self) -> &'static [usize] {
        // Source: torchvision/models/vgg.py, `cfgs`. 0 marks a max-pool ("M").
        match self {
            VggVariant::Vgg11 => &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
            VggVariant::Vgg13 => &[
                64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
            ],
            VggVariant::Vgg16 => &[
                64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
            ],
            VggVariant::Vgg19 => &[
                64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512,
                512, 512, 0,
            ],
        }
    }

    fn cfg(self, width_divisor: usize) -> Vec<CfgItem> {
        self.raw_cfg()
            .iter()
            .map(|&c| {
                if c == 0 {
                    CfgItem::MaxPool
                } else {
                    CfgItem::Conv(c / width_divisor)
                }
            })
            .collect()
    }
}

/// Everything that decides the network's shape and its stochastic layers.
#[derive(Debug, Clone, PartialEq)]
pub struct VggConfig {
    /// Depth (cfg list).
    pub cfg: VggVariant,
    /// Whether each conv is followed by `BatchNorm2d` (torchvision's `_bn` variants).
    pub batch_norm: bool,
    /// Output size of the head, `classifier.6`.
    pub num_classes: usize,
    /// Drop probability of `classifier.2` and `classifier.5` (torchvision: 0.5).
    pub dropout: f32,
    /// Every conv width is divided by this (1 = torchvision's widths); narrow nets keep tests fast.
    pub width_divisor: usize,
    /// Width of the two hidden fully connected layers (torchvision: 4096).
    pub classifier_hidden: usize,
    /// Seed of any parameter this crate initialises itself (a new head on load, `new_random`).
    pub seed: u64,
}

impl VggConfig {
    /// torchvision's `vgg16(num_classes=n)`: full widths, dropout 0.5, seed 0.
    pub fn vgg16(num_classes: usize) -> Self {
        Self::new(VggVariant::Vgg16, false, num_classes)
    }

    /// torchvision's `vgg{11,13,16,19}[_bn](num_classes=n)` with full widths, dropout 0.5, seed 0.
    pub fn new(cfg: VggVariant, batch_norm: bool, num_classes: usize) -> Self {
        Self {
            cfg,
            batch_norm,
            num_classes,
            dropout: 0.5,
            width_divisor: 1,
            classifier_hidden: 4096,
            seed: 0,
        }
    }

    /// torchvision's name of this architecture: `vgg16`, `vgg19_bn`, ...
    /// (what [`VggConfig::from_str`] parses).
    pub fn name(&self) -> String {
        let depth = match self.cfg {
            VggVariant::Vgg11 => 11,
            VggVariant::Vgg13 => 13,
            VggVariant::Vgg16 => 16,
            VggVariant::Vgg19 => 19,
        };
        let bn = if self.batch_norm { "_bn" } else { "" };
        format!("vgg{depth}{bn}")
    }

    /// The conv blocks of torchvision's `features` Sequential as
    /// `make_layers` lays them out: each conv takes two slots (conv, ReLU),
    /// three with batch norm (conv, BatchNorm2d, ReLU); each block ends with
    /// a max-pool. Channels are divided by `width_divisor`.
    pub(crate) fn blocks(&self) -> Vec<BlockAt> {
        let per_conv = if self.batch_norm { 3 } else { 2 };
        let (mut index, mut in_channels) = (0, 3);
        let mut blocks = Vec::new();
        let mut convs = Vec::new();
        for item in self.cfg.cfg(self.width_divisor.max(1)) {
            match item {
                CfgItem::Conv(out_channels) => {
                    convs.push(ConvAt {
                        index,
                        in_channels,
                        out_channels,
                    });
                    in_channels = out_channels;
                    index += per_conv;
                }
                CfgItem::MaxPool => {
                    blocks.push(BlockAt {
                        convs: std::mem::take(&mut convs),
                        pool: index,
                    });
                    index += 1;
                }
            }
        }
        blocks
    }

    /// Indices in torchvision's `features` Sequential of the max-pools
    /// (VGG16: 4 9 16 23 30); conv block `k` ends at the `k`-th.
    pub fn pool_indices(&self) -> Vec<usize> {
        self.blocks().iter().map(|block| block.pool).collect()
    }

    /// Channels leaving `features` (512 at full width).
    pub fn feature_channels(&self) -> usize {
        512 / self.width_divisor
    }

    /// Length of the flattened pooled features, the input of `classifier.0` (25 088 at full width).
    pub fn flat_features(&self) -> usize {
        self.feature_channels() * POOLED_SIDE * POOLED_SIDE
    }

    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let mut problems = Vec::new();
        if self.width_divisor == 0 || 64 % self.width_divisor != 0 {
            problems.push(format!(
                "width_divisor must divide 64 (so every conv keeps at least one channel), got {}",
                self.width_divisor
            ));
        }
        if self.num_classes == 0 {
            problems.push("num_classes must be at least 1".to_string());
        }
        if self.classifier_hidden == 0 {
            problems.push("classifier_hidden must be at least 1".to_string());
        }
        if !(0.0..=1.0).contains(&self.dropout) {
            problems.push(format!("dropout must lie in [0, 1], got {}", self.dropout));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::InvalidConfig(problems.join("; ")))
        }
    }
}

/// Parses torchvision's architecture names (`vgg11`, `vgg13`, `vgg16`,
/// `vgg19`, each optionally with `_bn`) into that model's default
/// configuration, as `torchvision.models.get_model(name)` builds it: 1000
/// classes, dropout 0.5, full widths. Set `num_classes` for a new head.
impl FromStr for VggConfig {
    type Err = ModelError;

    fn from_str(name: &str) -> Result<Self, ModelError> {
        let (base, batch_norm) = match name.strip_suffix("_bn") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let variant = match base {
            "vgg11" => VggVariant::Vgg11,
            "vgg13" => VggVariant::Vgg13,
            "vgg16" => VggVariant::Vgg16,
            "vgg19" => VggVariant::Vgg19,
            _ => {
                return Err(ModelError::InvalidConfig(format!(
                    "unknown architecture `{name}`: expected vgg11, vgg13, vgg16 or vgg19, optionally with _bn"
                )))
            }
        };
        Ok(VggConfig::new(variant, batch_norm, 1000))
    }
}

/// The architecture's name, as [`VggConfig::name`] (the other fields are not shown).
impl fmt::Display for VggConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for name in ["vgg11", "vgg13_bn", "vgg16", "vgg19_bn"] {
            let config: VggConfig = name.parse().unwrap();
            assert_eq!(config.to_string(), name);
            assert_eq!(config.num_classes, 1000);
        }
        assert!("vgg19_bn".parse::<VggConfig>().unwrap().batch_norm);
        let err = "resnet50".parse::<VggConfig>().unwrap_err().to_string();
        assert!(err.contains("resnet50") && err.contains("vgg16"), "{err}");
    }

    #[test]
    fn blocks_follow_make_layers() {
        let mut config = VggConfig::vgg16(10);
        config.width_divisor = 16;
        let blocks = config.blocks();
        assert_eq!(blocks.len(), 5);
        assert_eq!(
            blocks[1].convs,
            [
                ConvAt {
                    index: 5,
                    in_channels: 4,
                    out_channels: 8
                },
                ConvAt {
                    index: 7,
                    in_channels: 8,
                    out_channels: 8
                }
            ]
        );
        assert_eq!(blocks[4].pool, 30);
    }

    #[test]
    fn pool_indices_match_torchvision_features() {
        // torchvision: vgg16().features[i] is MaxPool2d at 4 9 16 23 30;
        // vgg16_bn at 6 13 23 33 43; vgg11 at 2 5 10 15 20.
        assert_eq!(VggConfig::vgg16(10).pool_indices(), [4, 9, 16, 23, 30]);
        let bn = VggConfig::new(VggVariant::Vgg16, true, 10);
        assert_eq!(bn.pool_indices(), [6, 13, 23, 33, 43]);
        let vgg11 = VggConfig::new(VggVariant::Vgg11, false, 10);
        assert_eq!(vgg11.pool_indices(), [2, 5, 10, 15, 20]);
    }
}
