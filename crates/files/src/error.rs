//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while writing a file or downloading one.
///
/// Each message names the URL or file concerned and, where the user can act,
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The server could not be reached at all (offline, DNS, refused, timeout).
    #[cfg(feature = "download")]
    #[error("could not reach {url}: {source}\n{hint}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What the HTTP client reported.
        #[source]
        source: Box<ureq::Error>,
        /// How to use a mirror or local files instead (the caller's words).
        hint: &'static str,
    },

    /// The server answered with a status that is not a success.
    #[error("{url} answered HTTP {status}\n{hint}")]
    HttpStatus {
        /// The URL that answered.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// How to use a mirror or local files instead (the caller's words).
        hint: &'static str,
    },

    /// A redirect without a usable `Location`, or too many redirects.
    #[error("{url}: {reason}")]
    BadRedirect {
        /// The URL that redirected.
        url: String,
        /// What was wrong with the redirect.
        reason: String,
    },

    /// The connection broke while the body was being received; the bytes so
    /// far are kept and the next run resumes from them.
    #[error(
        "download of {url} was interrupted: {source}\n\
         the {received} bytes received so far are kept in {}; run the same command again to resume",
        part.display()
    )]
    Interrupted {
        /// The URL being downloaded.
        url: String,
        /// The partial file kept for resuming.
        part: PathBuf,
        /// How many bytes the partial file holds.
        received: u64,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// The downloaded bytes do not have the expected checksum; the file was deleted.
    #[error(
        "{algorithm} checksum mismatch for {url}: expected {expected}, found {found}; \
         the download was deleted (if you use a mirror of a different file, pass its checksum)"
    )]
    ChecksumMismatch {
        /// The URL downloaded.
        url: String,
        /// `md5` or `sha256`.
        algorithm: &'static str,
        /// The checksum that was expected (lower-case hex).
        expected: String,
        /// The checksum of the bytes received (lower-case hex).
        found: String,
    },

    /// A checksum given by the user is not hex of the right length.
    #[error("{what} must be {len} hexadecimal digits, got {value:?}")]
    BadChecksum {
        /// Which setting held the value (flag or environment variable).
        what: String,
        /// The expected number of hex digits.
        len: usize,
        /// The value given.
        value: String,
    },

    /// An archive entry would be written outside the target directory, or is a link.
    #[error(
        "refusing to extract the archive from {url}: entry {entry:?} {reason}; nothing was extracted"
    )]
    UnsafeEntry {
        /// The URL of the archive.
        url: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// The archive is not a readable tar.gz (after its checksum matched).
    #[error("the archive from {url} is not a readable tar.gz: {reason}")]
    CorruptArchive {
        /// The URL of the archive.
        url: String,
        /// What the decoder reported, without the raw bytes it may quote.
        reason: String,
    },

    /// The archive lacks files the dataset needs.
    #[error("the archive from {url} lacks {}", missing.join(", "))]
    MissingEntries {
        /// The URL of the archive.
        url: String,
        /// The archive paths that were not found.
        missing: Vec<String>,
    },

    /// A local file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `rename`, ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A symlink where a file is to be written: never followed.
    #[error("{} is a symbolic link: refusing to write through it (remove it, or choose another directory)", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },

    /// Another process holds the directory's lock.
    #[error("{} is in use by another finetune{}: wait for it to finish, or stop it", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// The owner's pid, when it could be read.
        pid: Option<u32>,
    },

    /// No cache directory could be derived from the environment.
    #[error(
        "could not find a cache directory (no FINETUNE_CACHE, XDG_CACHE_HOME or HOME); \
         set FINETUNE_CACHE or pass --dir"
    )]
    NoCacheDir,
}

impl FilesError {
    /// Wraps an I/O error with the action and the path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| FilesError::Io {
            action,
            path,
            source,
        }
    }
}
