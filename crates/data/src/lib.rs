//! STL10 and image folders turned into normalised f32 batches with exactly
//! the semantics of torchvision's `datasets.STL10`, `datasets.ImageFolder` and
//! transforms, as fast as memory allows.
//!
//! - [`Stl10`] and [`ImageFolder`] implement one small trait, [`Dataset`].
//! - [`transforms`] holds `RandomCrop`, `RandomHorizontalFlip`, `Resize`,
//!   `ToTensor`, `Normalize`, and [`Pipeline`], which chains them and writes
//!   the result straight into a batch buffer in one pass.
//! - [`PrefetchLoader`] shuffles, augments in parallel (rayon) and keeps K
//!   batches ready on a background thread; every random draw comes from
//!   (seed, epoch, dataset index), so batches do not depend on thread count.
//!
//! ```
//! use std::sync::Arc;
//! use finetune_data::{synthetic, LoaderConfig, Pipeline, PrefetchLoader, Split, Stl10};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = std::env::temp_dir().join(format!("finetune-data-doc-{}", std::process::id()));
//! synthetic::write_stl10(&root, 20, 0, 0)?; // 20 train images, STL10 format
//! let train = Stl10::open(&root, Split::Train, None)?;
//! let config = LoaderConfig { batch_size: 8, shuffle: true, seed: 42, ..LoaderConfig::default() };
//! let loader = PrefetchLoader::new(Arc::new(train), Pipeline::recipe_train(96), config);
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     assert_eq!(batch.shape()[1..], [3, 96, 96]);
//!     assert_eq!(batch.images().len(), batch.shape().iter().product::<usize>());
//! }
//! # std::fs::remove_dir_all(&root)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod dataset;
#[cfg(feature = "download")]
pub mod download;
mod error;
mod fingerprint;
mod folder;
mod layout;
mod loader;
mod rng;
mod stl10;
mod stream;
pub mod synthetic;
pub mod transforms;

pub use dataset::{Dataset, Label, Split, UNLABELED};
pub use error::DataError;
pub use fingerprint::fingerprint;
pub use folder::{FolderSplit, ImageFolder, ImageFolderOptions};
pub use layout::{DataLayout, DataOptions, OpenedSplit};
pub use loader::{augment_batch, Batch, EpochIter, LoaderConfig, PrefetchLoader};
pub use rng::{sample_rng, shuffle};
pub use stl10::{
    Stl10, STL10_CLASSES, STL10_CLASS_NAMES_FILE, STL10_DIR, STL10_FOLDS, STL10_FOLDS_FILE,
    STL10_IMAGE_BYTES, STL10_SIDE,
};
pub use transforms::{Pipeline, IMAGENET_MEAN, IMAGENET_STD, STL10_MEAN, STL10_STD};
