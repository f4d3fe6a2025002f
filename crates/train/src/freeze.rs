//! What trains and what stays frozen, by torchvision VGG parameter name.

use std::fmt;
use std::str::FromStr;

use finetune_model::VggConfig;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Which parameters train.
///
/// Parsed from and displayed as `head`, `classifier`, `blocks:K`, `all`;
/// serialised the same way in run configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FreezePolicy {
    /// Only the new last layer `classifier.6` (the recipe's option 1).
    Head,
    /// The whole classifier: `classifier.0`, `.3`, `.6`.
    Classifier,
    /// The last K conv blocks of `features` plus the classifier.
    Blocks(usize),
    /// Everything (the recipe's option 2).
    All,
}

impl FreezePolicy {
    /// Whether the parameter `param_name` (a torchvision name such as
    /// `features.28.weight`) of the network `config` describes trains under
    /// this policy. Its conv blocks end at `config`'s max-pools, which differ
    /// for the `_bn` variants. Names outside `features.*` and `classifier.*`
    /// train only under [`FreezePolicy::All`].
    pub fn is_trainable(&self, param_name: &str, config: &VggConfig) -> bool {
        self.trainable_in(config)(param_name)
    }

    /// [`FreezePolicy::is_trainable`] for the network `config` describes, as
    /// a predicate over parameter names (for `Vgg::set_trainable`).
    pub fn trainable_in(self, config: &VggConfig) -> impl Fn(&str) -> bool {
        let pools = config.pool_indices();
        move |name| self.is_trainable_with_pools(name, &pools)
    }

    fn is_trainable_with_pools(&self, param_name: &str, pool_indices: &[usize]) -> bool {
        let layer = parse_layer(param_name);
        match (self, layer) {
            (FreezePolicy::All, _) => true,
            (_, Some(Layer::Classifier(i))) => match self {
                FreezePolicy::Head => i == 6,
                _ => true,
            },
            (FreezePolicy::Blocks(k), Some(Layer::Features(i))) => {
                let blocks = pool_indices.len();
                block_of(i, pool_indices) + k >= blocks
            }
            _ => false,
        }
    }
}

/// A parameter's layer, from names like `features.17.weight`.
enum Layer {
    Features(usize),
    Classifier(usize),
}

fn parse_layer(name: &str) -> Option<Layer> {
    let mut parts = name.split('.');
    let module = parts.next()?;
    let index: usize = parts.next()?.parse().ok()?;
    match module {
        "features" => Some(Layer::Features(index)),
        "classifier" => Some(Layer::Classifier(index)),
        _ => None,
    }
}

/// Zero-based conv block of `features.index`: the number of pools before it.
fn block_of(index: usize, pool_indices: &[usize]) -> usize {
    pool_indices.iter().filter(|&&p| p < index).count()
}

impl fmt::Display for FreezePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreezePolicy::Head => f.write_str("head"),
            FreezePolicy::Classifier => f.write_str("classifier"),
            FreezePolicy::Blocks(k) => write!(f, "blocks:{k}"),
            FreezePolicy::All => f.write_str("all"),
        }
    }
}

impl FromStr for FreezePolicy {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s {
            "head" => Ok(FreezePolicy::Head),
            "classifier" => Ok(FreezePolicy::Classifier),
            "all" => Ok(FreezePolicy::All),
            _ => match s.strip_prefix("blocks:").map(str::parse::<usize>) {
                Some(Ok(k)) => Ok(FreezePolicy::Blocks(k)),
                _ => Err(TrainError::Config(format!(
                    "unknown freeze policy `{s}` (expected head, classifier, blocks:K or all)"
                ))),
            },
        }
    }
}

impl TryFrom<String> for FreezePolicy {
    type Error = TrainError;
    fn try_from(s: String) -> Result<Self, TrainError> {
        s.parse()
    }
}

impl From<FreezePolicy> for String {
    fn from(p: FreezePolicy) -> String {
        p.to_string()
    }
}

/// Gradual unfreezing (fastai's `fine_tune`): train with [`FreezePolicy::Head`]
/// for `head_epochs`, then switch to `then`, with the newly trainable
/// parameters' learning rate scaled by `lr_scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unfreeze {
    /// Epochs with only the head trainable.
    pub head_epochs: usize,
    /// The policy from epoch `head_epochs` on.
    pub then: FreezePolicy,
    /// Learning-rate multiplier of the parameters unfrozen in the second phase.
    pub lr_scale: f64,
}

impl Unfreeze {
    /// The policy in force during zero-based `epoch`.
    pub fn policy_at(&self, epoch: usize) -> FreezePolicy {
        if epoch < self.head_epochs {
            FreezePolicy::Head
        } else {
            self.then
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torchvision VGG16's 32 parameter names.
    fn vgg16_names() -> Vec<String> {
        let convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
        let mut names = Vec::new();
        for i in convs {
            names.push(format!("features.{i}.weight"));
            names.push(format!("features.{i}.bias"));
        }
        for i in [0, 3, 6] {
            names.push(format!("classifier.{i}.weight"));
            names.push(format!("classifier.{i}.bias"));
        }
        names
    }

    fn trainable(p: FreezePolicy) -> Vec<String> {
        let vgg16 = VggConfig::vgg16(10);
        vgg16_names()
            .into_iter()
            .filter(|n| p.is_trainable(n, &vgg16))
            .collect()
    }

    #[test]
    fn policies_select_torchvision_names() {
        assert_eq!(
            trainable(FreezePolicy::Head),
            ["classifier.6.weight", "classifier.6.bias"]
        );
        assert_eq!(trainable(FreezePolicy::Classifier).len(), 6);
        assert_eq!(trainable(FreezePolicy::Blocks(0)).len(), 6);
        let b1 = trainable(FreezePolicy::Blocks(1));
        assert_eq!(b1.len(), 12);
        assert!(b1.contains(&"features.24.weight".to_string()));
        assert!(!b1.contains(&"features.21.weight".to_string()));
        let b2 = trainable(FreezePolicy::Blocks(2));
        assert!(b2.contains(&"features.17.bias".to_string()));
        assert!(!b2.contains(&"features.14.bias".to_string()));
        assert_eq!(trainable(FreezePolicy::Blocks(5)).len(), 32);
        assert_eq!(trainable(FreezePolicy::Blocks(9)).len(), 32);
        assert_eq!(trainable(FreezePolicy::All).len(), 32);
        let vgg16 = VggConfig::vgg16(10);
        assert!(!FreezePolicy::Classifier.is_trainable("head.fc.weight", &vgg16));
        assert!(FreezePolicy::All.is_trainable("head.fc.weight", &vgg16));
    }

    #[test]
    fn bn_variant_uses_its_own_pools() {
        // vgg16_bn: each conv is followed by BatchNorm and ReLU, pools at 6 13 23 33 43.
        let bn = VggConfig::new(finetune_model::VggVariant::Vgg16, true, 10);
        assert_eq!(bn.pool_indices(), [6, 13, 23, 33, 43]);
        let p = FreezePolicy::Blocks(1);
        assert!(p.is_trainable("features.34.weight", &bn));
        assert!(p.is_trainable("features.35.running_mean", &bn));
        assert!(!p.is_trainable("features.30.weight", &bn));
        // features.28 closes VGG16's last block but is in vgg16_bn's fourth.
        assert!(p.is_trainable("features.28.weight", &VggConfig::vgg16(10)));
        assert!(!p.is_trainable("features.28.weight", &bn));
    }

    #[test]
    fn parse_display_round_trip() {
        for s in ["head", "classifier", "blocks:3", "all"] {
            let p: FreezePolicy = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<FreezePolicy>(&json).unwrap(), p);
        }
        for bad in ["", "blocks:", "blocks:x", "Head", "blocks:-1"] {
            let err = bad.parse::<FreezePolicy>().unwrap_err();
            assert!(err.to_string().contains("freeze policy"), "{err}");
        }
    }

    #[test]
    fn unfreeze_plan() {
        let u = Unfreeze {
            head_epochs: 2,
            then: FreezePolicy::All,
            lr_scale: 0.1,
        };
        assert_eq!(u.policy_at(1), FreezePolicy::Head);
        assert_eq!(u.policy_at(2), FreezePolicy::All);
    }
}
