//! Crash-safe files: atomic writes, the run state (`state.json`) and the
//! optimiser state (`optimizer.safetensors`).
//!
//! Every file of a run directory is written through [`write_atomic`], so a
//! kill at any moment leaves either the old or the new file, never half of one.
//! Within a checkpoint the optimiser state is written before `state.json`, and
//! both record the global step, so a kill between the two is detected on load
//! instead of resuming from a mismatched pair.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::optim::{OptimizerKind, OptimizerState};
use crate::{Result, TrainError};

/// File name of the run state inside a run directory.
pub const STATE_FILE: &str = "state.json";
/// File name of the optimiser state inside a run directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Version of the `state.json` layout; bumped when fields change meaning.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Writes `path` atomically: `write` fills `<path>.tmp` in the same directory,
/// which is then fsynced, renamed over `path`, and the directory fsynced.
///
/// If `write` fails (or the process dies) the previous `path` is untouched; a
/// stale `.tmp` from an earlier crash is simply overwritten.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
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
    let file = File::open(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    file.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
    sync_dir(&dir)
}

/// Writes `bytes` to `path` through [`write_atomic`].
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |tmp| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| TrainError::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| TrainError::io(tmp, e))
    })
}

/// Writes named tensors as a safetensors file through [`write_atomic`],
/// streaming tensor by tensor (no whole-file buffer in memory).
pub fn write_safetensors_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    write_atomic(path, |tmp| {
        let data = tensors.iter().map(|(n, t)| (n.as_str(), t));
        safetensors::serialize_to_file(data, metadata, tmp).map_err(|e| TrainError::Safetensors {
            path: tmp.to_path_buf(),
            message: e.to_string(),
        })
    })
}

/// `<path>.tmp`, next to `path` so the rename never crosses file systems.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    // The rename is only durable once the directory entry is on disk.
    let d = File::open(dir).map_err(|e| TrainError::io(dir, e))?;
    d.sync_all().map_err(|e| TrainError::io(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    // Directories cannot be opened for fsync on Windows; rename is the best we get.
    Ok(())
}

/// Makes `dst` a copy of the finished file `src`, atomically: a hard link
/// where the file system allows (no bytes written: a 528 MB VGG16 checkpoint
/// costs nothing to keep twice), else a copy; then renamed over `dst`.
pub fn link_atomic(src: &Path, dst: &Path) -> Result<()> {
    write_atomic(dst, |tmp| {
        if fs::hard_link(src, tmp).is_err() {
            fs::copy(src, tmp).map_err(|e| TrainError::io(src, e))?;
        }
        Ok(())
    })
}

/// The random generator's position, so a resumed run draws the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The run's seed.
    pub seed: u64,
    /// ChaCha stream number.
    pub stream: u64,
    /// ChaCha word position, as a decimal string because JSON numbers lose
    /// precision past 2^53.
    #[serde(with = "u128_string")]
    pub word_pos: u128,
}

impl RngState {
    /// Captures a `ChaCha8Rng` created with `ChaCha8Rng::seed_from_u64(seed)`.
    pub fn capture(seed: u64, rng: &ChaCha8Rng) -> Self {
        RngState {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// Recreates the generator at the captured position.
    pub fn restore(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything besides tensors that a resumed run needs: saved as `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    /// [`STATE_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Epochs completed; a resumed run starts at this zero-based epoch.
    pub epoch: usize,
    /// Batches of epoch `epoch` already trained (non-zero only for a run
    /// interrupted mid-epoch; the resumed run skips them).
    #[serde(default)]
    pub step_in_epoch: usize,
    /// Optimiser steps taken so far.
    pub global_step: u64,
    /// The best value of the early-stopping metric so far.
    pub best_metric: Option<f64>,
    /// The epoch (1-based count of completed epochs) where `best_metric` was reached.
    pub best_epoch: Option<usize>,
    /// Epochs since the best metric improved, for early stopping's patience.
    pub epochs_without_improvement: usize,
    /// The random generator's position.
    pub rng: RngState,
    /// Which optimiser wrote `optimizer.safetensors`.
    pub optimizer: OptimizerKind,
    /// The resolved run configuration.
    pub config: serde_json::Value,
}

/// Saves a checkpoint's optimiser state, then its run state, into `dir`.
pub fn save_checkpoint(dir: &Path, state: &RunState, optimizer: &OptimizerState) -> Result<()> {
    if state.optimizer != optimizer.kind {
        return Err(TrainError::Config(format!(
            "run state says {} but the optimizer state is {}",
            state.optimizer, optimizer.kind
        )));
    }
    let mut named: Vec<(String, Tensor)> = optimizer
        .tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([
        ("optimizer".to_string(), optimizer.kind.to_string()),
        ("global_step".to_string(), state.global_step.to_string()),
    ]);
    write_safetensors_atomic(&dir.join(OPTIMIZER_FILE), &named, Some(metadata))?;
    let path = dir.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(state).map_err(|source| TrainError::Json {
        path: path.clone(),
        source,
    })?;
    write_file_atomic(&path, &json)
}

/// Loads and validates `state.json` from `dir`.
pub fn load_run_state(dir: &Path) -> Result<RunState> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    let state: RunState = serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
        path: path.clone(),
        source,
    })?;
    if state.format_version != STATE_FORMAT_VERSION {
        return Err(TrainError::Checkpoint {
            path,
            message: format!(
                "format_version {} is not the supported {STATE_FORMAT_VERSION}",
                state.format_version
            ),
        });
    }
    Ok(state)
}

/// Loads a checkpoint from `dir`: the run state, and the optimiser state with
/// its tensors on `device`, checking that both come from the same step.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<(RunState, OptimizerState)> {
    let state = load_run_state(dir)?;
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    let bad = |message: String| TrainError::Checkpoint {
        path: path.clone(),
        message,
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| TrainError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let meta = header.metadata().clone().unwrap_or_default();
    let kind: OptimizerKind = meta
        .get("optimizer")
        .ok_or_else(|| bad("metadata has no `optimizer` entry".into()))?
        .parse()
        .map_err(|e: TrainError| bad(e.to_string()))?;
    if kind != state.optimizer {
        return Err(bad(format!(
            "holds {kind} state but {STATE_FILE} says {}",
            state.optimizer
        )));
    }
    let step = meta.get("global_step").and_then(|s| s.parse::<u64>().ok());
    if step != Some(state.global_step) {
        return Err(bad(format!(
            "is from global step {step:?} but {STATE_FILE} is from step {} (interrupted while writing a checkpoint?)",
            state.global_step
        )));
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
        TrainError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    Ok((state, OptimizerState { kind, tensors }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    fn sample_state(step: u64) -> (RunState, OptimizerState) {
        let rng = ChaCha8Rng::seed_from_u64(7);
        let state = RunState {
            format_version: STATE_FORMAT_VERSION,
            epoch: 3,
            step_in_epoch: 0,
            global_step: step,
            best_metric: Some(0.5),
            best_epoch: Some(2),
            epochs_without_improvement: 1,
            rng: RngState::capture(7, &rng),
            optimizer: OptimizerKind::Sgd,
            config: serde_json::json!({"lr": 0.1}),
        };
        let t = Tensor::new(&[step as f32, 2.0], &Device::Cpu).unwrap();
        let opt = OptimizerState {
            kind: OptimizerKind::Sgd,
            tensors: HashMap::from([("w.momentum_buffer".to_string(), t)]),
        };
        (state, opt)
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (state, opt) = sample_state(10);
        save_checkpoint(dir.path(), &state, &opt).unwrap();
        let (s2, o2) = load_checkpoint(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(s2, state);
        assert_eq!(
            o2.tensors["w.momentum_buffer"].to_vec1::<f32>().unwrap(),
            vec![10.0, 2.0]
        );
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn crash_between_write_and_rename_keeps_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (state, opt) = sample_state(10);
        save_checkpoint(dir.path(), &state, &opt).unwrap();
        // The next checkpoint dies after writing its temporary files, before renaming.
        fs::write(dir.path().join("optimizer.safetensors.tmp"), b"half a fi").unwrap();
        fs::write(dir.path().join("state.json.tmp"), b"{\"format_ver").unwrap();
        let (s2, o2) = load_checkpoint(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(s2, state);
        assert_eq!(o2.tensors.len(), 1);
        // And the next save goes through despite the stale temporaries.
        let (state3, opt3) = sample_state(20);
        save_checkpoint(dir.path(), &state3, &opt3).unwrap();
        assert_eq!(load_run_state(dir.path()).unwrap().global_step, 20);
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_file_atomic(&path, b"old").unwrap();
        let err = write_atomic(&path, |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(TrainError::Config("simulated failure".into()))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!dir.path().join("x.json.tmp").exists());
    }

    #[test]
    fn mismatched_pair_is_reported_with_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let (state, opt) = sample_state(10);
        save_checkpoint(dir.path(), &state, &opt).unwrap();
        // A kill after the optimizer file of step 20 but before its state.json.
        let (_, opt20) = sample_state(20);
        let named = vec![(
            "w.momentum_buffer".to_string(),
            opt20.tensors["w.momentum_buffer"].clone(),
        )];
        let meta = HashMap::from([
            ("optimizer".to_string(), "sgd".to_string()),
            ("global_step".to_string(), "20".to_string()),
        ]);
        write_safetensors_atomic(&dir.path().join(OPTIMIZER_FILE), &named, Some(meta)).unwrap();
        let err = load_checkpoint(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("optimizer.safetensors") && err.contains("state.json"),
            "{err}"
        );
    }

    #[test]
    fn bad_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{\"epoch\": \"three\"}").unwrap();
        let err = load_run_state(dir.path()).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }

    #[test]
    fn rng_state_resumes_the_stream() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        for _ in 0..13 {
            rng.next_u32();
        }
        let saved = RngState::capture(42, &rng);
        let json = serde_json::to_string(&saved).unwrap();
        let mut restored = serde_json::from_str::<RngState>(&json).unwrap().restore();
        for _ in 0..100 {
            assert_eq!(rng.next_u64(), restored.next_u64());
        }
    }
}
