//! Crash-safe files: each is written to a temporary file beside its final
//! place, flushed to disk, renamed over the old one, and the directory
//! flushed too, so a kill or a power cut at any moment leaves either the old
//! file or the new one, never half of one. The files `finetune` writes
//! (weights, checkpoints, run records, pictures, downloads) go through here.
//!
//! The temporary file has an unpredictable name (`.NAME.<16 hex>.tmp`) and is
//! created exclusively, so nothing planted at a temporary path (a symlink
//! to somewhere else) is ever followed; [`remove_leftovers`] clears what a
//! killed process left behind.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::FilesError;

/// Writes `path` atomically: `write` creates and fills a fresh temporary
/// path in the same directory (it does not exist yet: create it with
/// `create_new`), which is then given the permissions a new file gets here
/// (the process's umask), fsynced, renamed over `path`, and the directory
/// fsynced.
///
/// If `write` fails (or the process dies) the previous `path` is untouched
/// and the temporary file is removed (or, after a kill, left for
/// [`remove_leftovers`]).
pub fn write_atomic<E: From<FilesError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = parent_of(path);
    let tmp = fresh_tmp_path(path);
    if let Err(e) = write(&tmp) {
        // Best effort: a failed write must not leave a half file lying around.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = finish(&tmp, path, &dir) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

/// Gives `tmp` the usual permissions, flushes it, renames it to `path` and
/// flushes the directory.
fn finish(tmp: &Path, path: &Path, dir: &Path) -> Result<(), FilesError> {
    set_new_file_permissions(tmp, dir)?;
    let file = File::open(tmp).map_err(FilesError::io("open", tmp))?;
    file.sync_all().map_err(FilesError::io("flush", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(FilesError::io("rename into place", path))?;
    sync_dir(dir)
}

/// Writes `bytes` to `path` through [`write_atomic`].
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    write_atomic(path, |tmp| {
        let mut f = create_new(tmp)?;
        f.write_all(bytes).map_err(FilesError::io("write", tmp))
    })
}

/// Creates `path`, which must not exist yet (a symlink there is not followed:
/// the call fails).
pub fn create_new(path: &Path) -> Result<File, FilesError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(FilesError::io("create", path))
}

/// Makes `dst` a copy of the finished file `src`, atomically: a hard link
/// where the file system allows (no bytes written: a 528 MB VGG16 checkpoint
/// costs nothing to keep twice), else a copy; then renamed over `dst`.
pub fn link_atomic(src: &Path, dst: &Path) -> Result<(), FilesError> {
    write_atomic(dst, |tmp| {
        if fs::hard_link(src, tmp).is_err() {
            let mut from = File::open(src).map_err(FilesError::io("open", src))?;
            let mut to = create_new(tmp)?;
            std::io::copy(&mut from, &mut to).map_err(FilesError::io("copy", src))?;
        }
        Ok(())
    })
}

/// Moves the finished file `src` (e.g. a verified download) to `dst`,
/// atomically and durably: flushed, renamed, directory flushed.
pub fn persist(src: &Path, dst: &Path) -> Result<(), FilesError> {
    finish(src, dst, &parent_of(dst))
}

/// Removes the temporary files a killed writer left in `dir`: ours
/// (`.NAME.<16 hex>.tmp`) and those of the `tempfile` crate that libraries
/// write through (`.tmpXXXXXX`, e.g. safetensors'). Returns what it removed.
pub fn remove_leftovers(dir: &Path) -> Result<Vec<PathBuf>, FilesError> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).map_err(FilesError::io("list", dir))? {
        let entry = entry.map_err(FilesError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let is_file = entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink());
        if is_file && is_leftover(name) {
            let path = entry.path();
            fs::remove_file(&path).map_err(FilesError::io("remove", &path))?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Whether `name` is a temporary file of [`write_atomic`] or of `tempfile`.
fn is_leftover(name: &str) -> bool {
    let ours = name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(_, hex)| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let tempfile = name
        .strip_prefix(".tmp")
        .is_some_and(|rest| rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    ours || tempfile
}

/// `.NAME.<16 hex>.tmp` beside `path`: unpredictable, so no one can plant a
/// file (or a symlink) there in advance; next to `path` so the rename never
/// crosses file systems.
pub(crate) fn fresh_tmp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{:016x}.tmp", hasher.finish()))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Gives `path` the mode a file created here normally gets (0666 less the
/// umask): libraries that write through `tempfile` create theirs 0600.
#[cfg(unix)]
fn set_new_file_permissions(path: &Path, dir: &Path) -> Result<(), FilesError> {
    use std::os::unix::fs::PermissionsExt;
    static MODE: OnceLock<u32> = OnceLock::new();
    let mode = match MODE.get() {
        Some(mode) => *mode,
        None => {
            // The umask cannot be read without changing it; a new file shows it.
            let probe = fresh_tmp_path(&dir.join("probe"));
            let file = create_new(&probe)?;
            let mode = file.metadata().map_err(FilesError::io("inspect", &probe))?;
            let _ = fs::remove_file(&probe);
            *MODE.get_or_init(|| mode.permissions().mode() & 0o777)
        }
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(FilesError::io("set the permissions of", path))
}

#[cfg(not(unix))]
fn set_new_file_permissions(_path: &Path, _dir: &Path) -> Result<(), FilesError> {
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), FilesError> {
    // The rename is only durable once the directory entry is on disk.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FilesError::io("flush", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), FilesError> {
    // Directories cannot be opened for fsync on Windows; rename is the best we get.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_file_atomic(&path, b"old").unwrap();
        let err = write_atomic(&path, |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(FilesError::io("write", tmp)(std::io::Error::other(
                "simulated failure",
            )))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["x.json"]);
    }

    #[test]
    fn links_share_the_bytes_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        write_file_atomic(&path, b"whole").unwrap();
        let copy = dir.path().join("copy.bin");
        link_atomic(&path, &copy).unwrap();
        assert_eq!(fs::read(&copy).unwrap(), b"whole");
        assert_eq!(names(dir.path()), ["copy.bin", "w.bin"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_planted_at_the_old_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, b"keep me").unwrap();
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        std::os::unix::fs::symlink(&outside, run.join("state.json.tmp")).unwrap();
        write_file_atomic(&run.join("state.json"), b"{}").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep me");
        assert_eq!(fs::read(run.join("state.json")).unwrap(), b"{}");
    }

    #[cfg(unix)]
    #[test]
    fn files_get_the_umask_permissions_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"x").unwrap();
        let path = dir.path().join("w.bin");
        // As safetensors does: a 0600 file renamed onto the temporary path.
        write_atomic(&path, |tmp| {
            let file = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
            fs::write(file.path(), b"tensor").unwrap();
            file.persist(tmp).unwrap();
            Ok::<(), FilesError>(())
        })
        .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&plain));
    }

    #[test]
    fn leftovers_of_a_killed_writer_are_recognised_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".last.safetensors.0123456789abcdef.tmp",
            ".tmpA1b2C3",
            "last.safetensors",
            ".tmp",
            "notes.tmp",
            ".x.123.tmp",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let removed = remove_leftovers(dir.path()).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert_eq!(
            names(dir.path()),
            [".tmp", ".x.123.tmp", "last.safetensors", "notes.tmp"]
        );
    }
}
