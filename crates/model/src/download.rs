//! The pretrained VGG16 weights (feature `download`), as torchvision's
//! `models.vgg16(weights=VGG16_Weights.IMAGENET1K_V1)` gets them:
//! torchvision's `vgg16-397923af.pth` converted to safetensors by timm
//! (Hugging Face repository `timm/vgg16.tv_in1k`), reused from a Hugging Face
//! cache when one holds it, else downloaded and checked against the sha256
//! the server states.
//!
//! ```no_run
//! use candle_core::Device;
//! use finetune_model::download::Vgg16Download;
//! use finetune_model::{Vgg, VggConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = Vgg16Download::from_env(None, |key| std::env::var(key).ok())?.fetch()?;
//! let (vgg, report) = Vgg::load(&file, VggConfig::vgg16(10), &Device::Cpu)?;
//! println!("{report}"); // the 1000-class head was replaced by a new 10-class one
//! # Ok(())
//! # }
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use finetune_files::atomic::persist;
pub use finetune_files::FilesError;
use finetune_files::{
    dir_or_cache, env_var, find_in_hf_cache, hf_hub_cache_from, hf_url, parse_checksum, say,
    Algorithm, Download, Transfer,
};

use crate::{ModelError, VggConfig};

/// The Hugging Face repository holding torchvision's ImageNet VGG16 weights as safetensors.
pub const VGG16_REPO: &str = "timm/vgg16.tv_in1k";

/// The weights file inside [`VGG16_REPO`].
pub const VGG16_REPO_FILE: &str = "model.safetensors";

/// The name the weights get in [`Vgg16Download::dir`].
pub const VGG16_FILE_NAME: &str = "vgg16.tv_in1k.safetensors";

/// Where Hugging Face is reached when `HF_ENDPOINT` is not set.
pub const HF_DEFAULT_ENDPOINT: &str = "https://huggingface.co";

const VGG16_HINT: &str =
    "If this machine is offline or the server is down, point finetune at a mirror \
with `--url URL` or FINETUNE_VGG16_URL (or HF_ENDPOINT for a Hugging Face mirror), \
or train from a weights file already on disk with `finetune train --weights FILE`.";

/// The URL of the VGG16 weights on a Hugging Face endpoint.
pub fn vgg16_url(endpoint: &str) -> String {
    hf_url(endpoint, VGG16_REPO, VGG16_REPO_FILE)
}

/// What [`Vgg16Download::fetch`] downloads and where it puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vgg16Download {
    /// The directory that ends up holding [`VGG16_FILE_NAME`].
    pub dir: PathBuf,
    /// Where the safetensors file is downloaded from.
    pub url: String,
    /// The file's sha256 (64 hex digits); `None` trusts the sha256 the server
    /// states (Hugging Face does for LFS files), or checks nothing if it states none.
    pub sha256: Option<String>,
    /// A Hugging Face hub cache to reuse a copy of [`VGG16_REPO`] from;
    /// `None` never looks (set it to `None` when `url` points elsewhere).
    pub hf_hub_cache: Option<PathBuf>,
    /// Print nothing (no progress bar, no notes).
    pub quiet: bool,
    /// Longest wait for the next bytes before giving up (the download is
    /// kept for resuming).
    pub read_timeout: Duration,
}

impl Vgg16Download {
    /// The Hugging Face weights from [`HF_DEFAULT_ENDPOINT`] into `dir`, no cache reuse.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Vgg16Download {
            dir: dir.into(),
            url: vgg16_url(HF_DEFAULT_ENDPOINT),
            sha256: None,
            hf_hub_cache: None,
            quiet: false,
            read_timeout: Transfer::READ_TIMEOUT,
        }
    }

    /// Settings from an environment lookup: `dir`, else `<cache>/weights`;
    /// `FINETUNE_VGG16_URL` overrides the URL, else it is built on
    /// `HF_ENDPOINT`; without `FINETUNE_VGG16_URL` an existing Hugging Face
    /// cache (see [`hf_hub_cache_from`]) is reused.
    pub fn from_env(
        dir: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ModelError> {
        let mut download = Vgg16Download::new(dir_or_cache(dir, &env, "weights")?);
        match env_var(&env, "FINETUNE_VGG16_URL") {
            Some(url) => download.url = url,
            None => {
                if let Some(endpoint) = env_var(&env, "HF_ENDPOINT") {
                    download.url = vgg16_url(&endpoint);
                }
                download.hf_hub_cache = hf_hub_cache_from(&env);
            }
        }
        Ok(download)
    }

    /// Gets the weights; returns the path of the safetensors file (in
    /// [`Vgg16Download::dir`], or in the Hugging Face cache when a copy is
    /// there). Does nothing if the file is already in `dir`. An interrupted
    /// download resumes on the next call. Before anything is installed the
    /// file must pass its checksum (the caller's, else the one the server
    /// states) and read as VGG16 weights (a safetensors header with
    /// torchvision's or timm's tensors of VGG16's shapes); one that fails is
    /// deleted.
    pub fn fetch(&self) -> Result<PathBuf, ModelError> {
        let expected = self
            .sha256
            .as_deref()
            .map(|value| parse_checksum(Algorithm::Sha256, "the VGG16 sha256 (--sha256)", value))
            .transpose()?;
        let target = self.dir.join(VGG16_FILE_NAME);
        if let Ok(meta) = fs::symlink_metadata(&target) {
            if meta.file_type().is_symlink() {
                return Err(FilesError::Symlink { path: target }.into());
            }
            check_vgg16_weights(&target)?;
            say(
                self.quiet,
                &format!("the VGG16 weights are already at {}", target.display()),
            );
            return Ok(target);
        }
        if let Some(found) = self
            .hf_hub_cache
            .as_deref()
            .and_then(|cache| find_in_hf_cache(cache, VGG16_REPO, VGG16_REPO_FILE))
        {
            say(
                self.quiet,
                &format!(
                    "using the VGG16 weights from the Hugging Face cache: {}",
                    found.display()
                ),
            );
            return Ok(found);
        }
        fs::create_dir_all(&self.dir).map_err(FilesError::io("create", &self.dir))?;
        let part = self.dir.join(format!("{VGG16_FILE_NAME}.part"));
        say(
            self.quiet,
            &format!(
                "fetching the VGG16 weights from {} into {}",
                self.url,
                target.display()
            ),
        );
        let transfer = Transfer {
            hint: VGG16_HINT,
            quiet: self.quiet,
            read_timeout: self.read_timeout,
        };
        let finished = Download::start(&self.url, &part, Algorithm::Sha256, &transfer)?.finish()?;
        match expected.or(finished.server_sha256) {
            Some(expected) if expected != finished.digest => {
                // Never leave a file that failed its checksum where it could be used.
                let _ = fs::remove_file(&part);
                return Err(FilesError::ChecksumMismatch {
                    url: self.url.clone(),
                    algorithm: Algorithm::Sha256.name(),
                    expected,
                    found: finished.digest,
                }
                .into());
            }
            Some(_) => {}
            None => say(
                self.quiet,
                &format!(
                    "note: {} states no sha256, so the file is only checked to be VGG16 weights (sha256 {})",
                    self.url, finished.digest
                ),
            ),
        }
        if let Err(e) = check_vgg16_weights(&part) {
            let _ = fs::remove_file(&part);
            return Err(ModelError::NotVgg16 {
                url: self.url.clone(),
                reason: e.to_string(),
            });
        }
        persist(&part, &target)?;
        say(
            self.quiet,
            &format!("the VGG16 weights are at {}", target.display()),
        );
        Ok(target)
    }
}

/// Whether `path` reads as torchvision's ImageNet VGG16: a safetensors
/// header whose tensors are VGG16's, by name and shape (1000 classes), in
/// torchvision's or timm's naming. Reads the header only.
fn check_vgg16_weights(path: &Path) -> Result<(), ModelError> {
    crate::checkpoint::check_listing(path, &VggConfig::vgg16(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use finetune_files::testing::env_of;
    use std::path::Path;

    #[test]
    fn the_url_follows_hf_endpoint_unless_overridden() {
        let env = env_of(&[("FINETUNE_CACHE", "/c"), ("HF_HUB_CACHE", "/hub")]);
        let download = Vgg16Download::from_env(None, env).unwrap();
        assert_eq!(download.dir, Path::new("/c/weights"));
        assert_eq!(
            download.url,
            "https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors"
        );
        assert_eq!(download.hf_hub_cache.as_deref(), Some(Path::new("/hub")));

        let mirror = env_of(&[
            ("FINETUNE_CACHE", "/c"),
            ("HF_ENDPOINT", "http://hf-mirror/"),
        ]);
        let download = Vgg16Download::from_env(None, mirror).unwrap();
        assert_eq!(
            download.url,
            "http://hf-mirror/timm/vgg16.tv_in1k/resolve/main/model.safetensors"
        );

        let own = env_of(&[
            ("FINETUNE_CACHE", "/c"),
            ("HF_HUB_CACHE", "/hub"),
            ("FINETUNE_VGG16_URL", "http://m/w.safetensors"),
        ]);
        let download = Vgg16Download::from_env(None, own).unwrap();
        assert_eq!(download.url, "http://m/w.safetensors");
        assert_eq!(
            download.hf_hub_cache, None,
            "an explicit URL must not be shadowed by the HF cache"
        );
    }
}
