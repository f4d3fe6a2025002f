//! `finetune train` as a user runs it, on a tiny STL10-format data set and a
//! narrow VGG16 written by the test: the run directory, resume, and the error
//! messages a user can cause.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use finetune_model::{Vgg, VggConfig};

fn finetune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_finetune"))
}

/// A narrow VGG16 (widths / 16, hidden 32) with an ImageNet-sized head, as a
/// pretrained file would have.
fn narrow_weights(dir: &Path) -> PathBuf {
    let config = VggConfig {
        width_divisor: 16,
        classifier_hidden: 32,
        ..VggConfig::vgg16(1000)
    };
    let path = dir.join("narrow.safetensors");
    Vgg::new_random(config, 1, &Device::Cpu)
        .unwrap()
        .save_safetensors(&path)
        .unwrap();
    path
}

struct Setup {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    weights: PathBuf,
    out: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    finetune_data::synthetic::write_stl10(tmp.path(), 24, 16, 0).unwrap();
    let weights = narrow_weights(tmp.path());
    Setup {
        data: tmp.path().to_path_buf(),
        out: tmp.path().join("run"),
        weights,
        _tmp: tmp,
    }
}

fn train(s: &Setup, extra: &[&str]) -> Output {
    let mut cmd = finetune();
    cmd.arg("train")
        .arg("--data")
        .arg(&s.data)
        .arg("--weights")
        .arg(&s.weights)
        .arg("--out")
        .arg(&s.out)
        .args([
            "--width-divisor",
            "16",
            "--classifier-hidden",
            "32",
            "--batch-size",
            "8",
            "--eval-batch-size",
            "16",
            "--device",
            "cpu",
        ])
        .args(extra);
    cmd.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_head_only_run_writes_the_run_directory_and_says_how_to_evaluate() {
    let s = setup();
    let output = train(&s, &["--epochs", "2", "--train", "head", "--no-augment"]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("finetune eval --data"), "{all}");
    assert!(all.contains("replaced"), "the new head is announced: {all}");
    for file in [
        "last.safetensors",
        "best.safetensors",
        "log.jsonl",
        "history.png",
        "confusion.png",
        "args.json",
        "preprocess.json",
        "resume.json",
    ] {
        assert!(s.out.join(file).is_file(), "{file} missing:\n{all}");
    }
    // The saved model has the data set's 10 classes.
    let config = VggConfig {
        width_divisor: 16,
        classifier_hidden: 32,
        ..VggConfig::vgg16(10)
    };
    let (_, report) = Vgg::load(&s.out.join("best.safetensors"), config, &Device::Cpu).unwrap();
    assert!(report.head_replaced.is_none());
}

#[test]
fn resume_continues_a_finished_run_for_more_epochs() {
    let s = setup();
    let first = train(&s, &["--epochs", "1", "--quiet"]);
    assert!(first.status.success(), "{}", text(&first));
    let resumed = finetune()
        .args(["train", "--quiet", "--epochs", "2", "--resume"])
        .arg(&s.out)
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    let log = std::fs::read_to_string(s.out.join("log.jsonl")).unwrap();
    let epochs = log.lines().filter(|l| l.contains("\"epoch\"")).count();
    assert!(log.contains("\"resume\""), "{log}");
    assert!(epochs >= 2, "{log}");
}

#[test]
fn user_errors_end_in_a_message_not_a_panic() {
    let s = setup();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "train".into(),
                "--data".into(),
                s.data.join("nope").display().to_string(),
                "--weights".into(),
                s.weights.display().to_string(),
                "--out".into(),
                s.out.display().to_string(),
            ],
            "no such directory",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                s.data.display().to_string(),
                "--weights".into(),
                s.data
                    .join("stl10_binary/class_names.txt")
                    .display()
                    .to_string(),
                "--out".into(),
                s.out.display().to_string(),
            ],
            "class_names.txt",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                s.data.display().to_string(),
                "--weights".into(),
                s.weights.display().to_string(),
                "--out".into(),
                s.out.display().to_string(),
                "--train".into(),
                "everything".into(),
            ],
            "everything",
        ),
        (
            vec![
                "train".into(),
                "--resume".into(),
                s.data.display().to_string(),
            ],
            "args.json",
        ),
    ];
    for (args, needle) in cases {
        let output = finetune().args(&args).output().unwrap();
        let all = text(&output);
        assert!(!output.status.success(), "{args:?} succeeded:\n{all}");
        assert!(
            all.contains(needle),
            "{args:?}: expected `{needle}` in:\n{all}"
        );
        assert!(!all.contains("panicked"), "{args:?} panicked:\n{all}");
    }
}

#[test]
fn the_same_seed_gives_the_same_weights_whatever_the_thread_count() {
    let s = setup();
    let mut files = Vec::new();
    for threads in ["1", "2"] {
        let out = s.out.with_file_name(format!("run-{threads}"));
        let output = finetune()
            .env("RAYON_NUM_THREADS", threads)
            .arg("train")
            .arg("--data")
            .arg(&s.data)
            .arg("--weights")
            .arg(&s.weights)
            .arg("--out")
            .arg(&out)
            .args([
                "--width-divisor",
                "16",
                "--classifier-hidden",
                "32",
                "--batch-size",
                "8",
                "--epochs",
                "1",
                "--eval-every",
                "0",
                "--device",
                "cpu",
                "--quiet",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        files.push(std::fs::read(out.join("last.safetensors")).unwrap());
    }
    // Augmentation, shuffling, dropout and the head's init all train here.
    assert!(
        files[0] == files[1],
        "weights differ between 1 and 2 threads"
    );
}
