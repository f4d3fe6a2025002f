//! One checkpoint's files: the run state (`state.json`) and the optimiser
//! state (`optimizer.safetensors`).
//!
//! Both are written atomically ([`finetune_files::atomic`]), the optimiser
//! state first, and both record the global step, so a kill between the two
//! is detected on load instead of resuming from a mismatched pair.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use candle_core::{Device, Tensor};
use finetune_model::write_safetensors;
use serde::{Deserialize, Serialize};

use super::json::{read_json, write_json};
use crate::metrics::MetricsAccumulator;
use crate::optim::{OptimizerKind, OptimizerState};
use crate::{Result, TrainError};

/// File name of the run state inside a checkpoint directory.
pub(super) const STATE_FILE: &str = "state.json";
/// File name of the optimiser state inside a checkpoint directory.
pub(super) const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Version of the `state.json` layout; bumped when fields change meaning.
/// 2 no longer writes `rng`; version 1 files still load.
pub const STATE_FORMAT_VERSION: u32 = 2;
/// The oldest `state.json` layout this version reads.
const OLDEST_STATE_FORMAT: u32 = 1;

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
    /// Ignored: version 1 wrote the random generator's position here (the
    /// seed, and a stream and word position that were always 0); every draw
    /// is a function of seed, epoch and index, so there is nothing to restore.
    #[serde(default, skip_serializing)]
    pub(crate) rng: Option<serde::de::IgnoredAny>,
    /// The training metrics of the `step_in_epoch` batches already trained,
    /// so that a resumed epoch reports the whole epoch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_metrics: Option<MetricsAccumulator>,
    /// Which optimiser wrote `optimizer.safetensors`.
    pub optimizer: OptimizerKind,
    /// The resolved run configuration.
    pub config: serde_json::Value,
}

/// Saves a checkpoint's optimiser state, then its run state, into `dir`.
pub(super) fn save_checkpoint(
    dir: &Path,
    state: &RunState,
    optimizer: &OptimizerState,
) -> Result<()> {
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
    write_safetensors(&dir.join(OPTIMIZER_FILE), &named, Some(metadata))?;
    write_json(&dir.join(STATE_FILE), state, true)
}

/// Loads and validates `state.json` from `dir`.
pub(super) fn load_run_state(dir: &Path) -> Result<RunState> {
    let path = dir.join(STATE_FILE);
    let state: RunState = read_json(&path)?;
    if !(OLDEST_STATE_FORMAT..=STATE_FORMAT_VERSION).contains(&state.format_version) {
        return Err(TrainError::Checkpoint {
            path,
            message: format!(
                "format_version {} is not one this finetune reads ({OLDEST_STATE_FORMAT} to {STATE_FORMAT_VERSION}): resume it with the finetune that wrote it",
                state.format_version
            ),
        });
    }
    Ok(state)
}

/// Loads a checkpoint from `dir`: the run state, and the optimiser state with
/// its tensors on `device`, checking that both come from the same step.
pub(super) fn load_checkpoint(dir: &Path, device: &Device) -> Result<(RunState, OptimizerState)> {
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

    fn sample_state(step: u64) -> (RunState, OptimizerState) {
        let state = RunState {
            format_version: STATE_FORMAT_VERSION,
            epoch: 3,
            step_in_epoch: 0,
            global_step: step,
            best_metric: Some(0.5),
            best_epoch: Some(2),
            epochs_without_improvement: 1,
            rng: None,
            partial_metrics: None,
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
        write_safetensors(&dir.path().join(OPTIMIZER_FILE), &named, Some(meta)).unwrap();
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
    fn a_version_1_state_with_its_rng_field_still_loads_and_a_future_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = sample_state(3);
        let mut json = serde_json::to_value(&state).unwrap();
        assert!(json.get("rng").is_none(), "no longer written");
        json["rng"] = serde_json::json!({"seed": 0, "stream": 0, "word_pos": "0"});
        json["format_version"] = 1.into();
        fs::write(dir.path().join(STATE_FILE), json.to_string()).unwrap();
        assert_eq!(load_run_state(dir.path()).unwrap().global_step, 3);
        json["format_version"] = 9.into();
        fs::write(dir.path().join(STATE_FILE), json.to_string()).unwrap();
        let err = load_run_state(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("state.json") && err.contains("format_version 9"),
            "{err}"
        );
    }
}
