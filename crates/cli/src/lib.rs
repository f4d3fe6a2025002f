//! The library behind the `finetune` command.
//!
//! Two things the subcommands share live here: [`fetch`] gets the STL10
//! archive and the pretrained VGG16 weights into a local cache, resuming
//! interrupted downloads and checking checksums; [`setup`] opens `--data` as
//! STL10 or an image folder, builds the transforms, picks the device and
//! records how a run prepared its images ([`setup::Preprocess`] in
//! `preprocess.json`), which `eval`, `predict` and `preview` read back
//! ([`setup::Preprocess::resolve`], [`setup::RunArgs`]) to feed images the
//! way training did.
//!
//! ```no_run
//! use finetune_cli::fetch::{self, Stl10Fetch, WeightsFetch};
//!
//! # fn main() -> Result<(), fetch::FetchError> {
//! let env = |key: &str| std::env::var(key).ok();
//! let data_dir = fetch::stl10(&Stl10Fetch::from_env(None, env)?)?;
//! let weights = fetch::vgg16(&WeightsFetch::from_env(None, env)?)?;
//! println!("{} {}", data_dir.display(), weights.display());
//! # Ok(())
//! # }
//! ```

pub mod fetch;
pub mod setup;
