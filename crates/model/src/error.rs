//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong building, running, loading or saving a VGG.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (device, shape or dtype problem inside candle).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Writing a file atomically failed.
    #[error(transparent)]
    File(#[from] finetune_files::FilesError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file starts neither like a safetensors file nor like a zip archive.
    #[error("{path}: neither a safetensors file nor a PyTorch zip checkpoint (.pth); first bytes {first_bytes:02x?}")]
    UnrecognisedFormat {
        /// The file.
        path: PathBuf,
        /// Its first bytes, to help recognise what it is.
        first_bytes: Vec<u8>,
    },
    /// The file looked like safetensors or `.pth` but could not be parsed.
    #[error("{path}: not a readable {format} file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// "safetensors" or "PyTorch .pth".
        format: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// The checkpoint's tensors do not fit the configured network; every problem is listed.
    #[error("{path}: checkpoint does not fit {config}: {} problem(s):\n{}", mismatches.len(), MismatchList(mismatches))]
    Mismatch {
        /// The file (or `<tensors>` when built from memory).
        path: PathBuf,
        /// The configuration it was checked against, in words.
        config: String,
        /// Every problem found.
        mismatches: Vec<Mismatch>,
    },
    /// An input tensor the network cannot take, refused before any compute.
    #[error("bad input: {0}")]
    BadInput(String),
    /// A device that cannot be used.
    #[error("device `{spec}`: {message}")]
    Device {
        /// The device's name as given.
        spec: String,
        /// Why it cannot be used, and what to do.
        message: String,
    },
    /// A downloaded file that is not torchvision's VGG16 weights; it was deleted.
    #[error("the file from {url} is not VGG16 weights ({reason}); it was deleted (a mirror serving another file?)")]
    NotVgg16 {
        /// Where it came from.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Weights holding NaN or an infinity.
    #[error("{path}: tensors {tensors} hold NaN or infinite values: these weights are broken (a diverged run, a bad conversion); refusing to load them")]
    NonFinite {
        /// The weights file.
        path: PathBuf,
        /// The tensors at fault, comma-separated.
        tensors: String,
    },
    /// A configuration that describes no valid network.
    #[error("invalid VGG configuration: {0}")]
    InvalidConfig(String),
    /// A setting this machine cannot run.
    #[error("{0}")]
    Unsupported(String),
}

/// One way in which a checkpoint differs from what the network expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    /// The network needs this tensor and the file lacks it.
    Missing {
        /// torchvision name.
        name: String,
        /// Shape the network expects.
        expected: Vec<usize>,
    },
    /// The file has a tensor the network has no place for.
    Unexpected {
        /// Name as found in the file.
        name: String,
        /// Its shape.
        found: Vec<usize>,
    },
    /// Right name, wrong shape.
    Shape {
        /// Name as found in the file.
        name: String,
        /// Shape the network expects (in the file's naming scheme).
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// Right name, a dtype that cannot be converted.
    DType {
        /// Name as found in the file.
        name: String,
        /// What would be accepted.
        expected: String,
        /// The dtype in the file.
        found: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name, expected } => {
                write!(
                    f,
                    "missing `{name}`: expected shape {expected:?}, not in file"
                )
            }
            Mismatch::Unexpected { name, found } => {
                write!(
                    f,
                    "unexpected `{name}` (shape {found:?}): the network has no such tensor"
                )
            }
            Mismatch::Shape {
                name,
                expected,
                found,
            } => {
                write!(f, "`{name}`: expected shape {expected:?}, found {found:?}")
            }
            Mismatch::DType {
                name,
                expected,
                found,
            } => {
                write!(f, "`{name}`: expected dtype {expected}, found {found}")
            }
        }
    }
}

struct MismatchList<'a>(&'a [Mismatch]);

impl fmt::Display for MismatchList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {m}")?;
        }
        Ok(())
    }
}
