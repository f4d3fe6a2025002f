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
fn narrow_config() -> VggConfig {
    VggConfig {
        width_divisor: 16,
        classifier_hidden: 32,
        ..VggConfig::vgg16(1000)
    }
}

/// Random weights of [`narrow_config`] in `dir`.
fn narrow_weights(dir: &Path) -> PathBuf {
    let config = narrow_config();
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
    train_into(s, &s.out, extra).output().unwrap()
}

/// `finetune train` on the setup's data and narrow weights into `out`.
fn train_into(s: &Setup, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = finetune();
    cmd.arg("train")
        .arg("--data")
        .arg(&s.data)
        .arg("--weights")
        .arg(&s.weights)
        .arg("--out")
        .arg(out)
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
    cmd
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
        let output = train_into(&s, &out, &["--epochs", "1", "--eval-every", "0", "--quiet"])
            .env("RAYON_NUM_THREADS", threads)
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

/// `--precision bf16` trains where the CPU has AVX512_BF16 (other weights
/// than f32's, the same from run to run, recorded for `--resume`) and is
/// refused before anything is written where it has not; an unknown name
/// lists the known ones.
#[test]
fn precision_bf16_trains_where_the_cpu_has_it_and_is_refused_clearly_where_not() {
    let s = setup();
    let flags = ["--epochs", "1", "--eval-every", "0", "--quiet"];
    if !finetune_model::bf16_supported() {
        let output = train(&s, &[&flags[..], &["--precision", "bf16"]].concat());
        let all = text(&output);
        assert!(!output.status.success(), "{all}");
        assert!(
            all.contains("--precision") && all.contains("AVX512_BF16"),
            "{all}"
        );
        assert!(!s.out.exists(), "nothing is written: {all}");
        return;
    }
    let mut weights = Vec::new();
    for (name, precision) in [("f32", "f32"), ("bf16", "bf16"), ("bf16-again", "bf16")] {
        let out = s.out.with_file_name(format!("run-{name}"));
        let output = train_into(
            &s,
            &out,
            &[&flags[..], &["--precision", precision]].concat(),
        )
        .output()
        .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let args: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("args.json")).unwrap()).unwrap();
        assert_eq!(args["precision"], precision, "{args}");
        weights.push(std::fs::read(out.join("last.safetensors")).unwrap());
    }
    assert!(weights[0] != weights[1], "bf16 trained the f32 weights");
    assert!(weights[1] == weights[2], "bf16 runs differ");
    let bad = train(&s, &["--precision", "fp16"]);
    let all = text(&bad);
    assert!(
        !bad.status.success() && all.contains("bf16") && all.contains("f32"),
        "{all}"
    );
}

/// Every file under `dir` with its bytes (the lock file aside): what a
/// refused command must leave as it was.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().unwrap() != ".lock" {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs `finetune ARGS` expecting a failure whose message holds every needle.
fn fails_with(args: &[&std::ffi::OsStr], needles: &[&str]) -> String {
    let output = finetune().args(args).output().unwrap();
    let all = text(&output);
    assert!(!output.status.success(), "{args:?} succeeded:\n{all}");
    assert!(!all.contains("panicked"), "{args:?} panicked:\n{all}");
    for needle in needles {
        assert!(
            all.contains(needle),
            "{args:?}: expected `{needle}` in:\n{all}"
        );
    }
    all
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn a_used_run_directory_is_never_overwritten_silently() {
    let s = setup();
    let first = train(&s, &["--epochs", "1", "--quiet", "--train", "head"]);
    assert!(first.status.success(), "{}", text(&first));
    let before = snapshot(&s.out);

    // Training into it again is refused, naming what is there and the ways out.
    let again = train(&s, &["--epochs", "1", "--quiet"]);
    let all = text(&again);
    assert!(!again.status.success(), "{all}");
    for needle in ["is not empty", "args.json", "--resume", "--overwrite"] {
        assert!(all.contains(needle), "expected `{needle}` in:\n{all}");
    }
    assert_eq!(
        snapshot(&s.out),
        before,
        "the refused run changed the directory"
    );

    // Bad flags fail before anything is written, --overwrite or not.
    for bad in [
        &["--lr", "nan"][..],
        &["--momentum", "-1"],
        &["--train", "blocks:99"],
        &["--image-size", "31"],
        &["--image-size", "100000"],
        &["--batch-size", "0"],
        &["--num-classes", "3"],
        &["--optimizer", "adamw", "--momentum", "1.5"],
    ] {
        let output = train(&s, &[bad, &["--overwrite", "--quiet"]].concat());
        let all = text(&output);
        assert!(!output.status.success(), "{bad:?} succeeded:\n{all}");
        assert!(!all.contains("panicked"), "{all}");
        assert_eq!(snapshot(&s.out), before, "{bad:?} changed the run:\n{all}");
    }
    let blocks = text(&train(&s, &["--train", "blocks:99", "--overwrite"]));
    assert!(blocks.contains("vgg16 has 5 conv blocks"), "{blocks}");
    let size = text(&train(&s, &["--image-size", "100000", "--overwrite"]));
    assert!(
        size.contains("--image-size") && size.contains("32..=1024"),
        "{size}"
    );

    // --overwrite replaces the run's files and leaves the user's.
    std::fs::write(s.out.join("notes.txt"), "mine").unwrap();
    let over = train(&s, &["--epochs", "1", "--quiet", "--overwrite"]);
    assert!(over.status.success(), "{}", text(&over));
    assert_eq!(
        std::fs::read_to_string(s.out.join("notes.txt")).unwrap(),
        "mine"
    );
    let log = std::fs::read_to_string(s.out.join("log.jsonl")).unwrap();
    assert!(log.contains("\"all\""), "the new run's log: {log}");
}

#[test]
fn a_second_process_is_refused_while_one_holds_the_run() {
    let s = setup();
    let first = train(&s, &["--epochs", "1", "--quiet", "--train", "head"]);
    assert!(first.status.success(), "{}", text(&first));
    let before = snapshot(&s.out);
    // Another process training into the run: here, this test holding its lock.
    let held = finetune_files::DirLock::acquire(&s.out).unwrap();
    fails_with(
        &[
            os("train"),
            os("--resume"),
            s.out.as_os_str(),
            os("--epochs"),
            os("2"),
        ],
        &[&std::process::id().to_string()],
    );
    assert_eq!(snapshot(&s.out), before);
    drop(held);
    let resumed = finetune()
        .args(["train", "--quiet", "--epochs", "2", "--resume"])
        .arg(&s.out)
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
}

#[test]
fn resume_refuses_other_flags_and_changed_weights_and_recovers_a_torn_log() {
    let s = setup();
    let first = train(&s, &["--epochs", "1", "--quiet", "--train", "head"]);
    assert!(first.status.success(), "{}", text(&first));
    let resume = |extra: &[&str]| {
        finetune()
            .args(["train", "--quiet", "--resume"])
            .arg(&s.out)
            .args(extra)
            .output()
            .unwrap()
    };
    let before = snapshot(&s.out);
    let extra = text(&resume(&["--epochs", "2", "--lr", "5", "--no-augment"]));
    assert!(
        extra.contains("only --epochs and --quiet") && extra.contains("--lr --no-augment"),
        "{extra}"
    );
    assert_eq!(snapshot(&s.out), before);

    // Other weights under the same name: refused, naming the file.
    let original = std::fs::read(&s.weights).unwrap();
    let config = narrow_config();
    Vgg::new_random(config, 2, &Device::Cpu)
        .unwrap()
        .save_safetensors(&s.weights)
        .unwrap();
    let changed = resume(&["--epochs", "2"]);
    let all = text(&changed);
    assert!(!changed.status.success(), "{all}");
    assert!(
        all.contains(&s.weights.display().to_string())
            && all.contains("changed since the run started"),
        "{all}"
    );
    assert_eq!(snapshot(&s.out), before);
    std::fs::write(&s.weights, original).unwrap();

    // A torn last line (a kill mid-write) is cut on resume, and the log
    // parses on the resume after that.
    let log = s.out.join("log.jsonl");
    let mut text_before = std::fs::read(&log).unwrap();
    text_before.extend_from_slice(b"{\"type\":\"epoch\",\"ep");
    std::fs::write(&log, &text_before).unwrap();
    for epochs in ["2", "3"] {
        let output = resume(&["--epochs", epochs]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let lines = std::fs::read_to_string(&log).unwrap();
    let epochs: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("\"type\":\"epoch\""))
        .collect();
    assert_eq!(epochs.len(), 3, "{lines}");
}

#[test]
fn an_image_folder_checks_out_fold_and_test_fraction_before_training() {
    let s = setup();
    let folder = s.data.join("pictures");
    finetune_data::synthetic::write_image_folder(&folder, &["cat", "dog"], 4, (40, 40)).unwrap();
    let base = |out: &Path| -> Vec<std::ffi::OsString> {
        [
            os("train"),
            os("--data"),
            folder.as_os_str(),
            os("--weights"),
            s.weights.as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--width-divisor"),
            os("16"),
            os("--classifier-hidden"),
            os("32"),
            os("--image-size"),
            os("32"),
        ]
        .map(|a| a.to_os_string())
        .to_vec()
    };
    let run = |out: &Path, extra: &[&str], needles: &[&str]| {
        let mut args = base(out);
        args.extend(extra.iter().map(|a| a.into()));
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        fails_with(&refs, needles);
    };
    let inside = folder.join("cat").join("run");
    run(&inside, &[], &["is inside the image folder"]);
    assert!(!inside.exists(), "nothing was written");
    let out = s.data.join("folder-run");
    run(&out, &["--fold", "2"], &["--fold", "image folder"]);
    run(
        &out,
        &["--test-fraction", "0"],
        &["--test-fraction", "the test split is empty"],
    );
    run(
        &out,
        &["--test-fraction", "1"],
        &["the train split is empty"],
    );
    assert!(!out.exists(), "nothing was written");
    // A run directory left inside the folder by an older version is not a class.
    std::fs::create_dir_all(folder.join("old-run")).unwrap();
    std::fs::write(folder.join("old-run").join("log.jsonl"), "").unwrap();
    std::fs::write(folder.join("old-run").join("preprocess.json"), "{}").unwrap();
    run(&out, &[], &["old-run", "is a run directory"]);
}

#[test]
fn weights_with_nan_are_refused_before_the_run_directory_exists() {
    let s = setup();
    let config = narrow_config();
    let mut named = Vgg::new_random(config, 1, &Device::Cpu)
        .unwrap()
        .to_named_tensors();
    let (_, t) = named
        .iter_mut()
        .find(|(n, _)| n == "features.5.weight")
        .unwrap();
    *t = (t.clone() * f64::NAN).unwrap();
    finetune_model::write_safetensors(&s.weights, &named, None).unwrap();
    let output = train(&s, &["--epochs", "1"]);
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(
        all.contains("features.5.weight") && all.contains("NaN"),
        "{all}"
    );
    assert!(!s.out.exists(), "nothing was written:\n{all}");
}

#[test]
fn the_feature_cache_is_not_reused_when_any_image_changed() {
    let s = setup();
    let cache = s.data.join("cache");
    let cache_flag = cache.display().to_string();
    let head = [
        "--epochs",
        "1",
        "--quiet",
        "--train",
        "head",
        "--no-augment",
        "--eval-every",
        "0",
        "--feature-cache",
        cache_flag.as_str(),
        "--overwrite",
    ];
    let files = || std::fs::read_dir(&cache).unwrap().count();
    assert!(train(&s, &head).status.success());
    assert_eq!(files(), 1);
    assert!(train(&s, &head).status.success());
    assert_eq!(files(), 1, "the same data reuses its features");
    // One byte of the 20th of 24 images: no sampling of a few would see it.
    let images = s.data.join("stl10_binary").join("train_X.bin");
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[19 * 27648 + 100] ^= 0x40;
    std::fs::write(&images, bytes).unwrap();
    let output = train(&s, &head);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(files(), 2, "changed data gets features of its own");
}

#[test]
fn kill_9_at_any_moment_then_resume_ends_with_the_uninterrupted_weights() {
    let s = setup();
    let flags = ["--epochs", "12", "--quiet", "--eval-every", "0"];
    let straight = train(&s, &flags);
    assert!(straight.status.success(), "{}", text(&straight));
    let want = std::fs::read(s.out.join("last.safetensors")).unwrap();
    // Kills at growing delays after the first checkpoint: inside steps,
    // checkpoint writes and the final export, wherever they fall.
    for (attempt, delay_ms) in [0u64, 7, 23, 61].into_iter().enumerate() {
        let out = s.out.with_file_name(format!("killed-{attempt}"));
        let mut child = train_into(&s, &out, &flags)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pointer = out.join("resume.json");
        while !pointer.exists() && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL on Unix
        child.wait().unwrap();
        let resumed = finetune()
            .args(["train", "--quiet", "--resume"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            resumed.status.success(),
            "attempt {attempt}: {}",
            text(&resumed)
        );
        let got = std::fs::read(out.join("last.safetensors")).unwrap();
        assert!(
            got == want,
            "attempt {attempt} (+{delay_ms} ms): weights differ"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") || n.starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "attempt {attempt}: {leftovers:?}");
    }
}

#[test]
fn lr_find_draws_the_range_test_and_suggests_a_rate_without_touching_the_weights() {
    let s = setup();
    let plot = s.data.join("lr.png");
    let before = std::fs::read(&s.weights).unwrap();
    let lr_find = |extra: &[&str]| {
        finetune()
            .arg("lr-find")
            .arg("--data")
            .arg(&s.data)
            .arg("--weights")
            .arg(&s.weights)
            .arg("--plot")
            .arg(&plot)
            .args(["--width-divisor", "16", "--classifier-hidden", "32"])
            .args(["--device", "cpu", "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let output = lr_find(&[
        "--batch-size",
        "8",
        "--train",
        "head",
        "--no-augment",
        "--steps",
        "40",
    ]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("suggested: --lr"), "{all}");
    assert!(all.contains("steepest descent"), "{all}");
    let picture = image::open(&plot).unwrap();
    assert_eq!((picture.width(), picture.height()), (720, 420));
    assert_eq!(
        std::fs::read(&s.weights).unwrap(),
        before,
        "the weights are untouched"
    );
    assert!(!s.out.exists(), "no run directory");

    // Weights so large that the loss is not finite from the first step.
    let config = narrow_config();
    let mut named = Vgg::new_random(config, 1, &Device::Cpu)
        .unwrap()
        .to_named_tensors();
    for (name, t) in named.iter_mut() {
        if name.ends_with("weight") {
            *t = (t.clone() * 1e30).unwrap();
        }
    }
    finetune_model::write_safetensors(&s.weights, &named, None).unwrap();
    std::fs::remove_file(&plot).unwrap();
    let output = lr_find(&[]);
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(
        all.contains("from the first step") && !all.contains("suggested: --lr"),
        "{all}"
    );
    assert!(!plot.exists());

    // Rates the test cannot run between are refused naming the flags.
    let output = lr_find(&["--start-lr", "1", "--end-lr", "0.1"]);
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(
        all.contains("--start-lr") && all.contains("0 < start < end"),
        "{all}"
    );
    assert!(!plot.exists());
}
