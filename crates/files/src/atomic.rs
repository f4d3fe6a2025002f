//! Crash-safe files: each is written to a temporary file beside its final
//! place, flushed to disk, renamed over the old one, and the directory
//! flushed too, so a kill or a power cut at any moment leaves either the old
//! file or the new one, never half of one. The files `finetune` writes
//! (weights, checkpoints, run records, pictures) go through here.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::FilesError;

/// Writes `path` atomically: `write` fills `<path>.tmp` in the same directory,
/// which is then fsynced, renamed over `path`, and the directory fsynced.
///
/// If `write` fails (or the process dies) the previous `path` is untouched; a
/// stale `.tmp` from an earlier crash is simply overwritten.
pub fn write_atomic<E: From<FilesError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = tmp_path(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Err(e) = write(&tmp) {
        // Best effort: a failed write must not leave a half file lying around.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let file = File::open(&tmp).map_err(FilesError::io("open", &tmp))?;
    file.sync_all().map_err(FilesError::io("flush", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(FilesError::io("rename into place", path))?;
    sync_dir(&dir)?;
    Ok(())
}

/// Writes `bytes` to `path` through [`write_atomic`].
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    write_atomic(path, |tmp| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(FilesError::io("create", tmp))?;
        f.write_all(bytes).map_err(FilesError::io("write", tmp))
    })
}

/// Makes `dst` a copy of the finished file `src`, atomically: a hard link
/// where the file system allows (no bytes written: a 528 MB VGG16 checkpoint
/// costs nothing to keep twice), else a copy; then renamed over `dst`.
pub fn link_atomic(src: &Path, dst: &Path) -> Result<(), FilesError> {
    write_atomic(dst, |tmp| {
        if fs::hard_link(src, tmp).is_err() {
            fs::copy(src, tmp).map_err(FilesError::io("copy", src))?;
        }
        Ok(())
    })
}

/// `<path>.tmp`, next to `path` so the rename never crosses file systems.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
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
        assert!(!dir.path().join("x.json.tmp").exists());
    }

    #[test]
    fn a_stale_tmp_from_a_crash_is_overwritten_and_links_share_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        fs::write(dir.path().join("w.bin.tmp"), b"half a fi").unwrap();
        write_file_atomic(&path, b"whole").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        let copy = dir.path().join("copy.bin");
        link_atomic(&path, &copy).unwrap();
        assert_eq!(fs::read(&copy).unwrap(), b"whole");
        assert!(!dir.path().join("copy.bin.tmp").exists());
    }
}
