//! Downloads that survive a flaky network and never leave a bad file: what
//! `finetune-data` (the STL10 archive) and `finetune-model` (the pretrained
//! weights) share behind their `download` features.
//!
//! - [`Download`]: one HTTP(S) file into a `NAME.part` file, resumed with a
//!   Range request after an interruption, checksummed as the bytes come in
//!   ([`Algorithm`]: md5 or sha256), with a progress bar.
//! - [`Archive`]: a `.tar.gz` extracted while it downloads, only the wanted
//!   members, refusing links and paths that leave the target; the files are
//!   renamed into place only once the whole archive's checksum matches.
//! - Where files go: [`cache_dir_from`] (`$FINETUNE_CACHE`, else the
//!   platform's cache directory) and Hugging Face's hub cache
//!   ([`hf_hub_cache_from`], [`find_in_hf_cache`], [`hf_url`]).
//!
//! Every error ([`DownloadError`]) names the URL or file and says what to do.
//! Environments are passed as lookup closures, so callers and tests need not
//! touch the process environment.
//!
//! ```
//! use finetune_download::{cache_dir_from, hf_url};
//!
//! let env = |key: &str| (key == "FINETUNE_CACHE").then(|| "/data/cache".to_string());
//! assert_eq!(cache_dir_from(env).unwrap(), std::path::Path::new("/data/cache"));
//! assert_eq!(
//!     hf_url("https://huggingface.co", "timm/vgg16.tv_in1k", "model.safetensors"),
//!     "https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors"
//! );
//! ```

#![warn(missing_docs)]

mod archive;
mod cache;
mod error;
mod http;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use archive::{Archive, KnownSize};
pub use cache::{
    cache_dir_from, default_cache_dir, dir_or_cache, env_var, find_in_hf_cache, hf_hub_cache_from,
    hf_url,
};
pub use error::DownloadError;
pub use http::{parse_checksum, Algorithm, Download, Finished};

/// Prints a note for the user on stderr unless asked to be quiet.
pub fn say(quiet: bool, message: &str) {
    if !quiet {
        eprintln!("{message}");
    }
}
