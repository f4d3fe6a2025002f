//! Which VGG to build: torchvision's cfg lists, plus knobs that tests and
//! fine-tuning need (class count, dropout, narrower widths).

use crate::ModelError;

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
pub(crate) enum CfgItem {
    Conv(usize),
    MaxPool,
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

    pub(crate) fn cfg(self, width_divisor: usize) -> Vec<CfgItem> {
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

    /// Indices in torchvision's `features` Sequential of the five max-pools
    /// (VGG16: 4 9 16 23 30); conv block `k` ends at the `k`-th. Each conv
    /// takes two slots (conv, ReLU), three with batch norm.
    pub fn pool_indices(&self) -> Vec<usize> {
        let per_conv = if self.batch_norm { 3 } else { 2 };
        let mut index = 0;
        let mut pools = Vec::new();
        for item in self.cfg.cfg(1) {
            match item {
                CfgItem::Conv(_) => index += per_conv,
                CfgItem::MaxPool => {
                    pools.push(index);
                    index += 1;
                }
            }
        }
        pools
    }

    /// Channels leaving `features` (512 at full width).
    pub fn feature_channels(&self) -> usize {
        512 / self.width_divisor
    }

    /// Length of the flattened pooled features, the input of `classifier.0` (25 088 at full width).
    pub fn flat_features(&self) -> usize {
        self.feature_channels() * 7 * 7
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

#[cfg(test)]
mod tests {
    use super::*;

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
