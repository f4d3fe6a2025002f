//! The run directory's JSON files, written atomically and read back with
//! errors that name the file.

use std::path::Path;

use finetune_files::atomic::write_file_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Result, TrainError};

/// Writes `value` to `path` atomically: pretty for files people read,
/// compact for the one-line pointers.
pub(crate) fn write_json(path: &Path, value: &impl Serialize, pretty: bool) -> Result<()> {
    let json = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    let json = json.map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_file_atomic(path, &json)?)
}

/// Reads `path` as JSON.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `value`, read from `path`, as a `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(path: &Path, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}
