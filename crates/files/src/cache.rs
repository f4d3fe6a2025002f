//! Where downloads go by default, and where Hugging Face keeps its cache
//! and its files.
//!
//! Both are derived from environment variables read through a lookup closure,
//! so tests can pass their own environment instead of mutating the process's.

use std::fs;
use std::path::{Path, PathBuf};

use crate::FilesError;

/// Reads a variable through `env`, treating an empty value as unset.
pub fn env_var(env: &impl Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    env(key).filter(|value| !value.is_empty())
}

fn home(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env_var(env, "HOME")
        .or_else(|| env_var(env, "USERPROFILE"))
        .map(PathBuf::from)
}

/// The finetune cache directory as `env` defines it.
///
/// `$FINETUNE_CACHE` if set; otherwise the platform's convention:
/// `$XDG_CACHE_HOME/finetune` or `~/.cache/finetune` on Linux and other
/// Unixes, `~/Library/Caches/finetune` on macOS, `%LOCALAPPDATA%\finetune` on
/// Windows.
pub fn cache_dir_from(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, FilesError> {
    if let Some(dir) = env_var(&env, "FINETUNE_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    let base = if cfg!(target_os = "macos") {
        home(&env).map(|home| home.join("Library").join("Caches"))
    } else if cfg!(windows) {
        env_var(&env, "LOCALAPPDATA").map(PathBuf::from)
    } else {
        // The XDG spec says relative values are invalid and must be ignored.
        env_var(&env, "XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| home(&env).map(|home| home.join(".cache")))
    };
    base.map(|base| base.join("finetune"))
        .ok_or(FilesError::NoCacheDir)
}

/// `dir` when given, else `<cache>/<name>` in the cache directory `env`
/// defines (see [`cache_dir_from`]): where a download goes.
pub fn dir_or_cache(
    dir: Option<PathBuf>,
    env: impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<PathBuf, FilesError> {
    match dir {
        Some(dir) => Ok(dir),
        None => Ok(cache_dir_from(env)?.join(name)),
    }
}

/// The finetune cache directory of this process's environment (see [`cache_dir_from`]).
pub fn default_cache_dir() -> Result<PathBuf, FilesError> {
    cache_dir_from(|key| std::env::var(key).ok())
}

/// The Hugging Face hub cache as `env` defines it, the way `huggingface_hub`
/// resolves it (`constants.py`): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn hf_hub_cache_from(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = env_var(&env, "HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = env_var(&env, "HF_HOME") {
        return Some(PathBuf::from(dir).join("hub"));
    }
    let cache = env_var(&env, "XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| home(&env).map(|home| home.join(".cache")))?;
    Some(cache.join("huggingface").join("hub"))
}

/// The `resolve` URL of `file` in the Hugging Face model repository `repo`
/// (`owner/name`) on `endpoint` (e.g. `https://huggingface.co`), main branch.
pub fn hf_url(endpoint: &str, repo: &str, file: &str) -> String {
    format!(
        "{}/{repo}/resolve/main/{file}",
        endpoint.trim_end_matches('/')
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn finetune_cache_wins_over_everything() {
        let env = env_of(&[
            ("FINETUNE_CACHE", "/x/ft"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
            ("LOCALAPPDATA", "/lad"),
        ]);
        assert_eq!(cache_dir_from(env).unwrap(), PathBuf::from("/x/ft"));
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn linux_uses_xdg_then_home() {
        let xdg = env_of(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")]);
        assert_eq!(cache_dir_from(xdg).unwrap(), PathBuf::from("/xdg/finetune"));
        let relative_xdg = env_of(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")]);
        assert_eq!(
            cache_dir_from(relative_xdg).unwrap(),
            PathBuf::from("/home/u/.cache/finetune")
        );
        let empty_ft = env_of(&[("FINETUNE_CACHE", ""), ("HOME", "/home/u")]);
        assert_eq!(
            cache_dir_from(empty_ft).unwrap(),
            PathBuf::from("/home/u/.cache/finetune")
        );
    }

    #[test]
    fn no_home_is_a_clear_error() {
        let err = cache_dir_from(env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("FINETUNE_CACHE"), "{err}");
    }

    #[test]
    fn hf_cache_follows_huggingface_hub_order() {
        let all = env_of(&[
            ("HF_HUB_CACHE", "/hubcache"),
            ("HF_HOME", "/hfhome"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(hf_hub_cache_from(all), Some(PathBuf::from("/hubcache")));
        let home = env_of(&[("HF_HOME", "/hfhome"), ("HOME", "/home/u")]);
        assert_eq!(hf_hub_cache_from(home), Some(PathBuf::from("/hfhome/hub")));
        let plain = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            hf_hub_cache_from(plain),
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
        assert_eq!(hf_hub_cache_from(env_of(&[])), None);
    }
}
