//! [`ParamGroup`]: parameters sharing a learning-rate multiplier and a
//! weight decay, like PyTorch's `param_groups`.

use candle_core::Var;

/// Parameters that share a learning-rate multiplier and a weight decay.
///
/// Groups give discriminative learning rates (a backbone at a tenth of the
/// head's rate) and no-decay sets (biases), like PyTorch's `param_groups`.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// A label for logs and errors, e.g. `"backbone"`.
    pub name: String,
    /// The parameters, with their checkpoint names (`"classifier.6.weight"`).
    pub params: Vec<(String, Var)>,
    /// The group's learning rate is the optimiser's learning rate times this.
    pub lr_scale: f64,
    /// Overrides the optimiser's weight decay for this group when set.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group with learning-rate scale 1 and the optimiser's weight decay.
    pub fn new(name: impl Into<String>, params: Vec<(String, Var)>) -> Self {
        ParamGroup {
            name: name.into(),
            params,
            lr_scale: 1.0,
            weight_decay: None,
        }
    }

    /// Sets the learning-rate multiplier.
    pub fn with_lr_scale(mut self, lr_scale: f64) -> Self {
        self.lr_scale = lr_scale;
        self
    }

    /// Sets the group's own weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// Splits off the parameters whose names end in `.bias` into a group named
    /// `"<name>.no_decay"` with weight decay 0 and the same learning-rate scale.
    ///
    /// Empty groups are dropped, so the result has one or two groups (or none
    /// for an empty group).
    pub fn split_bias_no_decay(self) -> Vec<ParamGroup> {
        let (biases, others): (Vec<_>, Vec<_>) = self
            .params
            .into_iter()
            .partition(|(name, _)| name.ends_with(".bias"));
        let decay = ParamGroup {
            name: self.name.clone(),
            params: others,
            lr_scale: self.lr_scale,
            weight_decay: self.weight_decay,
        };
        let no_decay = ParamGroup {
            name: format!("{}.no_decay", self.name),
            params: biases,
            lr_scale: self.lr_scale,
            weight_decay: Some(0.0),
        };
        [decay, no_decay]
            .into_iter()
            .filter(|g| !g.params.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn var(name: &str, vals: &[f32]) -> (String, Var) {
        let v = Var::from_tensor(&Tensor::new(vals, &Device::Cpu).unwrap()).unwrap();
        (name.to_string(), v)
    }

    #[test]
    fn split_bias_no_decay_moves_only_biases() {
        let g = ParamGroup::new("all", vec![var("a.weight", &[1.0]), var("a.bias", &[2.0])])
            .with_lr_scale(0.5)
            .with_weight_decay(1e-2);
        let groups = g.split_bias_no_decay();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].params[0].0, "a.weight");
        assert_eq!(groups[0].weight_decay, Some(1e-2));
        assert_eq!(groups[1].name, "all.no_decay");
        assert_eq!(groups[1].params[0].0, "a.bias");
        assert_eq!(groups[1].weight_decay, Some(0.0));
        assert_eq!(groups[1].lr_scale, 0.5);
    }
}
