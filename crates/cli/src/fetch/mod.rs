//! Getting STL10 and the pretrained VGG16 weights onto this machine.
//!
//! [`stl10`] downloads the STL10 binary archive, checks its md5 and extracts
//! only the files training needs while the bytes stream in; [`vgg16`]
//! downloads torchvision's ImageNet VGG16 weights as safetensors from Hugging
//! Face (or reuses a Hugging Face cache), checking the sha256 the server
//! states. Both keep an interrupted download as `NAME.part` and resume it with
//! an HTTP Range request, and never leave a file that failed its checksum.
//!
//! Configuration is passed explicitly ([`Stl10Fetch`], [`WeightsFetch`]);
//! `from_env` builds it from an environment lookup so tests need not touch
//! the process environment.

mod cache_dir;
mod download;
mod error;
mod stl10;
mod weights;

use std::path::PathBuf;

pub use cache_dir::{cache_dir_from, default_cache_dir, hf_hub_cache_from};
pub use error::FetchError;
pub use stl10::{stl10, STL10_FILES, STL10_UNLABELED};
pub use weights::{find_in_hf_cache, vgg16, VGG16_FILE_NAME};

/// The STL10 binary archive, as torchvision downloads it (`datasets/stl10.py`).
pub const STL10_URL: &str = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz";

/// md5 of [`STL10_URL`]'s archive, as torchvision checks it (`datasets/stl10.py`).
pub const STL10_MD5: &str = "91f7769df0f17e558f3565bffb0c7dfb";

/// The Hugging Face repository holding torchvision's ImageNet VGG16 weights as safetensors.
pub const VGG16_REPO: &str = "timm/vgg16.tv_in1k";

/// The weights file inside [`VGG16_REPO`].
pub const VGG16_REPO_FILE: &str = "model.safetensors";

/// Where Hugging Face is reached when `HF_ENDPOINT` is not set.
pub const HF_DEFAULT_ENDPOINT: &str = "https://huggingface.co";

const STL10_HINT: &str = "If this machine is offline or the server is down, point finetune at a mirror \
with `--url URL` or FINETUNE_STL10_URL (and `--md5` / FINETUNE_STL10_MD5 if the file differs), \
or train from an STL10 copy already on disk with `finetune train --data DIR` (DIR holds stl10_binary/).";

const VGG16_HINT: &str =
    "If this machine is offline or the server is down, point finetune at a mirror \
with `--url URL` or FINETUNE_VGG16_URL (or HF_ENDPOINT for a Hugging Face mirror), \
or train from a weights file already on disk with `finetune train --weights FILE`.";

/// What [`stl10`] downloads and where it puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stl10Fetch {
    /// The directory that ends up holding `stl10_binary/`.
    pub dir: PathBuf,
    /// Where the `stl10_binary.tar.gz` archive is downloaded from.
    pub url: String,
    /// The archive's md5 (32 hex digits).
    pub md5: String,
    /// Also extract `unlabeled_X.bin` (2.7 GB, not used by the recipe).
    pub unlabeled: bool,
    /// Print nothing (no progress bar, no notes).
    pub quiet: bool,
}

impl Stl10Fetch {
    /// The official archive and md5, extracted into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Stl10Fetch {
            dir: dir.into(),
            url: STL10_URL.to_string(),
            md5: STL10_MD5.to_string(),
            unlabeled: false,
            quiet: false,
        }
    }

    /// Settings from an environment lookup: `dir`, else `<cache>/stl10` (see
    /// [`cache_dir_from`]); `FINETUNE_STL10_URL` and `FINETUNE_STL10_MD5`
    /// override the official archive and md5.
    pub fn from_env(
        dir: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, FetchError> {
        let dir = match dir {
            Some(dir) => dir,
            None => cache_dir_from(&env)?.join("stl10"),
        };
        let mut fetch = Stl10Fetch::new(dir);
        if let Some(url) = cache_dir::var(&env, "FINETUNE_STL10_URL") {
            fetch.url = url;
        }
        if let Some(md5) = cache_dir::var(&env, "FINETUNE_STL10_MD5") {
            fetch.md5 = md5;
        }
        Ok(fetch)
    }
}

/// What [`vgg16`] downloads and where it puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsFetch {
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
}

impl WeightsFetch {
    /// The Hugging Face weights from [`HF_DEFAULT_ENDPOINT`] into `dir`, no cache reuse.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WeightsFetch {
            dir: dir.into(),
            url: hf_url(HF_DEFAULT_ENDPOINT),
            sha256: None,
            hf_hub_cache: None,
            quiet: false,
        }
    }

    /// Settings from an environment lookup: `dir`, else `<cache>/weights`;
    /// `FINETUNE_VGG16_URL` overrides the URL, else it is built on
    /// `HF_ENDPOINT`; without `FINETUNE_VGG16_URL` an existing Hugging Face
    /// cache (see [`hf_hub_cache_from`]) is reused.
    pub fn from_env(
        dir: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, FetchError> {
        let dir = match dir {
            Some(dir) => dir,
            None => cache_dir_from(&env)?.join("weights"),
        };
        let mut fetch = WeightsFetch::new(dir);
        match cache_dir::var(&env, "FINETUNE_VGG16_URL") {
            Some(url) => fetch.url = url,
            None => {
                if let Some(endpoint) = cache_dir::var(&env, "HF_ENDPOINT") {
                    fetch.url = hf_url(&endpoint);
                }
                fetch.hf_hub_cache = hf_hub_cache_from(&env);
            }
        }
        Ok(fetch)
    }
}

/// The `resolve` URL of [`VGG16_REPO_FILE`] on a Hugging Face endpoint.
pub fn hf_url(endpoint: &str) -> String {
    format!(
        "{}/{VGG16_REPO}/resolve/main/{VGG16_REPO_FILE}",
        endpoint.trim_end_matches('/')
    )
}

/// Prints a note for the user on stderr unless asked to be quiet.
fn say(quiet: bool, message: &str) {
    if !quiet {
        eprintln!("{message}");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    /// A fake environment for the `from_env`-style functions (tests never
    /// touch the process environment, so they cannot race).
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn stl10_env_overrides_defaults_and_dir_defaults_to_cache() {
        let plain = Stl10Fetch::from_env(None, env_of(&[("FINETUNE_CACHE", "/c")])).unwrap();
        assert_eq!(plain, Stl10Fetch::new("/c/stl10"));
        let env = env_of(&[
            ("FINETUNE_CACHE", "/c"),
            ("FINETUNE_STL10_URL", "http://mirror/s.tgz"),
            ("FINETUNE_STL10_MD5", "00000000000000000000000000000000"),
        ]);
        let fetch = Stl10Fetch::from_env(Some("/d".into()), env).unwrap();
        assert_eq!(fetch.dir, Path::new("/d"));
        assert_eq!(fetch.url, "http://mirror/s.tgz");
        assert_eq!(fetch.md5, "00000000000000000000000000000000");
    }

    #[test]
    fn weights_url_follows_hf_endpoint_unless_overridden() {
        let env = env_of(&[("FINETUNE_CACHE", "/c"), ("HF_HUB_CACHE", "/hub")]);
        let fetch = WeightsFetch::from_env(None, env).unwrap();
        assert_eq!(fetch.dir, Path::new("/c/weights"));
        assert_eq!(
            fetch.url,
            "https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors"
        );
        assert_eq!(fetch.hf_hub_cache.as_deref(), Some(Path::new("/hub")));

        let mirror = env_of(&[
            ("FINETUNE_CACHE", "/c"),
            ("HF_ENDPOINT", "http://hf-mirror/"),
        ]);
        let fetch = WeightsFetch::from_env(None, mirror).unwrap();
        assert_eq!(
            fetch.url,
            "http://hf-mirror/timm/vgg16.tv_in1k/resolve/main/model.safetensors"
        );

        let own = env_of(&[
            ("FINETUNE_CACHE", "/c"),
            ("HF_HUB_CACHE", "/hub"),
            ("FINETUNE_VGG16_URL", "http://m/w.safetensors"),
        ]);
        let fetch = WeightsFetch::from_env(None, own).unwrap();
        assert_eq!(fetch.url, "http://m/w.safetensors");
        assert_eq!(
            fetch.hf_hub_cache, None,
            "an explicit URL must not be shadowed by the HF cache"
        );
    }
}
