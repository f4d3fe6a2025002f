//! A run directory written by finetune 0.1.0 (`tests/fixtures/run-0.1`, see
//! its README) still evaluates and resumes: its `preprocess.json` lacks the
//! network's shape, which comes from its `args.json` under the old names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use finetune_model::{Vgg, VggConfig};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run-0.1");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture in a scratch folder, with its data set written again.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("run-0.1");
    copy_dir(Path::new(FIXTURE), &root);
    finetune_data::synthetic::write_stl10(&root.join("data"), 24, 16, 0).unwrap();
    (tmp, root)
}

fn finetune(root: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_finetune"))
        .current_dir(root)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn an_old_run_directory_evaluates_with_its_own_network_shape() {
    let (_tmp, root) = scratch();
    let output = finetune(
        &root,
        &[
            "eval",
            "--data",
            "data",
            "--weights",
            "run/best.safetensors",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("test split of data (16 images)"),
        "{stdout}"
    );
    assert!(stdout.contains(" 9 truck"), "{stdout}");
}

#[test]
fn an_old_run_directory_resumes_and_is_upgraded() {
    let (_tmp, root) = scratch();
    finetune(
        &root,
        &["train", "--resume", "run", "--epochs", "2", "--quiet"],
    );
    let log = std::fs::read_to_string(root.join("run/log.jsonl")).unwrap();
    assert!(log.contains("{\"type\":\"resume\",\"epoch\":1}"), "{log}");
    assert!(log.contains("\"epoch\":2,\"epochs\":2"), "{log}");
    let setup = std::fs::read_to_string(root.join("run/preprocess.json")).unwrap();
    assert!(setup.contains("\"width_divisor\": 64"), "{setup}");
    let config = VggConfig {
        width_divisor: 64,
        classifier_hidden: 8,
        ..VggConfig::vgg16(10)
    };
    Vgg::load(&root.join("run/last.safetensors"), config, &Device::Cpu).unwrap();
}
