//! The pretrained VGG16 weights: reuse a Hugging Face cache, or download and
//! check the sha256 the server states.

use std::fs;
use std::path::{Path, PathBuf};

use super::download::{parse_checksum, Algorithm, Download};
use super::{say, FetchError, WeightsFetch, VGG16_HINT, VGG16_REPO, VGG16_REPO_FILE};

/// The name the weights get in [`WeightsFetch::dir`].
pub const VGG16_FILE_NAME: &str = "vgg16.tv_in1k.safetensors";

/// Gets the VGG16 weights as `fetch` says; returns the path of the
/// safetensors file (in `fetch.dir`, or in the Hugging Face cache when a copy
/// is there). Does nothing if the file is already in `fetch.dir`.
pub fn vgg16(fetch: &WeightsFetch) -> Result<PathBuf, FetchError> {
    let expected = fetch
        .sha256
        .as_deref()
        .map(|value| parse_checksum(Algorithm::Sha256, "the VGG16 sha256 (--sha256)", value))
        .transpose()?;
    let target = fetch.dir.join(VGG16_FILE_NAME);
    if target.is_file() {
        say(
            fetch.quiet,
            &format!("the VGG16 weights are already at {}", target.display()),
        );
        return Ok(target);
    }
    if let Some(found) = fetch
        .hf_hub_cache
        .as_deref()
        .and_then(|cache| find_in_hf_cache(cache, VGG16_REPO, VGG16_REPO_FILE))
    {
        say(
            fetch.quiet,
            &format!(
                "using the VGG16 weights from the Hugging Face cache: {}",
                found.display()
            ),
        );
        return Ok(found);
    }
    fs::create_dir_all(&fetch.dir).map_err(FetchError::io("create", &fetch.dir))?;
    let part = fetch.dir.join(format!("{VGG16_FILE_NAME}.part"));
    say(
        fetch.quiet,
        &format!(
            "fetching the VGG16 weights from {} into {}",
            fetch.url,
            target.display()
        ),
    );
    let finished = Download::start(
        &fetch.url,
        &part,
        Algorithm::Sha256,
        VGG16_HINT,
        fetch.quiet,
    )?
    .finish()?;
    match expected.or(finished.server_sha256) {
        Some(expected) if expected != finished.digest => {
            // Never leave a file that failed its checksum where it could be used.
            let _ = fs::remove_file(&part);
            return Err(FetchError::ChecksumMismatch {
                url: fetch.url.clone(),
                algorithm: Algorithm::Sha256.name(),
                expected,
                found: finished.digest,
            });
        }
        Some(_) => {}
        None => say(
            fetch.quiet,
            &format!(
                "note: {} states no sha256, so the file could not be verified (sha256 {})",
                fetch.url, finished.digest
            ),
        ),
    }
    fs::rename(&part, &target).map_err(FetchError::io("rename into place", &target))?;
    say(
        fetch.quiet,
        &format!("the VGG16 weights are at {}", target.display()),
    );
    Ok(target)
}

/// A file of a Hugging Face model repository in a hub cache, laid out as
/// `huggingface_hub` does: `models--OWNER--NAME/snapshots/REVISION/FILE`,
/// preferring the revision `refs/main` names.
pub fn find_in_hf_cache(hub_cache: &Path, repo: &str, file: &str) -> Option<PathBuf> {
    let repo_dir = hub_cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshots = repo_dir.join("snapshots");
    if let Ok(revision) = fs::read_to_string(repo_dir.join("refs").join("main")) {
        let candidate = snapshots.join(revision.trim()).join(file);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let mut candidates: Vec<PathBuf> = fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join(file))
        // is_file follows the snapshot's symlink into blobs/, so a dangling link does not count.
        .filter(|path| path.is_file())
        .collect();
    candidates.sort();
    candidates.into_iter().next()
}
