//! The JSON-lines run log and the one-line human summary per epoch.
//!
//! The log's first line is the resolved configuration, then one record per
//! epoch. It is append-only and flushed per line, so `tail -f` shows progress
//! and a crash loses at most the line being written (which [`read_log`] skips
//! if it is the last and incomplete).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use finetune_files::atomic::write_file_atomic;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::{Result, TrainError};

/// One line of the run log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogRecord {
    /// The resolved configuration (first line).
    Config {
        /// The configuration as JSON.
        config: serde_json::Value,
    },
    /// A resumed run continues here from `epoch`.
    Resume {
        /// Zero-based epoch the run continues with.
        epoch: usize,
    },
    /// The end of an epoch.
    Epoch(EpochRecord),
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// One-based epoch number.
    pub epoch: usize,
    /// Total epochs of the run.
    pub epochs: usize,
    /// Learning rate in force at the epoch's last step.
    pub lr: f64,
    /// Training metrics (dropout on, parameters moving during the epoch).
    pub train: Metrics,
    /// Test-split metrics, when evaluated this epoch.
    pub test: Option<Metrics>,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Seconds the training loop waited for batches (the data pipeline's share).
    pub data_wait_seconds: f64,
}

impl EpochRecord {
    /// One line for humans, e.g.
    /// `epoch 3/20  lr 1.00e-3  train loss 0.4123 top1 87.50%  test loss 0.5012 top1 84.10% top5 99.20%  41.2 s  310 img/s  wait 1.3 s`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "epoch {}/{}  lr {:.2e}  train loss {:.4} top1 {:.2}%",
            self.epoch,
            self.epochs,
            self.lr,
            self.train.loss,
            100.0 * self.train.top1
        );
        if let Some(t) = &self.test {
            s.push_str(&format!(
                "  test loss {:.4} top1 {:.2}% top5 {:.2}%",
                t.loss,
                100.0 * t.top1,
                100.0 * t.top5
            ));
        }
        s.push_str(&format!(
            "  {:.1} s  {:.0} img/s  wait {:.1} s",
            self.seconds, self.images_per_sec, self.data_wait_seconds
        ));
        s
    }
}

/// An open run log.
#[derive(Debug)]
pub struct RunLog {
    path: PathBuf,
    file: File,
}

impl RunLog {
    /// Starts a new log at `path` (replacing any old one) with the configuration line.
    pub fn create(path: &Path, config: &serde_json::Value) -> Result<Self> {
        let file = File::create(path).map_err(|e| TrainError::io(path, e))?;
        let mut log = RunLog {
            path: path.to_path_buf(),
            file,
        };
        log.append(&LogRecord::Config {
            config: config.clone(),
        })?;
        Ok(log)
    }

    /// Reopens an existing log for a run resumed at zero-based `epoch` and
    /// records where it resumes. The log is first cut back to what the
    /// checkpoint covers: a torn last line (a kill or a full disk mid-write)
    /// and the records of epochs after `epoch` (written before a kill that
    /// came ahead of their checkpoint) are dropped, so the resumed epochs
    /// are not logged twice. Returns the log and the epochs it keeps.
    pub fn resume(path: &Path, epoch: usize) -> Result<(Self, Vec<EpochRecord>)> {
        let kept: Vec<LogRecord> = read_log(path)?
            .into_iter()
            .filter(|r| !matches!(r, LogRecord::Epoch(e) if e.epoch > epoch))
            .collect();
        let mut text = Vec::new();
        for record in &kept {
            text.extend(line_of(path, record)?);
        }
        write_file_atomic(path, &text)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        let mut log = RunLog {
            path: path.to_path_buf(),
            file,
        };
        log.append(&LogRecord::Resume { epoch })?;
        let history = kept
            .into_iter()
            .filter_map(|r| match r {
                LogRecord::Epoch(e) => Some(e),
                _ => None,
            })
            .collect();
        Ok((log, history))
    }

    /// Appends an epoch record.
    pub fn epoch(&mut self, record: &EpochRecord) -> Result<()> {
        self.append(&LogRecord::Epoch(record.clone()))
    }

    /// Appends one record as a line and flushes it to the OS.
    pub fn append(&mut self, record: &LogRecord) -> Result<()> {
        let line = line_of(&self.path, record)?;
        // One write call per line keeps lines whole for concurrent readers.
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// `record` as one line of the log at `path`.
fn line_of(path: &Path, record: &LogRecord) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Reads a run log; an incomplete last line (a crash mid-write) is ignored,
/// any other bad line is an error naming its line number.
pub fn read_log(path: &Path) -> Result<Vec<LogRecord>> {
    let file = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut lines: Vec<String> = Vec::new();
    for line in BufReader::new(file).lines() {
        lines.push(line.map_err(|e| TrainError::io(path, e))?);
    }
    let n = lines.len();
    let mut out = Vec::with_capacity(n);
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == n => break,
            Err(e) => {
                return Err(TrainError::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!("line {}: {e}", i + 1),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsAccumulator;

    fn record(epoch: usize) -> EpochRecord {
        let mut m = MetricsAccumulator::new(2);
        m.update(&[1.0, 0.0, 0.0, 1.0], &[0, 0], 0.5).unwrap();
        EpochRecord {
            epoch,
            epochs: 20,
            lr: 1e-3,
            train: m.finish(),
            test: Some(m.finish()),
            seconds: 41.25,
            images_per_sec: 310.4,
            data_wait_seconds: 1.3,
        }
    }

    #[test]
    fn config_first_then_epochs_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let config = serde_json::json!({"freeze": "head"});
        let mut log = RunLog::create(&path, &config).unwrap();
        log.epoch(&record(1)).unwrap();
        drop(log);
        let (mut log, history) = RunLog::resume(&path, 1).unwrap();
        assert_eq!(history, [record(1)]);
        log.epoch(&record(2)).unwrap();
        // A crash in the middle of the next line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"epo").unwrap();
        let records = read_log(&path).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0], LogRecord::Config { config });
        assert_eq!(records[1], LogRecord::Epoch(record(1)));
        assert_eq!(records[2], LogRecord::Resume { epoch: 1 });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"type\":\"config\""));
    }

    #[test]
    fn resuming_cuts_a_torn_line_and_epochs_the_checkpoint_does_not_cover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = RunLog::create(&path, &serde_json::json!({})).unwrap();
        for epoch in 1..=3 {
            log.epoch(&record(epoch)).unwrap();
        }
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"epoch\",\"epo").unwrap();
        drop(f);
        // The checkpoint is from epoch 2: epoch 3's line came before a kill.
        let (mut log, history) = RunLog::resume(&path, 2).unwrap();
        assert_eq!(history, [record(1), record(2)]);
        log.epoch(&record(3)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        let epochs: Vec<usize> = read_log(&path)
            .unwrap()
            .into_iter()
            .filter_map(|r| match r {
                LogRecord::Epoch(e) => Some(e.epoch),
                _ => None,
            })
            .collect();
        assert_eq!(epochs, [1, 2, 3], "no epoch twice:\n{text}");
        // And the log resumes again without a parse error.
        RunLog::resume(&path, 3).unwrap();
    }

    #[test]
    fn summary_line() {
        let s = record(3).summary();
        assert_eq!(
            s,
            "epoch 3/20  lr 1.00e-3  train loss 0.5000 top1 50.00%  test loss 0.5000 top1 50.00% top5 100.00%  41.2 s  310 img/s  wait 1.3 s"
        );
    }
}
