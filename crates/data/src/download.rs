//! Getting STL10 onto this machine (feature `download`), as torchvision's
//! `datasets.STL10(root, download=True)` does: the binary archive from
//! Stanford, checked against torchvision's md5, extracted while it streams in,
//! only the files training needs.
//!
//! ```no_run
//! use finetune_data::download::Stl10Download;
//! use finetune_data::{Split, Stl10};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = Stl10Download::from_env(None, |key| std::env::var(key).ok())?.fetch()?;
//! let train = Stl10::open(&root, Split::Train, None)?;
//! # Ok(())
//! # }
//! ```

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

pub use finetune_files::FilesError;
use finetune_files::{
    dir_or_cache, env_var, parse_checksum, say, Algorithm, Archive, KnownSize, Transfer,
};

use crate::{Split, Stl10, STL10_CLASS_NAMES_FILE, STL10_DIR, STL10_FOLDS_FILE, STL10_IMAGE_BYTES};

/// The STL10 binary archive, as torchvision downloads it (`datasets/stl10.py`, `STL10.url`).
pub const STL10_URL: &str = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz";

/// md5 of [`STL10_URL`]'s archive, as torchvision checks it (`datasets/stl10.py`, `STL10.tgz_md5`).
pub const STL10_MD5: &str = "91f7769df0f17e558f3565bffb0c7dfb";

const STL10_HINT: &str = "If this machine is offline or the server is down, point finetune at a mirror \
with `--url URL` or FINETUNE_STL10_URL (and `--md5` / FINETUNE_STL10_MD5 if the file differs), \
or train from an STL10 copy already on disk with `finetune train --data DIR` (DIR holds stl10_binary/).";

/// The files training and evaluation need, inside `stl10_binary/`.
pub fn stl10_files() -> Vec<String> {
    let mut files = Vec::new();
    for split in [Split::Train, Split::Test] {
        files.push(Stl10::images_file(split));
        files.extend(Stl10::labels_file(split));
    }
    files.push(STL10_CLASS_NAMES_FILE.to_string());
    files.push(STL10_FOLDS_FILE.to_string());
    files
}

/// Sizes of the official archive's files: [`STL10_IMAGE_BYTES`] per image,
/// one label byte per image; the text files' sizes are not pinned.
fn official_size(name: &str) -> Option<u64> {
    [Split::Train, Split::Test, Split::Unlabeled]
        .into_iter()
        .find_map(|split| {
            let images = Stl10::official_len(split) as u64;
            if name == Stl10::images_file(split) {
                Some(images * STL10_IMAGE_BYTES as u64)
            } else if Stl10::labels_file(split).as_deref() == Some(name) {
                Some(images)
            } else {
                None
            }
        })
}

/// What [`Stl10Download::fetch`] downloads and where it puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stl10Download {
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
    /// Longest wait for the next bytes before giving up (the download is
    /// kept for resuming).
    pub read_timeout: Duration,
}

impl Stl10Download {
    /// The official archive and md5, extracted into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Stl10Download {
            dir: dir.into(),
            url: STL10_URL.to_string(),
            md5: STL10_MD5.to_string(),
            unlabeled: false,
            quiet: false,
            read_timeout: Transfer::READ_TIMEOUT,
        }
    }

    /// Settings from an environment lookup: `dir`, else `<cache>/stl10` (see
    /// [`finetune_files::cache_dir_from`]); `FINETUNE_STL10_URL` and `FINETUNE_STL10_MD5`
    /// override the official archive and md5.
    pub fn from_env(
        dir: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, FilesError> {
        let mut download = Stl10Download::new(dir_or_cache(dir, &env, "stl10")?);
        if let Some(url) = env_var(&env, "FINETUNE_STL10_URL") {
            download.url = url;
        }
        if let Some(md5) = env_var(&env, "FINETUNE_STL10_MD5") {
            download.md5 = md5;
        }
        Ok(download)
    }

    /// Downloads and extracts STL10; returns the directory holding
    /// `stl10_binary/` ([`Stl10Download::dir`], what [`Stl10::open`] takes).
    /// Does nothing when the files are already there. An interrupted
    /// download resumes on the next call; a bad one leaves nothing behind.
    pub fn fetch(&self) -> Result<PathBuf, FilesError> {
        let md5 = parse_checksum(
            Algorithm::Md5,
            "the STL10 md5 (--md5 or FINETUNE_STL10_MD5)",
            &self.md5,
        )?;
        let out = self.dir.join(STL10_DIR);
        let mut wanted = stl10_files();
        if self.unlabeled {
            wanted.push(Stl10::images_file(Split::Unlabeled));
        }
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let part = self.dir.join("stl10_binary.tar.gz.part");
        let archive = Archive {
            url: &self.url,
            checksum: (Algorithm::Md5, &md5),
            member_dir: STL10_DIR,
            wanted: &wanted,
            out: &out,
            part: &part,
            transfer: Transfer {
                hint: STL10_HINT,
                quiet: self.quiet,
                read_timeout: self.read_timeout,
            },
        };
        // Without a manifest, files of the official archive are known by size.
        let official = (md5 == STL10_MD5).then_some(&official_size as KnownSize<'_>);
        if archive.already_extracted(official) {
            say(
                self.quiet,
                &format!("STL10 is already in {}", out.display()),
            );
            return Ok(self.dir.clone());
        }
        fs::create_dir_all(&out).map_err(FilesError::io("create", &out))?;
        say(
            self.quiet,
            &format!("fetching STL10 from {} into {}", self.url, out.display()),
        );
        if let Err(error) = archive.fetch() {
            // Leave no empty stl10_binary/ that looks like a data set (fails,
            // as it should, when the directory holds anything).
            let _ = fs::remove_dir(&out);
            return Err(error);
        }
        say(self.quiet, &format!("STL10 is in {}", out.display()));
        Ok(self.dir.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finetune_files::testing::env_of;
    use std::path::Path;

    #[test]
    fn official_sizes_follow_the_byte_layout() {
        assert_eq!(official_size("train_X.bin"), Some(138_240_000));
        assert_eq!(official_size("train_y.bin"), Some(5_000));
        assert_eq!(official_size("test_X.bin"), Some(221_184_000));
        assert_eq!(official_size("unlabeled_X.bin"), Some(2_764_800_000));
        assert_eq!(official_size("class_names.txt"), None);
        assert_eq!(
            stl10_files(),
            [
                "train_X.bin",
                "train_y.bin",
                "test_X.bin",
                "test_y.bin",
                "class_names.txt",
                "fold_indices.txt"
            ]
        );
    }

    #[test]
    fn env_overrides_defaults_and_dir_defaults_to_the_cache() {
        let plain = Stl10Download::from_env(None, env_of(&[("FINETUNE_CACHE", "/c")])).unwrap();
        assert_eq!(plain, Stl10Download::new("/c/stl10"));
        let env = env_of(&[
            ("FINETUNE_CACHE", "/c"),
            ("FINETUNE_STL10_URL", "http://mirror/s.tgz"),
            ("FINETUNE_STL10_MD5", "00000000000000000000000000000000"),
        ]);
        let download = Stl10Download::from_env(Some("/d".into()), env).unwrap();
        assert_eq!(download.dir, Path::new("/d"));
        assert_eq!(download.url, "http://mirror/s.tgz");
        assert_eq!(download.md5, "00000000000000000000000000000000");
    }
}
