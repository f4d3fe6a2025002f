//! One process at a time in a directory: an exclusive advisory lock on a
//! `.lock` file in it, holding the owner's pid so that the one refused can be
//! told who has it. The operating system releases the lock when the owner
//! exits, however it exits (a kill -9 included), so a stale lock never blocks.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::FilesError;

/// The lock file's name inside the locked directory.
pub const LOCK_FILE: &str = ".lock";

/// A held lock on a directory; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    _file: File,
}

impl DirLock {
    /// Locks `dir` (created if missing) for this process, or fails at once
    /// with [`FilesError::Locked`] naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, FilesError> {
        std::fs::create_dir_all(dir).map_err(FilesError::io("create", dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = open_no_follow(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(FilesError::Locked {
                    dir: dir.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(FilesError::io("lock", &path)(e)),
        }
        // Ours now: say who we are, for the next one refused.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(FilesError::io("write", &path))?;
        Ok(DirLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Opens (or creates) the lock file, refusing to follow a symlink planted there.
fn open_no_follow(path: &Path) -> Result<File, FilesError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).map_err(FilesError::io("open", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_naming_the_first_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = DirLock::acquire(&run).unwrap();
        assert_eq!(first.dir(), run);
        let err = DirLock::acquire(&run).unwrap_err();
        assert!(
            matches!(err, FilesError::Locked { pid: Some(pid), .. } if pid == std::process::id()),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("run") && message.contains(&std::process::id().to_string()));
        drop(first);
        DirLock::acquire(&run).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::symlink(&outside, run.join(LOCK_FILE)).unwrap();
        assert!(DirLock::acquire(&run).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
    }
}
