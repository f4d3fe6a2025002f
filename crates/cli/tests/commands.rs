//! `finetune eval`, `predict`, `preview` and `data bench` as a user runs
//! them, on a tiny STL10-format data set and narrow VGG16s written by the
//! test: their output, their help, and the errors a user can cause.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use finetune_model::{Vgg, VggConfig};

const TRAIN_IMAGES: usize = 12;
const TEST_IMAGES: usize = 8;

fn finetune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_finetune"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// A narrow VGG16 with a 10-class head, outside any run directory.
    tuned: PathBuf,
    /// The same with ImageNet's 1000-class head.
    pretrained: PathBuf,
}

fn narrow(path: &Path, classes: usize) {
    let config = VggConfig {
        width_divisor: 16,
        classifier_hidden: 32,
        ..VggConfig::vgg16(classes)
    };
    Vgg::new_random(config, 3, &Device::Cpu)
        .unwrap()
        .save_safetensors(path)
        .unwrap();
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    finetune_data::synthetic::write_stl10(&root, TRAIN_IMAGES, TEST_IMAGES, 3).unwrap();
    let (tuned, pretrained) = (
        root.join("tuned.safetensors"),
        root.join("imagenet.safetensors"),
    );
    narrow(&tuned, 10);
    narrow(&pretrained, 1000);
    Setup {
        _tmp: tmp,
        root,
        tuned,
        pretrained,
    }
}

const NARROW: [&str; 4] = ["--width-divisor", "16", "--classifier-hidden", "32"];

#[test]
fn eval_without_a_run_directory_uses_flags_and_defaults() {
    let s = setup();
    let output = finetune()
        .arg("eval")
        .arg("--data")
        .arg(&s.root)
        .arg("--weights")
        .arg(&s.tuned)
        .args(NARROW)
        .args(["--device", "cpu", "--quiet", "--split", "train"])
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("train split"), "{all}");
    assert!(all.contains(&format!("({TRAIN_IMAGES} images)")), "{all}");
    // Per-class lines and a confusion row per class, named.
    assert!(all.contains(" 9 truck"), "{all}");
    assert_eq!(all.matches("monkey").count(), 2, "{all}");
}

#[test]
fn predict_uses_labels_and_reads_images_of_any_size() {
    let s = setup();
    let labels = s.root.join("labels.txt");
    let names: Vec<String> = (0..10).map(|c| format!("thing{c}")).collect();
    std::fs::write(&labels, names.join("\n")).unwrap();
    let (a, b) = (s.root.join("a.png"), s.root.join("b.jpg"));
    image::RgbImage::from_pixel(40, 33, image::Rgb([200, 10, 10]))
        .save(&a)
        .unwrap();
    image::RgbImage::from_pixel(300, 120, image::Rgb([10, 10, 200]))
        .save(&b)
        .unwrap();
    let output = finetune()
        .arg("predict")
        .arg("--weights")
        .arg(&s.tuned)
        .arg("--labels")
        .arg(&labels)
        .args(NARROW)
        .args(["--top", "2", "--device", "cpu"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{all}");
    assert_eq!(lines[0], a.display().to_string());
    assert_eq!(lines[3], b.display().to_string());
    assert!(lines[1].trim_start().starts_with("thing"), "{all}");
}

#[test]
fn preview_draws_a_grid_of_what_the_network_is_fed() {
    let s = setup();
    let out = s.root.join("grid.png");
    let output = finetune()
        .arg("preview")
        .arg("--data")
        .arg(&s.root)
        .arg("--out")
        .arg(&out)
        .args(["--count", "6", "--seed", "3"])
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("RandomCrop(96, padding 4)"),
        "the augmentation is named: {all}"
    );
    let grid = image::open(&out).unwrap().into_rgb8();
    // Three columns and two rows of 96-pixel images, with gaps and captions.
    assert_eq!(grid.width(), 6 + 3 * (96 + 6));
    assert!(grid.height() > 2 * 96);

    // STL10's unlabeled split can be looked at too.
    let out = s.root.join("unlabeled.png");
    let output = finetune()
        .arg("preview")
        .arg("--data")
        .arg(&s.root)
        .arg("--out")
        .arg(&out)
        .args(["--split", "unlabeled", "--count", "3"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

/// Output into a pipe that was closed (`finetune data bench | head -1`)
/// ends the process without a panic message.
#[test]
fn output_into_a_closed_pipe_ends_without_a_panic() {
    let s = setup();
    let mut child = finetune()
        .args([
            "data",
            "bench",
            "--batch-size",
            "5",
            "--epochs",
            "3",
            "--data",
        ])
        .arg(&s.root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn data_bench_ends_with_images_per_second() {
    let s = setup();
    let output = finetune()
        .args([
            "data",
            "bench",
            "--batch-size",
            "5",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--data",
        ])
        .arg(&s.root)
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap();
    let number = last.strip_suffix(" images/s").expect(&all);
    assert!(number.parse::<u64>().is_ok(), "{all}");
    assert_eq!(stdout.matches("epoch ").count(), 2, "{all}");
}

#[test]
fn help_explains_each_command() {
    for (args, needles) in [
        (
            vec!["eval", "--help"],
            vec![
                "--predictions",
                "index,label,predicted",
                "preprocess.json",
                "best.safetensors",
            ],
        ),
        (
            vec!["predict", "--help"],
            vec!["--labels", "--top", "resize", "class N"],
        ),
        (
            vec!["preview", "--help"],
            vec!["--no-augment", "--count", "RandomCrop"],
        ),
        (
            vec!["data", "bench", "--help"],
            vec!["images/s", "--threads", "--epochs"],
        ),
    ] {
        let output = finetune().args(&args).output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}");
        for needle in needles {
            assert!(help.contains(needle), "{args:?} lacks {needle}:\n{help}");
        }
    }
}

#[test]
fn user_errors_end_in_a_message_not_a_panic() {
    let s = setup();
    let root = s.root.display().to_string();
    let tuned = s.tuned.display().to_string();
    let not_weights = s.root.join("stl10_binary/class_names.txt");
    let not_weights = not_weights.display().to_string();
    let not_image = s.root.join("broken.png");
    std::fs::write(&not_image, "not a picture").unwrap();
    let missing = s.root.join("nope").display().to_string();
    let narrow: Vec<&str> = NARROW.to_vec();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            [
                vec!["eval", "--data", &missing, "--weights", &tuned],
                narrow.clone(),
            ]
            .concat(),
            vec!["nope", "no such directory"],
        ),
        (
            vec!["eval", "--data", &root, "--weights", &not_weights],
            vec!["class_names.txt", "neither a safetensors"],
        ),
        (
            [
                vec![
                    "eval",
                    "--data",
                    &root,
                    "--weights",
                    s.pretrained.to_str().unwrap(),
                ],
                narrow.clone(),
            ]
            .concat(),
            vec!["1000-class head", "best.safetensors"],
        ),
        (
            [
                vec![
                    "eval",
                    "--data",
                    &root,
                    "--weights",
                    &tuned,
                    "--split",
                    "unlabeled",
                ],
                narrow.clone(),
            ]
            .concat(),
            vec!["unlabeled", "finetune predict"],
        ),
        (
            vec!["predict", "--weights", &not_weights, "x.png"],
            vec!["class_names.txt", "neither a safetensors"],
        ),
        (
            [
                vec![
                    "predict",
                    "--weights",
                    &tuned,
                    "--device",
                    "cpu",
                    not_image.to_str().unwrap(),
                ],
                narrow.clone(),
            ]
            .concat(),
            vec!["cannot read image", "broken.png"],
        ),
        (
            vec!["preview", "--data", &missing, "--out", "x.png"],
            vec!["no such directory"],
        ),
        (
            vec!["data", "bench", "--data", &missing],
            vec!["no such directory"],
        ),
    ];
    for (args, needles) in cases {
        let output = finetune().args(&args).output().unwrap();
        let all = text(&output);
        assert!(!output.status.success(), "{args:?} succeeded:\n{all}");
        for needle in needles {
            assert!(
                all.contains(needle),
                "{args:?}: expected `{needle}` in:\n{all}"
            );
        }
        assert!(!all.contains("panicked"), "{args:?} panicked:\n{all}");
    }
}

#[test]
fn test_time_augmentation_averages_views_and_says_so() {
    let s = setup();
    // A mirror-symmetric image: its flip is itself, so --tta changes nothing;
    // a lopsided one: --tta changes its probabilities.
    let symmetric = s.root.join("symmetric.png");
    image::RgbImage::from_fn(96, 96, |x, y| {
        let d = x.min(95 - x) as u8;
        image::Rgb([d * 5, (y as u8) * 2, 90])
    })
    .save(&symmetric)
    .unwrap();
    let lopsided = s.root.join("lopsided.png");
    image::RgbImage::from_fn(96, 96, |x, y| {
        image::Rgb([(x as u8) * 2, (y as u8) * 2, 30])
    })
    .save(&lopsided)
    .unwrap();
    let predict = |tta: &[&str]| -> Vec<String> {
        let output = finetune()
            .arg("predict")
            .arg("--weights")
            .arg(&s.tuned)
            .args(NARROW)
            .args(["--top", "10", "--device", "cpu"])
            .args(tta)
            .arg(&symmetric)
            .arg(&lopsided)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    let plain = predict(&[]);
    let flipped = predict(&["--tta"]);
    assert!(flipped[0].contains("2 views"), "{flipped:?}");
    assert_eq!(
        plain[..11],
        flipped[1..12],
        "a symmetric image is its own flip"
    );
    assert_ne!(plain[11..], flipped[12..], "a lopsided one is not");
    let crops = predict(&["--tta=crops"]);
    assert!(crops[0].contains("10 views"), "{crops:?}");

    let output = finetune()
        .arg("eval")
        .arg("--data")
        .arg(&s.root)
        .arg("--weights")
        .arg(&s.tuned)
        .args(NARROW)
        .args(["--device", "cpu", "--quiet", "--tta=crops"])
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("mean softmax over 10 views"), "{all}");
    assert!(all.contains("top-1 accuracy"), "{all}");
}

#[test]
fn eval_draws_the_images_with_the_highest_loss() {
    let s = setup();
    let grid = s.root.join("worst.png");
    let output = finetune()
        .arg("eval")
        .arg("--data")
        .arg(&s.root)
        .arg("--weights")
        .arg(&s.tuned)
        .args(NARROW)
        .args([
            "--device",
            "cpu",
            "--quiet",
            "--top-losses-count",
            "4",
            "--top-losses",
        ])
        .arg(&grid)
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("the 4 images with the highest loss"), "{all}");
    let picture = image::open(&grid).unwrap().into_rgb8();
    // Two columns of two 96-pixel STL10 images, with gaps and captions.
    assert_eq!(picture.width(), 6 + 2 * (96 + 6));
    assert!(picture.height() > 2 * 96);
}
