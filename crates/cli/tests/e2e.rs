//! The main job end to end with no external network: what `cargo xtask
//! finetune` runs (`finetune fetch stl10`, `finetune fetch vgg16`, then
//! `finetune train` on the printed paths), against a tiny STL10 archive and a
//! narrow VGG16 served from 127.0.0.1; then `finetune eval` and `finetune
//! predict` on the run it produced.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use finetune_data::synthetic::{stl10_class, STL10_CLASS_NAMES};
use finetune_data::Split;
use finetune_model::{Vgg, VggConfig};
use support::{md5_hex, sha256_hex, tar_gz, Route, TestServer};

const TRAIN_IMAGES: usize = 20;
const TEST_IMAGES: usize = 12;

/// The binary with the cache and every download override pointed at `env`
/// only, so the user's real cache and settings never leak in.
fn finetune(env: &[(&str, String)]) -> Command {
    let mut command = support::finetune_isolated();
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("run finetune");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The last non-empty line of stdout: the path `fetch` prints.
fn printed_path(output: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("a printed path");
    PathBuf::from(line.trim())
}

/// A tar.gz laid out like stl10_binary.tar.gz, holding a synthetic STL10.
fn stl10_archive() -> Vec<u8> {
    tar_gz(&finetune_data::synthetic::stl10_members(
        TRAIN_IMAGES,
        TEST_IMAGES,
        0,
    ))
}

/// A narrow VGG16 (widths / 16, hidden 32) with ImageNet's 1000-class head,
/// as safetensors bytes.
fn narrow_weights(scratch: &Path) -> Vec<u8> {
    let config = VggConfig {
        width_divisor: 16,
        classifier_hidden: 32,
        ..VggConfig::vgg16(1000)
    };
    let path = scratch.join("narrow.safetensors");
    Vgg::new_random(config, 1, &Device::Cpu)
        .unwrap()
        .save_safetensors(&path)
        .unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn fetch_train_eval_predict_from_a_local_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let archive = stl10_archive();
    let weights = narrow_weights(&scratch);
    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::start(
        HashMap::from([
            (
                "/stl10_binary.tar.gz".to_string(),
                Route::File {
                    body: archive.clone(),
                    headers: vec![],
                },
            ),
            (
                "/vgg16.safetensors".to_string(),
                Route::File {
                    body: weights,
                    // Hugging Face states an LFS file's sha256 as its ETag.
                    headers: vec![("ETag".into(), etag)],
                },
            ),
        ]),
        true,
    );
    let cache = tmp.path().join("cache");
    let env = [
        ("FINETUNE_CACHE", cache.display().to_string()),
        ("FINETUNE_STL10_URL", server.url("/stl10_binary.tar.gz")),
        ("FINETUNE_STL10_MD5", md5_hex(&archive)),
        ("FINETUNE_VGG16_URL", server.url("/vgg16.safetensors")),
    ];

    // What `cargo xtask finetune` does, step by step.
    let data = printed_path(&run_ok(finetune(&env).args(["fetch", "stl10"])));
    let weights = printed_path(&run_ok(finetune(&env).args(["fetch", "vgg16"])));
    assert!(data.starts_with(&cache), "{}", data.display());
    assert!(weights.starts_with(&cache), "{}", weights.display());
    assert!(data.join("stl10_binary/train_X.bin").is_file());
    // A second `cargo xtask finetune` finds both in the cache: no network needed.
    let offline = [
        ("FINETUNE_CACHE", cache.display().to_string()),
        ("FINETUNE_STL10_URL", support::unreachable_url()),
        ("FINETUNE_STL10_MD5", md5_hex(&archive)),
        ("FINETUNE_VGG16_URL", support::unreachable_url()),
    ];
    let again = run_ok(finetune(&offline).args(["fetch", "stl10"]));
    assert_eq!(printed_path(&again), data);
    let again = run_ok(finetune(&offline).args(["fetch", "vgg16"]));
    assert_eq!(printed_path(&again), weights);
    let run = tmp.path().join("runs/stl10-vgg16");
    let train = run_ok(
        finetune(&env)
            .arg("train")
            .arg("--data")
            .arg(&data)
            .arg("--weights")
            .arg(&weights)
            .arg("--out")
            .arg(&run)
            .args([
                "--width-divisor",
                "16",
                "--classifier-hidden",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--train",
                "head",
                "--no-augment",
                "--device",
                "cpu",
                "--quiet",
            ]),
    );
    let said = String::from_utf8_lossy(&train.stdout);
    assert!(said.contains("finetune eval --data"), "{said}");
    for file in [
        "best.safetensors",
        "last.safetensors",
        "log.jsonl",
        "history.png",
        "confusion.png",
        "args.json",
        "preprocess.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing from the run");
    }
    let best = run.join("best.safetensors");

    // eval reads the network's shape and preprocessing from the run directory.
    let csv_path = tmp.path().join("predictions.csv");
    let eval = run_ok(
        finetune(&env)
            .arg("eval")
            .arg("--data")
            .arg(&data)
            .arg("--weights")
            .arg(&best)
            .arg("--predictions")
            .arg(&csv_path)
            .args(["--device", "cpu", "--quiet", "--batch-size", "5"]),
    );
    let report = String::from_utf8_lossy(&eval.stdout);
    for needle in [
        "top-1 accuracy",
        "top-5 accuracy",
        "loss",
        "per-class accuracy",
        "confusion matrix",
        "airplane",
        "truck",
        &format!("({TEST_IMAGES} images)"),
    ] {
        assert!(report.contains(needle), "eval lacks `{needle}`:\n{report}");
    }
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header,
        format!("index,label,predicted,{}", STL10_CLASS_NAMES.join(","))
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), TEST_IMAGES);
    for (i, row) in rows.iter().enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 3 + 10, "{row}");
        assert_eq!(fields[0], i.to_string(), "rows in data set order");
        assert_eq!(
            fields[1],
            stl10_class(Split::Test, i).unwrap().to_string(),
            "{row}"
        );
        let probs: Vec<f64> = fields[3..].iter().map(|p| p.parse().unwrap()).collect();
        let sum: f64 = probs.iter().sum();
        // Six decimals per value, ten values: rounding stays far below 1e-4.
        assert!((sum - 1.0).abs() < 1e-4, "{row}: sum {sum}");
        let predicted: usize = fields[2].parse().unwrap();
        let max = probs.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(probs[predicted], max, "{row}");
    }

    // predict: an image of another size, class names from the run directory.
    let image_path = tmp.path().join("photo.png");
    image::RgbImage::from_fn(70, 50, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 128]))
        .save(&image_path)
        .unwrap();
    let predict = run_ok(
        finetune(&env)
            .arg("predict")
            .arg("--weights")
            .arg(&best)
            .args(["--top", "3", "--device", "cpu"])
            .arg(&image_path),
    );
    let said = String::from_utf8_lossy(&predict.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 4, "{said}");
    assert_eq!(lines[0], image_path.display().to_string());
    let mut previous = f64::INFINITY;
    for line in &lines[1..] {
        let (name, p) = line.trim().rsplit_once(' ').unwrap();
        assert!(STL10_CLASS_NAMES.contains(&name.trim()), "{said}");
        let p: f64 = p.parse().unwrap();
        assert!((0.0..=1.0).contains(&p) && p <= previous, "{said}");
        previous = p;
    }
}
