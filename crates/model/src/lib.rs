//! VGG with torchvision's exact semantics on candle, and its weights in and out.
//!
//! - [`Vgg`]: vgg11/13/16/19 and their `_bn` variants, batched NCHW input of
//!   any size from 32x32, `AdaptiveAvgPool2d((7, 7))` with PyTorch's bins,
//!   dropout where torchvision has it, eval and train [`Mode`].
//! - Weights in: [`Vgg::load`] reads safetensors (memory-mapped) or PyTorch
//!   zip `.pth`, torchvision or timm names, f16/bf16 converted; a head of
//!   another size is replaced by a new seeded one ([`LoadReport`] says so).
//! - Weights out: [`Vgg::save_safetensors`] writes torchvision names that
//!   `torchvision.models.vgg16(num_classes=n).load_state_dict` accepts.
//! - Made for freezing: parameters are [`candle_core::Var`]s with a per-parameter
//!   trainable flag ([`Vgg::set_trainable`]); the forward pass can start and
//!   stop at any [`Cut`], so a frozen prefix can run once without autograd.
//! - Fast on the CPU: 3x3 convolutions (Winograd F(2x2, 3x3), see
//!   [`set_winograd`]), linear layers and the 2x2 max-pool run as custom ops
//!   over large GEMMs (dot products for a small batch's linear forward),
//!   with their backward passes, on f32 CPU tensors,
//!   candle's own ops elsewhere; training binaries should call
//!   [`retain_freed_memory`] once (see `README.md` for figures).
//! - Tensors on disk: [`write_safetensors`] writes atomically (a crash leaves
//!   the old file or the new one); [`relative_diff`] compares tensors as the
//!   golden tests do; with the `download` feature, the `download` module
//!   fetches torchvision's ImageNet VGG16.
//!
//! The code follows torchvision's `VGG`: `features.rs` (conv blocks) and
//! `classifier.rs` are built from the layer modules in `layers/`, each
//! created from its state-dict path (`features.0`, `classifier.6`); the
//! kernels they run are in `ops/`.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use finetune_model::{Cut, Mode, Vgg, VggConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A narrow VGG16 keeps the example fast; `VggConfig::vgg16(10)` is the real one.
//! let mut config = VggConfig::vgg16(10);
//! config.width_divisor = 16;
//! config.classifier_hidden = 32;
//! let mut vgg = Vgg::new_random(config, 0, &Device::Cpu)?;
//! vgg.set_trainable(|name| name.starts_with("classifier."));
//! // Everything up to the flattened pooled features is frozen: compute it once.
//! assert_eq!(vgg.first_trainable_cut(), Cut::Pooled);
//!
//! let images = Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?;
//! let pooled = vgg.forward_range(&images, Cut::Input, Cut::Pooled, &Mode::Eval)?;
//! let train = Mode::Train { dropout_seed: 1 };
//! let logits = vgg.forward_range(&pooled, Cut::Pooled, Cut::Logits, &train)?;
//! assert_eq!(logits.dims(), &[2, 10]);
//! # Ok(())
//! # }
//! ```

mod checkpoint;
mod classifier;
mod compare;
mod config;
mod device;
#[cfg(feature = "download")]
pub mod download;
mod error;
mod features;
mod init;
mod layers;
mod ops;
mod vgg;

pub use checkpoint::{
    stored_num_classes, stored_tensor_names, write_safetensors, CheckpointFormat, LoadReport,
    NamingScheme,
};
pub use compare::{max_abs_diff, relative_diff};
pub use config::{VggConfig, VggVariant};
pub use device::select_device;
pub use error::{Mismatch, ModelError};
pub use ops::adaptive_pool::{adaptive_avg_pool2d, adaptive_bin};
pub use ops::conv::set_winograd;
pub use ops::memory::retain_freed_memory;
pub use ops::precision::{bf16_supported, precision, set_precision, Precision};
pub use vgg::{Cut, Mode, Vgg, MIN_INPUT_SIDE};
