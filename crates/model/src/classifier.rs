//! torchvision VGG's `classifier`: `Linear` (`classifier.0`), ReLU, Dropout
//! (`.2`), `Linear` (`.3`), ReLU, Dropout (`.5`), and the head `Linear` (`.6`).

use candle_core::Tensor;

use crate::layers::{Dropout, Linear, Module, Source, TensorSpec};
use crate::{ModelError, VggConfig};

/// The path of the head, the layer fine-tuning replaces.
pub(crate) const HEAD: &str = "classifier.6";

/// The three fully connected layers and the two dropouts between them.
#[derive(Debug)]
pub(crate) struct Classifier {
    /// `classifier.0`: pooled features to hidden.
    fc1: Linear,
    /// `classifier.2`.
    dropout1: Dropout,
    /// `classifier.3`: hidden to hidden.
    fc2: Linear,
    /// `classifier.5`.
    dropout2: Dropout,
    /// `classifier.6`: hidden to classes.
    pub(crate) head: Linear,
}

/// Whether the dropouts fire: in training mode, and (see
/// [`crate::Vgg::forward_range`]) only after a trainable parameter.
pub(crate) struct Dropouts {
    /// This step's mask seed, when training.
    pub(crate) seed: Option<u64>,
    /// Whether anything before `classifier.2` trains.
    pub(crate) before_first: bool,
    /// Whether anything before `classifier.5` trains.
    pub(crate) before_second: bool,
}

impl Classifier {
    /// The state-dict entries of the classifier for `config`.
    pub(crate) fn specs(config: &VggConfig) -> Vec<TensorSpec> {
        let (flat, hidden, classes) = dims(config);
        [
            Linear::specs("classifier.0", flat, hidden, false),
            Linear::specs("classifier.3", hidden, hidden, false),
            Linear::specs(HEAD, hidden, classes, true),
        ]
        .concat()
    }

    /// The classifier for `config`, its tensors from `source`.
    pub(crate) fn new(config: &VggConfig, source: &mut Source<'_>) -> Result<Self, ModelError> {
        let (flat, hidden, classes) = dims(config);
        Ok(Classifier {
            fc1: Linear::new("classifier.0", flat, hidden, false, source)?,
            dropout1: Dropout {
                index: 2,
                p: config.dropout,
            },
            fc2: Linear::new("classifier.3", hidden, hidden, false, source)?,
            dropout2: Dropout {
                index: 5,
                p: config.dropout,
            },
            head: Linear::new(HEAD, hidden, classes, true, source)?,
        })
    }

    /// `classifier.0` to `classifier.4`: pooled features to the second hidden ReLU.
    pub(crate) fn hidden(&self, x: &Tensor, dropouts: &Dropouts) -> Result<Tensor, ModelError> {
        let x = self.fc1.forward(x, true)?;
        let x = match dropouts.seed.filter(|_| dropouts.before_first) {
            Some(seed) => self.dropout1.forward(&x, seed)?,
            None => x,
        };
        self.fc2.forward(&x, true)
    }

    /// `classifier.5` and `classifier.6`: the second hidden ReLU to logits.
    pub(crate) fn logits(&self, x: &Tensor, dropouts: &Dropouts) -> Result<Tensor, ModelError> {
        let x = match dropouts.seed.filter(|_| dropouts.before_second) {
            Some(seed) => self.dropout2.forward(x, seed)?,
            None => x.clone(),
        };
        self.head.forward(&x, false)
    }

    /// The layers of the hidden stage (`classifier.0`, `.3`), with state.
    pub(crate) fn hidden_modules(&self) -> Vec<&dyn Module> {
        vec![&self.fc1, &self.fc2]
    }

    /// The modules with state, in state-dict order.
    pub(crate) fn modules(&self) -> Vec<&dyn Module> {
        vec![&self.fc1, &self.fc2, &self.head]
    }

    /// The same, to change their trainability.
    pub(crate) fn modules_mut(&mut self) -> Vec<&mut dyn Module> {
        vec![&mut self.fc1, &mut self.fc2, &mut self.head]
    }
}

/// (pooled features, hidden width, classes) of `config`'s classifier.
fn dims(config: &VggConfig) -> (usize, usize, usize) {
    (
        config.flat_features(),
        config.classifier_hidden,
        config.num_classes,
    )
}
