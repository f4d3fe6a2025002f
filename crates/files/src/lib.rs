//! How finetune puts files on disk, shared by `finetune-data`,
//! `finetune-model` and `finetune-train`:
//!
//! - [`atomic`]: every file is written to a temporary file, flushed and
//!   renamed into place, so a crash leaves the old file or the new one;
//! - where files go: [`cache_dir_from`] (`$FINETUNE_CACHE`, else the
//!   platform's cache directory) and Hugging Face's hub cache
//!   ([`hf_hub_cache_from`], [`find_in_hf_cache`], [`hf_url`]);
//! - with the `download` feature, downloads that survive a flaky network and
//!   never leave a bad file: `Download` (one HTTP(S) file into `NAME.part`,
//!   resumed with a Range request, checksummed as the bytes come in,
//!   md5 or sha256) and `Archive` (a `.tar.gz` extracted while it downloads,
//!   only the wanted members, renamed into place once the checksum matches).
//!
//! Every error ([`FilesError`]) names the file or URL and says what to do.
//! Environments are passed as lookup closures, so callers and tests need not
//! touch the process environment.
//!
//! ```
//! use finetune_files::{atomic, cache_dir_from, hf_url};
//!
//! let env = |key: &str| (key == "FINETUNE_CACHE").then(|| "/data/cache".to_string());
//! assert_eq!(cache_dir_from(env).unwrap(), std::path::Path::new("/data/cache"));
//! assert_eq!(
//!     hf_url("https://huggingface.co", "timm/vgg16.tv_in1k", "model.safetensors"),
//!     "https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors"
//! );
//! let file = std::env::temp_dir().join(format!("finetune-files-doc-{}", std::process::id()));
//! atomic::write_file_atomic(&file, b"all or nothing").unwrap();
//! # std::fs::remove_file(&file).unwrap();
//! ```

#![warn(missing_docs)]

#[cfg(feature = "download")]
mod archive;
pub mod atomic;
mod cache;
mod error;
mod hash;
#[cfg(feature = "download")]
mod http;
mod lock;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "download")]
pub use archive::{Archive, KnownSize};
pub use cache::{
    cache_dir_from, default_cache_dir, dir_or_cache, env_var, find_in_hf_cache, hf_hub_cache_from,
    hf_url,
};
pub use error::FilesError;
pub use hash::sha256_file;
#[cfg(feature = "download")]
pub use http::{parse_checksum, Algorithm, Download, Finished, Transfer};
pub use lock::{DirLock, LOCK_FILE};

/// Prints a note for the user on stderr unless asked to be quiet.
pub fn say(quiet: bool, message: &str) {
    if !quiet {
        eprintln!("{message}");
    }
}
