//! torchvision's transforms on u8 RGB images, and [`Pipeline`], which chains
//! them and writes the normalised CHW f32 result straight into a batch buffer.
//!
//! Each transform also has a standalone, deterministic form
//! ([`RandomCrop::apply_at`], [`RandomHorizontalFlip::apply_with`],
//! [`Resize::apply`], [`ToTensor::apply`], [`Normalize::apply`]) that golden
//! tests compare with torchvision.
//!
//! - `rgb.rs`: [`RgbImage`] and [`ImageRef`], the images the steps take;
//! - `crop.rs`, `flip.rs`, `resize.rs`, `tensor.rs`: one transform each;
//! - `pipeline.rs`: [`Pipeline`] and its fused writer;
//! - `parse.rs`: a pipeline's text form (`crop:96:4,flip,normalize`);
//! - `tiles.rs`: the fused writer's vector path for column-major sources.

mod crop;
mod flip;
mod geometry;
mod parse;
mod pipeline;
mod resize;
mod rgb;
mod tensor;
mod tiles;

pub use crop::RandomCrop;
pub use flip::RandomHorizontalFlip;
pub use pipeline::{Choice, Pipeline, Step};
pub use resize::Resize;
pub use rgb::{ImageRef, RgbImage};
pub use tensor::{Normalize, ToTensor};

/// STL10 per-channel mean used by the recipe (f32).
pub const STL10_MEAN: [f32; 3] = [0.446_711_03, 0.439_808_82, 0.406_645_75];
/// STL10 per-channel standard deviation used by the recipe (f32).
pub const STL10_STD: [f32; 3] = [0.260_340_8, 0.256_577_43, 0.271_267_1];
/// ImageNet mean (torchvision's pretrained-model documentation).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation (torchvision's pretrained-model documentation).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
