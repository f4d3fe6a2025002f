//! The run directory, and everything in it: [`RunDir`] owns every file
//! name, what is written when, and how it is read back, for the training
//! loop, for resuming and for the commands that use a finished run.
//!
//! | file | written | read by |
//! | --- | --- | --- |
//! | `args.json` | when a run starts: the command's flags, as the command writes them | resuming (the same flags again); a 0.1 run's setup |
//! | `preprocess.json` | when a run starts or resumes: [`RunSetup`] | evaluation and prediction |
//! | `log.jsonl` | a configuration line at the start, one line per epoch ([`RunLog`]) | resuming (the history), people |
//! | `history.png`, `confusion.png` | after each epoch | people |
//! | `top-losses.png` | after each evaluated epoch: the 16 test images with the highest loss | people |
//! | `report.html` | after each epoch and at the end: everything above on one self-contained page | people |
//! | `checkpoint-NNNNNNNN/` | after each epoch and on interruption: the trained layers, the best epoch's, the optimiser, `state.json` | resuming |
//! | `resume.json` | once a checkpoint is complete: which one is current | resuming |
//! | `last.safetensors`, `best.safetensors` | when the run ends, stops early or is interrupted (hard links to the checkpoint's files where those hold the whole model) | everyone (torchvision names) |
//! | `inputs.json` | when a run starts: [`RunInputs`], the weights' sha256 and the data's fingerprints | resuming (refuses changed inputs) |
//! | `.lock` | while a process trains into the directory ([`RunDir::lock`]) | the next process, refused |
//!
//! Every file is written atomically (a temporary file, fsync, rename), so a
//! kill at any moment leaves each file either as it was or complete; what a
//! killed writer leaves behind is removed by the next [`RunDir::lock`].

mod checkpoint;
mod json;

use std::ops::Deref;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use finetune_files::atomic::{link_atomic, remove_leftovers};
use finetune_files::{DirLock, LOCK_FILE};
use finetune_model::write_safetensors;
use finetune_model::Vgg;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use json::{parse_json, read_json, write_json};

pub use checkpoint::{RunState, STATE_FORMAT_VERSION};

use crate::log::{EpochRecord, RunLog};
use crate::optim::Optimizer;
use crate::{plot_confusion, plot_history, ConfusionMatrix, Result, TrainError};

/// The command line a run was started with (the caller's flags, as JSON).
pub const ARGS_FILE: &str = "args.json";
/// How the run prepared its images and built its network: [`RunSetup`].
pub const PREPROCESS_FILE: &str = "preprocess.json";
/// The run log: configuration, then one record per epoch.
pub const LOG_FILE: &str = "log.jsonl";
/// The user-facing weights after the latest epoch (torchvision names).
pub const LAST_WEIGHTS: &str = "last.safetensors";
/// The user-facing weights of the best epoch so far (torchvision names).
pub const BEST_WEIGHTS: &str = "best.safetensors";
/// Training and test loss and accuracy per epoch.
pub const HISTORY_PNG: &str = "history.png";
/// The confusion matrix of the latest epoch.
pub const CONFUSION_PNG: &str = "confusion.png";
/// The test images with the highest loss, after each evaluated epoch.
pub const TOP_LOSSES_PNG: &str = "top-losses.png";
/// The run's report page, refreshed after each epoch.
pub const REPORT_HTML: &str = "report.html";
/// Names the current checkpoint directory.
pub const RESUME_POINTER: &str = "resume.json";
/// What the run started from: [`RunInputs`].
pub const INPUTS_FILE: &str = "inputs.json";
/// Checkpoint directories are `checkpoint-` and the global step, 8 digits.
const CHECKPOINT_PREFIX: &str = "checkpoint-";
/// In a checkpoint directory: the tensors of the layers that trained.
const CHANGED_FILE: &str = "changed.safetensors";
/// In a checkpoint directory: those tensors at the best epoch so far.
const BEST_CHANGED_FILE: &str = "best-changed.safetensors";

/// What `eval` and `predict` need to feed images and rebuild the network the
/// way training did, written as `preprocess.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSetup {
    /// Square side fed to the network.
    pub image_size: usize,
    /// Per-channel mean of `Normalize`.
    pub mean: [f32; 3],
    /// Per-channel std of `Normalize`.
    pub std: [f32; 3],
    /// The architecture, torchvision's name (`vgg16`, `vgg16_bn`, ...).
    pub arch: String,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Conv widths divided by this (1 for torchvision's VGG).
    pub width_divisor: usize,
    /// Width of the classifier's hidden layers (4096 in torchvision's VGG).
    pub classifier_hidden: usize,
    /// Seed of the train/test split of an image folder without one.
    pub split_seed: u64,
    /// Share of each class held out for testing in such a folder.
    pub test_fraction: f32,
}

impl RunSetup {
    /// The `Normalize` step the run used.
    pub fn normalize(&self) -> finetune_data::transforms::Normalize {
        finetune_data::transforms::Normalize {
            mean: self.mean,
            std: self.std,
        }
    }

    /// The recipe's setup, for weights that come without a run directory:
    /// torchvision's VGG16 fed 96x96 images normalised with STL10's
    /// statistics, folders split 80/20 with seed 0, no class names.
    pub fn recipe() -> RunSetup {
        let normalize = finetune_data::transforms::Normalize::stl10();
        let folders = finetune_data::DataOptions::default();
        RunSetup {
            image_size: 96,
            mean: normalize.mean,
            std: normalize.std,
            arch: finetune_model::VggConfig::vgg16(1000).name(),
            class_names: Vec::new(),
            width_divisor: 1,
            classifier_hidden: 4096,
            split_seed: folders.split_seed,
            test_fraction: folders.test_fraction,
        }
    }
}

/// The identity of what a run trains on, written as [`INPUTS_FILE`] when it
/// starts, so that a resume from other weights or other data is refused
/// instead of silently mixing two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    /// The starting weights, as given.
    pub weights: PathBuf,
    /// Their sha256 (64 hex digits).
    pub weights_sha256: String,
    /// The `--data` directory, as given.
    pub data: PathBuf,
    /// The training split's `finetune_data::fingerprint`.
    pub train_fingerprint: String,
    /// The evaluation split's, when the run evaluates.
    pub test_fingerprint: Option<String>,
}

/// What [`RunLock::check_inputs`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputsCheck {
    /// The inputs are those the run started from.
    Same,
    /// The run (older than [`INPUTS_FILE`]) had none recorded: the current
    /// ones are now, unverified.
    FirstRecorded,
}

/// `preprocess.json` as runs before 0.1 wrote it; the rest of [`RunSetup`]
/// came from their `args.json` ([`ArgsV0`]).
#[derive(Deserialize)]
struct SetupV0 {
    image_size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    arch: String,
    class_names: Vec<String>,
}

/// The fields of an old `args.json` that [`RunSetup`] now holds; every one is
/// required, so a file without them is an error, not a silent default.
#[derive(Deserialize)]
struct ArgsV0 {
    seed: u64,
    test_fraction: f32,
    width_divisor: usize,
    classifier_hidden: usize,
}

/// Where a run can be resumed from, as found in its run directory.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The tensors of every layer that trained (torchvision names); the rest
    /// of the network is the run's starting weights. See [`ResumePoint::restore`].
    pub changed: PathBuf,
    /// The checkpoint directory, holding `state.json` and `optimizer.safetensors`.
    pub dir: PathBuf,
    /// The run state saved with them.
    pub state: RunState,
}

#[derive(Serialize, Deserialize)]
struct ResumePointer {
    dir: String,
}

impl ResumePoint {
    /// The model at this point: `start` (the run's starting weights, loaded
    /// from the same file with the same configuration) with the layers that
    /// trained replaced by the checkpoint's.
    pub fn restore(&self, start: &Vgg) -> Result<Vgg> {
        overlay(start, &self.changed)
    }

    /// The optimiser's state at this point, into `optimizer`.
    pub(crate) fn load_optimizer(&self, optimizer: &mut dyn Optimizer, model: &Vgg) -> Result<()> {
        let (_, state) = checkpoint::load_checkpoint(&self.dir, model.device())?;
        optimizer.load_state(&state)
    }

    /// The file of the run state, for messages.
    pub(crate) fn state_file(&self) -> PathBuf {
        self.dir.join(checkpoint::STATE_FILE)
    }
}

/// A run directory: `finetune train --out DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The run directory at `path` (nothing is read or written yet).
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The run directory a weights file sits in, e.g. `RUN` for
    /// `RUN/best.safetensors`, when that directory holds a [`PREPROCESS_FILE`].
    pub fn of_weights(weights: &Path) -> Option<RunDir> {
        let dir = weights.parent()?;
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        dir.join(PREPROCESS_FILE)
            .is_file()
            .then(|| RunDir::new(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of the run directory, e.g. `run.file(BEST_WEIGHTS)`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory (and its parents) if it does not exist.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path).map_err(|e| TrainError::io(&self.path, e))
    }

    /// The names of the entries in the directory (sorted; the lock file left
    /// out), none when it does not exist: a new run goes only into an empty
    /// directory.
    pub fn contents(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrainError::io(&self.path, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrainError::io(&self.path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != LOCK_FILE {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Takes the directory (created if missing) for this process alone: an
    /// exclusive advisory lock, released when the [`RunLock`] is dropped or
    /// the process ends however it ends. A second process is refused with the
    /// first one's pid. Then removes what a killed run left behind: temporary
    /// files, and checkpoint directories that [`RESUME_POINTER`] does not name.
    pub fn lock(&self) -> Result<RunLock> {
        let lock = DirLock::acquire(&self.path)?;
        let held = RunLock {
            run: self.clone(),
            _lock: lock,
        };
        held.remove_leftovers()?;
        Ok(held)
    }

    /// Writes the command's flags as [`ARGS_FILE`].
    pub fn write_args(&self, args: &impl Serialize) -> Result<()> {
        write_json(&self.file(ARGS_FILE), args, true)
    }

    /// Reads [`ARGS_FILE`] back as the command's flags.
    pub fn read_args<T: DeserializeOwned>(&self) -> Result<T> {
        read_json(&self.file(ARGS_FILE))
    }

    /// Writes [`PREPROCESS_FILE`].
    pub fn write_setup(&self, setup: &RunSetup) -> Result<()> {
        write_json(&self.file(PREPROCESS_FILE), setup, true)
    }

    /// Reads [`PREPROCESS_FILE`]; a run from before 0.1 has part of it in
    /// its [`ARGS_FILE`], read under the names those runs used.
    pub fn read_setup(&self) -> Result<RunSetup> {
        let value: serde_json::Value = read_json(&self.file(PREPROCESS_FILE))?;
        // A file with any of the fields 0.1 did not write is the new layout,
        // all of whose fields are required.
        let new = [
            "width_divisor",
            "classifier_hidden",
            "split_seed",
            "test_fraction",
        ];
        if new.iter().any(|field| value.get(field).is_some()) {
            return parse_json(&self.file(PREPROCESS_FILE), value);
        }
        let old: SetupV0 = parse_json(&self.file(PREPROCESS_FILE), value)?;
        let args: ArgsV0 = read_json(&self.file(ARGS_FILE))?;
        Ok(RunSetup {
            image_size: old.image_size,
            mean: old.mean,
            std: old.std,
            arch: old.arch,
            class_names: old.class_names,
            width_divisor: args.width_divisor,
            classifier_hidden: args.classifier_hidden,
            split_seed: args.seed,
            test_fraction: args.test_fraction,
        })
    }

    /// Starts [`LOG_FILE`] anew with the run's configuration.
    pub(crate) fn create_log(&self, config: &serde_json::Value) -> Result<RunLog> {
        RunLog::create(&self.file(LOG_FILE), config)
    }

    /// Reopens [`LOG_FILE`] to continue at zero-based `epoch`, and returns the
    /// records of the epochs before it.
    pub(crate) fn resume_log(&self, epoch: usize) -> Result<(RunLog, Vec<EpochRecord>)> {
        RunLog::resume(&self.file(LOG_FILE), epoch)
    }

    /// Redraws [`HISTORY_PNG`] and [`CONFUSION_PNG`] after an epoch.
    pub(crate) fn draw(
        &self,
        history: &[EpochRecord],
        confusion: &ConfusionMatrix,
        class_names: &[String],
    ) -> Result<()> {
        plot_history(&self.file(HISTORY_PNG), history)?;
        plot_confusion(&self.file(CONFUSION_PNG), confusion, class_names)
    }

    /// Reads [`INPUTS_FILE`], `None` for a run that has none (older than it).
    pub fn read_inputs(&self) -> Result<Option<RunInputs>> {
        let path = self.file(INPUTS_FILE);
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Draws [`TOP_LOSSES_PNG`]: the images of `eval` with the highest loss
    /// among `rows` (dataset index, probabilities).
    pub(crate) fn draw_top_losses(
        &self,
        eval: &dyn finetune_data::Dataset,
        rows: &[(usize, Vec<f32>)],
        class_names: &[String],
    ) -> Result<()> {
        crate::plot_top_losses(&self.file(TOP_LOSSES_PNG), eval, rows, class_names, 16)?;
        Ok(())
    }

    /// Writes [`REPORT_HTML`] from the run so far and the pictures in the
    /// directory; `running` makes the page reload itself every 30 s.
    pub(crate) fn write_report(
        &self,
        config: &serde_json::Value,
        history: &[EpochRecord],
        class_names: &[String],
        status: &str,
        running: bool,
    ) -> Result<()> {
        let read = |name: &str| std::fs::read(self.file(name)).ok();
        let (curves, confusion, worst) =
            (read(HISTORY_PNG), read(CONFUSION_PNG), read(TOP_LOSSES_PNG));
        let title = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let page = crate::html::Page {
            title: &title,
            status,
            refresh: running,
            config,
            history,
            class_names,
            history_png: curves.as_deref(),
            confusion_png: confusion.as_deref(),
            top_losses_png: worst.as_deref(),
        };
        let html = crate::html::render(&page);
        Ok(finetune_files::atomic::write_file_atomic(
            &self.file(REPORT_HTML),
            html.as_bytes(),
        )?)
    }

    /// The latest complete checkpoint, or `None` when the run has not written
    /// one yet. A checkpoint missing one of its files is an error naming it.
    pub fn resume_point(&self) -> Result<Option<ResumePoint>> {
        let Some(name) = self.checkpoint_name()? else {
            return Ok(None);
        };
        let dir = self.path.join(name);
        let state = checkpoint::load_run_state(&dir)?;
        for file in [CHANGED_FILE, BEST_CHANGED_FILE] {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(TrainError::Checkpoint {
                    path,
                    message: "missing: the checkpoint is incomplete (was the file deleted?); \
                              resuming without it would lose the trained layers"
                        .into(),
                });
            }
        }
        Ok(Some(ResumePoint {
            changed: dir.join(CHANGED_FILE),
            dir,
            state,
        }))
    }

    /// The directory name [`RESUME_POINTER`] names, if there is one.
    fn checkpoint_name(&self) -> Result<Option<String>> {
        let pointer = self.file(RESUME_POINTER);
        if !pointer.exists() {
            return Ok(None);
        }
        let p: ResumePointer = read_json(&pointer)?;
        let plain = p.dir.starts_with(CHECKPOINT_PREFIX)
            && !p.dir.contains(['/', '\\'])
            && p.dir != "."
            && p.dir != "..";
        if !plain {
            return Err(TrainError::Checkpoint {
                path: pointer,
                message: format!("`{}` is not a checkpoint directory name", p.dir),
            });
        }
        Ok(Some(p.dir))
    }

    /// Writes a complete checkpoint into a fresh directory: the tensors of
    /// the layers that trained (small when little trains: a head-only epoch
    /// does not rewrite 528 MB of frozen weights), those of the best epoch so
    /// far (`improved`: this one), the optimiser and the run state. Then points
    /// [`RESUME_POINTER`] at it and removes the previous one: a crash at any
    /// moment leaves a complete checkpoint behind the pointer.
    pub(crate) fn save_checkpoint(
        &self,
        model: &Vgg,
        state: &RunState,
        optimizer: &dyn Optimizer,
        improved: bool,
    ) -> Result<()> {
        let previous = self.resume_point()?;
        let name = format!("{CHECKPOINT_PREFIX}{:08}", state.global_step);
        let dir = self.path.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        write_safetensors(&dir.join(CHANGED_FILE), &changed_tensors(model), None)?;
        // `resume_point` made sure the previous checkpoint has its best file.
        match previous.filter(|_| !improved) {
            Some(previous) => link_atomic(
                &previous.dir.join(BEST_CHANGED_FILE),
                &dir.join(BEST_CHANGED_FILE),
            )?,
            None => link_atomic(&dir.join(CHANGED_FILE), &dir.join(BEST_CHANGED_FILE))?,
        }
        checkpoint::save_checkpoint(&dir, state, &optimizer.state()?)?;
        write_json(
            &self.file(RESUME_POINTER),
            &ResumePointer { dir: name.clone() },
            false,
        )?;
        // Older checkpoints are now unreachable; failing to delete one is
        // harmless (the next start tries again).
        self.remove_checkpoints_but(&name);
        Ok(())
    }

    /// Removes every checkpoint directory but `keep`, quietly.
    fn remove_checkpoints_but(&self, keep: &str) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if file_name.starts_with(CHECKPOINT_PREFIX) && file_name != keep {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    /// Writes the full [`LAST_WEIGHTS`] (the model as it is) and
    /// [`BEST_WEIGHTS`] (with the best epoch's trained layers; a link to the
    /// former when the last epoch was the best), in torchvision's names, once
    /// the run stops. Nothing when no checkpoint was ever written.
    ///
    /// `model` must be in the state of the latest checkpoint ([`crate::fit`]
    /// writes one before stopping, or resumed from it without training):
    /// when that checkpoint's trained tensors are the whole model (every layer
    /// trainable), they are already [`LAST_WEIGHTS`] byte for byte, and are
    /// linked rather than written again (528 MB for VGG16).
    pub(crate) fn export_weights(&self, model: &Vgg, best_is_last: bool) -> Result<()> {
        let Some(point) = self.resume_point()? else {
            return Ok(());
        };
        let last = self.file(LAST_WEIGHTS);
        if holds_whole_model(model, &point.changed)? {
            link_atomic(&point.changed, &last)?;
        } else {
            model.save_safetensors(&last)?;
        }
        let best = self.file(BEST_WEIGHTS);
        if best_is_last {
            return Ok(link_atomic(&last, &best)?);
        }
        let named = overlay_tensors(model, &point.dir.join(BEST_CHANGED_FILE))?;
        Ok(write_safetensors(&best, &named, None)?)
    }
}

/// A [`RunDir`] this process holds the lock of ([`RunDir::lock`]): what
/// [`crate::fit`] writes into. Reads as the [`RunDir`] it holds.
#[derive(Debug)]
pub struct RunLock {
    run: RunDir,
    _lock: DirLock,
}

impl Deref for RunLock {
    type Target = RunDir;

    fn deref(&self) -> &RunDir {
        &self.run
    }
}

impl RunLock {
    /// Temporary files of a killed writer, and checkpoint directories the
    /// resume pointer does not name (a kill while one was being written).
    fn remove_leftovers(&self) -> Result<()> {
        remove_leftovers(self.path())?;
        if let Some(name) = self.checkpoint_name()? {
            let current = self.path().join(&name);
            if current.is_dir() {
                remove_leftovers(&current)?;
            }
            self.remove_checkpoints_but(&name);
        } else {
            self.remove_checkpoints_but("");
        }
        Ok(())
    }

    /// Removes the files a run writes (every name of this module's table and
    /// the checkpoints), for a new run over an old one (`--overwrite`).
    /// Returns the entries left because they are not a run's.
    pub fn clear(&self) -> Result<Vec<String>> {
        self.remove_checkpoints_but("");
        for name in [
            ARGS_FILE,
            PREPROCESS_FILE,
            LOG_FILE,
            LAST_WEIGHTS,
            BEST_WEIGHTS,
            HISTORY_PNG,
            CONFUSION_PNG,
            TOP_LOSSES_PNG,
            REPORT_HTML,
            RESUME_POINTER,
            INPUTS_FILE,
        ] {
            let path = self.file(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(TrainError::io(&path, e)),
            }
        }
        self.contents()
    }

    /// Writes [`INPUTS_FILE`].
    pub fn write_inputs(&self, inputs: &RunInputs) -> Result<()> {
        write_json(&self.file(INPUTS_FILE), inputs, true)
    }

    /// Compares `current` with the inputs the run started from, refusing
    /// other weights or other data with an error naming what changed; a run
    /// with none recorded gets `current` recorded.
    pub fn check_inputs(&self, current: &RunInputs) -> Result<InputsCheck> {
        let Some(recorded) = self.read_inputs()? else {
            self.write_inputs(current)?;
            return Ok(InputsCheck::FirstRecorded);
        };
        let changed = |what: &str, path: &Path, was: &str, is: &str| TrainError::InputsChanged {
            what: what.to_string(),
            path: path.to_path_buf(),
            record: format!(
                "{} recorded {was}, it is now {is}",
                self.file(INPUTS_FILE).display()
            ),
        };
        if recorded.weights_sha256 != current.weights_sha256 {
            return Err(changed(
                "the weights file",
                &current.weights,
                &recorded.weights_sha256,
                &current.weights_sha256,
            ));
        }
        if recorded.train_fingerprint != current.train_fingerprint {
            return Err(changed(
                "the training data in",
                &current.data,
                &recorded.train_fingerprint,
                &current.train_fingerprint,
            ));
        }
        if let (Some(was), Some(is)) = (&recorded.test_fingerprint, &current.test_fingerprint) {
            if was != is {
                return Err(changed("the test data in", &current.data, was, is));
            }
        }
        Ok(InputsCheck::Same)
    }
}

/// `model`'s tensors with those stored in `file` put in their place, as a new model.
fn overlay(model: &Vgg, file: &Path) -> Result<Vgg> {
    let named = overlay_tensors(model, file)?;
    let (vgg, _) = Vgg::from_named_tensors(named, model.config().clone(), model.device())?;
    Ok(vgg)
}

/// `model`'s named tensors with those stored in `file` in their place.
fn overlay_tensors(model: &Vgg, file: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut stored = candle_core::safetensors::load(file, model.device()).map_err(|e| {
        TrainError::Checkpoint {
            path: file.to_path_buf(),
            message: format!("cannot read the checkpoint's tensors: {e}"),
        }
    })?;
    let named: Vec<(String, Tensor)> = model
        .to_named_tensors()
        .into_iter()
        .map(|(name, t)| {
            let t = stored.remove(&name).unwrap_or(t);
            (name, t)
        })
        .collect();
    if let Some(name) = stored.keys().next() {
        return Err(TrainError::Checkpoint {
            path: file.to_path_buf(),
            message: format!("tensor `{name}` is not part of the model"),
        });
    }
    Ok(named)
}

/// Whether the safetensors file `changed` stores every tensor of `model`
/// (read from its listing alone).
fn holds_whole_model(model: &Vgg, changed: &Path) -> Result<bool> {
    let stored = finetune_model::stored_tensor_names(changed)?;
    let mut names: Vec<String> = model
        .to_named_tensors()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort();
    Ok(stored == names)
}

/// The tensors of every layer holding a trainable parameter (batch-norm
/// running statistics included): all that training changes.
fn changed_tensors(model: &Vgg) -> Vec<(String, Tensor)> {
    let layer = |name: &str| name.rsplit_once('.').map_or(name, |(l, _)| l).to_string();
    let trained: std::collections::HashSet<String> = model
        .trainable_parameters()
        .iter()
        .map(|(name, _)| layer(name))
        .collect();
    model
        .to_named_tensors()
        .into_iter()
        .filter(|(name, _)| trained.contains(&layer(name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> RunSetup {
        RunSetup {
            image_size: 64,
            mean: [0.5; 3],
            std: [0.25; 3],
            arch: "vgg11_bn".into(),
            class_names: vec!["a".into(), "b".into()],
            width_divisor: 16,
            classifier_hidden: 32,
            split_seed: 7,
            test_fraction: 0.3,
        }
    }

    #[test]
    fn setup_and_args_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        run.create().unwrap();
        run.write_setup(&setup()).unwrap();
        assert_eq!(run.read_setup().unwrap(), setup());
        run.write_args(&serde_json::json!({"lr": 0.1})).unwrap();
        let args: serde_json::Value = run.read_args().unwrap();
        assert_eq!(args["lr"], 0.1);
        let weights = run.file(BEST_WEIGHTS);
        assert_eq!(RunDir::of_weights(&weights), Some(run));
        assert_eq!(RunDir::of_weights(&dir.path().join("w.safetensors")), None);
    }

    #[test]
    fn an_old_setup_takes_the_rest_from_args_json_under_the_old_names() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(
            run.file(PREPROCESS_FILE),
            r#"{"image_size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                "arch": "vgg11_bn", "class_names": ["a", "b"]}"#,
        )
        .unwrap();
        std::fs::write(
            run.file(ARGS_FILE),
            r#"{"seed": 7, "test_fraction": 0.3, "width_divisor": 16, "classifier_hidden": 32, "lr": 0.1}"#,
        )
        .unwrap();
        assert_eq!(run.read_setup().unwrap(), setup());
        // A renamed or missing field is an error naming the file, not a default.
        std::fs::write(run.file(ARGS_FILE), r#"{"seed": 7, "test_fraction": 0.3}"#).unwrap();
        let err = run.read_setup().unwrap_err().to_string();
        assert!(
            err.contains("args.json") && err.contains("width_divisor"),
            "{err}"
        );
    }

    fn inputs(sha: &str, train: &str) -> RunInputs {
        RunInputs {
            weights: "w.safetensors".into(),
            weights_sha256: sha.into(),
            data: "data".into(),
            train_fingerprint: train.into(),
            test_fingerprint: Some("t".into()),
        }
    }

    #[test]
    fn one_process_at_a_time_and_leftovers_of_a_killed_one_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        assert!(
            run.contents().unwrap().is_empty(),
            "a missing directory is empty"
        );
        let held = run.lock().unwrap();
        let err = run.lock().unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(
            run.contents().unwrap().is_empty(),
            "the lock file is not content"
        );
        drop(held);
        // A killed run's temporary file and half-written checkpoint.
        std::fs::write(run.file(".last.safetensors.0123456789abcdef.tmp"), b"x").unwrap();
        std::fs::create_dir(run.file("checkpoint-00000009")).unwrap();
        std::fs::write(run.file("notes.txt"), b"mine").unwrap();
        let _held = run.lock().unwrap();
        assert_eq!(run.contents().unwrap(), ["notes.txt"]);
    }

    #[test]
    fn overwrite_clears_the_run_files_and_leaves_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        for name in [ARGS_FILE, LOG_FILE, BEST_WEIGHTS, "notes.txt"] {
            std::fs::write(run.file(name), b"x").unwrap();
        }
        std::fs::create_dir(run.file("checkpoint-00000001")).unwrap();
        let held = run.lock().unwrap();
        // The checkpoint no pointer names went with the leftovers.
        assert_eq!(
            run.contents().unwrap(),
            [ARGS_FILE, BEST_WEIGHTS, LOG_FILE, "notes.txt"]
        );
        assert_eq!(held.clear().unwrap(), ["notes.txt"]);
    }

    #[test]
    fn changed_inputs_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path()).lock().unwrap();
        // A run without a record gets one.
        assert_eq!(
            run.check_inputs(&inputs("aa", "d1")).unwrap(),
            InputsCheck::FirstRecorded
        );
        assert_eq!(run.read_inputs().unwrap(), Some(inputs("aa", "d1")));
        assert_eq!(
            run.check_inputs(&inputs("aa", "d1")).unwrap(),
            InputsCheck::Same
        );
        let err = run
            .check_inputs(&inputs("bb", "d1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("weights file w.safetensors changed") && err.contains("inputs.json"),
            "{err}"
        );
        let err = run
            .check_inputs(&inputs("aa", "d2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("training data in data changed"), "{err}");
        assert_eq!(run.read_inputs().unwrap(), Some(inputs("aa", "d1")));
    }

    #[test]
    fn a_checkpoint_missing_a_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let ckpt = run.file("checkpoint-00000004");
        std::fs::create_dir(&ckpt).unwrap();
        write_json(
            &run.file(RESUME_POINTER),
            &ResumePointer {
                dir: "checkpoint-00000004".into(),
            },
            false,
        )
        .unwrap();
        let state = RunState {
            format_version: STATE_FORMAT_VERSION,
            epoch: 1,
            step_in_epoch: 0,
            global_step: 4,
            best_metric: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            rng: None,
            partial_metrics: None,
            optimizer: crate::OptimizerKind::Sgd,
            config: serde_json::Value::Null,
        };
        write_json(&ckpt.join(checkpoint::STATE_FILE), &state, false).unwrap();
        std::fs::write(ckpt.join(CHANGED_FILE), b"").unwrap();
        let err = run.resume_point().unwrap_err().to_string();
        assert!(
            err.contains(BEST_CHANGED_FILE) && err.contains("missing"),
            "{err}"
        );
        // A pointer out of the run directory is refused.
        write_json(
            &run.file(RESUME_POINTER),
            &ResumePointer {
                dir: "../elsewhere".into(),
            },
            false,
        )
        .unwrap();
        let err = run.resume_point().unwrap_err().to_string();
        assert!(err.contains("not a checkpoint directory"), "{err}");
    }
}
