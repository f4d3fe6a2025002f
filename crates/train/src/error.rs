//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while training, checkpointing, logging or plotting.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Writing a file atomically failed.
    #[error(transparent)]
    File(#[from] finetune_files::FilesError),
    /// The model refused an input or a file.
    #[error(transparent)]
    Model(#[from] finetune_model::ModelError),
    /// The data pipeline failed (a file, an image, the loader).
    #[error(transparent)]
    Data(#[from] finetune_data::DataError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A JSON file could not be written or parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parser's error (it names line and column).
        source: serde_json::Error,
    },
    /// A safetensors file could not be written or parsed.
    #[error("{path}: invalid safetensors: {message}")]
    Safetensors {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A checkpoint file parsed but does not fit the run being resumed.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file involved.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// Optimiser state does not match the optimiser's parameters.
    #[error("optimizer state key `{key}`: {message}")]
    OptimizerState {
        /// The named tensor (or parameter) at fault.
        key: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A resumed run's weights or data differ from those it started from.
    #[error("{what} {path} changed since the run started ({record}); resuming would mix two runs: put back the original or start a new run")]
    InputsChanged {
        /// What changed, e.g. "the weights file".
        what: String,
        /// The file or directory as given now.
        path: PathBuf,
        /// Where the run recorded its inputs, and the hashes then and now.
        record: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite: training cannot continue meaningfully.
    #[error("loss is {value} at epoch {epoch}, step {step}: stopping; the last good checkpoint is kept (try a lower learning rate)")]
    NonFiniteLoss {
        /// Zero-based epoch.
        epoch: usize,
        /// Zero-based batch index within the epoch.
        step: usize,
        /// The offending loss value.
        value: f64,
    },
    /// Drawing or encoding a picture failed.
    #[error("{path}: cannot draw plot: {message}")]
    Plot {
        /// The picture being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
