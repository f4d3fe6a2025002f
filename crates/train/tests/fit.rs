//! The training loop end to end on a narrow VGG16 and 16 tiny images, against
//! PyTorch (`tools/golden/train_loop.py`) and against itself (caching, resume).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use finetune_data::{DataError, Dataset, Label, LoaderConfig, Pipeline, PrefetchLoader};
use finetune_model::{Vgg, VggConfig, VggVariant};
use finetune_train::{
    fit, FitConfig, FitData, FreezePolicy, LrSchedule, OptimizerConfig, RunDir, Schedule,
    SgdConfig, StopReason, TrainError, BEST_WEIGHTS, LAST_WEIGHTS,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/loop.safetensors"
);

/// The fixture's images as a data set.
struct Memory {
    images: Vec<u8>,
    labels: Vec<Label>,
    names: Vec<String>,
}

impl Dataset for Memory {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn label(&self, index: usize) -> Label {
        self.labels[index]
    }
    fn image_dims(&self) -> (usize, usize) {
        (32, 32)
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<(), DataError> {
        let n = 32 * 32 * 3;
        out.copy_from_slice(&self.images[index * n..(index + 1) * n]);
        Ok(())
    }
}

struct Fixture {
    tensors: HashMap<String, Tensor>,
    data: Arc<Memory>,
}

fn fixture() -> Fixture {
    let tensors = candle_core::safetensors::load(FIXTURE, &Device::Cpu).unwrap();
    let images = tensors["images"]
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let labels = tensors["labels"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|l| l as Label)
        .collect();
    let names = (0..10).map(|c| format!("class{c}")).collect();
    Fixture {
        tensors,
        data: Arc::new(Memory {
            images,
            labels,
            names,
        }),
    }
}

fn weights(fx: &Fixture, prefix: &str) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = fx
        .tensors
        .iter()
        .filter_map(|(k, t)| {
            k.strip_prefix(prefix)
                .map(|name| (name.to_string(), t.clone()))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn narrow_config() -> VggConfig {
    VggConfig {
        dropout: 0.0,
        width_divisor: 32,
        classifier_hidden: 16,
        ..VggConfig::new(VggVariant::Vgg16, false, 10)
    }
}

fn model(fx: &Fixture) -> Vgg {
    Vgg::from_named_tensors(weights(fx, "init."), narrow_config(), &Device::Cpu)
        .unwrap()
        .0
}

fn loader(fx: &Fixture, shuffle: bool) -> PrefetchLoader {
    PrefetchLoader::new(
        fx.data.clone(),
        Pipeline::recipe_test(),
        LoaderConfig {
            batch_size: 4,
            shuffle,
            seed: 3,
            ..LoaderConfig::default()
        },
    )
}

fn config(freeze: FreezePolicy, epochs: usize) -> FitConfig {
    FitConfig {
        epochs,
        eval_every: 0,
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..SgdConfig::default()
        }),
        schedule: LrSchedule::new(Schedule::Constant),
        freeze,
        cache_features: false,
        quiet: true,
        ..FitConfig::recipe(0.01)
    }
}

fn run(
    model: &mut Vgg,
    data: &FitData,
    config: &FitConfig,
    dir: &Path,
) -> finetune_train::FitSummary {
    fit(
        model,
        data,
        config,
        &RunDir::new(dir).lock().unwrap(),
        None,
        serde_json::Value::Null,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    finetune_model::max_abs_diff(a, b).unwrap()
}

/// The parity criterion: `max|w_ours - w_torch| <= 1e-3 * max|w_torch - w_init|`
/// for every tensor that moved; tensors that did not move must be identical.
fn assert_matches_torch(model: &Vgg, fx: &Fixture, tag: &str) {
    let ours: HashMap<String, Tensor> = model.to_named_tensors().into_iter().collect();
    let init: HashMap<String, Tensor> = weights(fx, "init.").into_iter().collect();
    for (name, torch) in weights(fx, &format!("{tag}.")) {
        let moved = max_abs_diff(&torch, &init[&name]);
        let err = max_abs_diff(&ours[&name], &torch);
        if moved == 0.0 {
            assert_eq!(err, 0.0, "{tag}: frozen {name} changed by {err}");
        } else {
            assert!(
                err <= 1e-3 * moved,
                "{tag}: {name} differs from PyTorch by {err:e}, update size {moved:e}"
            );
        }
    }
}

#[test]
fn one_epoch_all_layers_matches_pytorch() {
    let fx = fixture();
    let mut m = model(&fx);
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&mut m, &data, &config(FreezePolicy::All, 1), dir.path());
    assert_eq!(summary.stopped, StopReason::Completed);
    assert_matches_torch(&m, &fx, "all");
}

#[test]
fn one_epoch_head_only_matches_pytorch_and_leaves_the_rest_bit_identical() {
    let fx = fixture();
    for cache_features in [false, true] {
        let mut m = model(&fx);
        let data = FitData {
            train: loader(&fx, false),
            eval: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let config = FitConfig {
            cache_features,
            ..config(FreezePolicy::Head, 1)
        };
        run(&mut m, &data, &config, dir.path());
        assert_matches_torch(&m, &fx, "head");
        let init: HashMap<String, Tensor> = weights(&fx, "init.").into_iter().collect();
        for (name, t) in m.to_named_tensors() {
            if !name.starts_with("classifier.6.") {
                assert_eq!(max_abs_diff(&t, &init[&name]), 0.0, "{name} moved");
            }
        }
    }
}

#[test]
fn feature_caching_gives_the_same_run_as_no_caching() {
    let fx = fixture();
    let mut results = Vec::new();
    for cache_features in [false, true] {
        let mut m = model(&fx);
        let data = FitData {
            train: loader(&fx, true),
            eval: Some(loader(&fx, false)),
        };
        let dir = tempfile::tempdir().unwrap();
        let config = FitConfig {
            cache_features,
            eval_every: 1,
            ..config(FreezePolicy::Classifier, 3)
        };
        let summary = run(&mut m, &data, &config, dir.path());
        results.push((summary, m.to_named_tensors()));
    }
    let (a, b) = (&results[0], &results[1]);
    for (ra, rb) in a.0.history.iter().zip(&b.0.history) {
        let (ta, tb) = (ra.test.as_ref().unwrap(), rb.test.as_ref().unwrap());
        assert!(
            (ra.train.loss - rb.train.loss).abs() < 1e-5,
            "{ra:?} vs {rb:?}"
        );
        assert!((ta.loss - tb.loss).abs() < 1e-5);
        assert_eq!(ta.top1, tb.top1);
    }
    for ((name, x), (_, y)) in a.1.iter().zip(&b.1) {
        assert!(max_abs_diff(x, y) < 1e-5, "{name}");
    }
}

#[test]
fn run_directory_holds_weights_log_pictures_and_a_resume_point() {
    let fx = fixture();
    let mut m = model(&fx);
    let data = FitData {
        train: loader(&fx, true),
        eval: Some(loader(&fx, false)),
    };
    let dir = tempfile::tempdir().unwrap();
    let config = FitConfig {
        eval_every: 1,
        ..config(FreezePolicy::Blocks(1), 2)
    };
    let summary = run(&mut m, &data, &config, dir.path());
    assert_eq!(summary.history.len(), 2);
    for file in [
        LAST_WEIGHTS,
        BEST_WEIGHTS,
        "log.jsonl",
        finetune_train::HISTORY_PNG,
        finetune_train::CONFUSION_PNG,
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "config line + 2 epochs:\n{log}");
    assert!(lines[0].contains("\"config\""));
    // last.safetensors loads back as the trained model.
    let (back, _) = Vgg::load(
        &dir.path().join(LAST_WEIGHTS),
        narrow_config(),
        &Device::Cpu,
    )
    .unwrap();
    for ((n, a), (_, b)) in m.to_named_tensors().iter().zip(back.to_named_tensors()) {
        assert_eq!(max_abs_diff(a, &b), 0.0, "{n}");
    }
    let point = RunDir::new(dir.path())
        .resume_point()
        .unwrap()
        .expect("a resume point");
    assert_eq!(point.state.epoch, 2);
    assert!(point.changed.is_file());
}

#[test]
fn a_run_interrupted_mid_epoch_and_resumed_ends_like_the_uninterrupted_run() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, true),
        eval: None,
    };
    let config = FitConfig {
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            ..SgdConfig::default()
        }),
        schedule: LrSchedule::new(Schedule::Cosine {
            t_max: 3,
            eta_min: 0.0,
        }),
        ..config(FreezePolicy::All, 3)
    };

    let mut straight = model(&fx);
    let dir_a = tempfile::tempdir().unwrap();
    let uninterrupted = run(&mut straight, &data, &config, dir_a.path());

    // Interrupt after the first batch, then resume from what was written.
    let dir_b = tempfile::tempdir().unwrap();
    let mut first = model(&fx);
    let summary = fit(
        &mut first,
        &data,
        &config,
        &RunDir::new(dir_b.path()).lock().unwrap(),
        None,
        serde_json::Value::Null,
        Arc::new(AtomicBool::new(true)),
    )
    .unwrap();
    assert_eq!(summary.stopped, StopReason::Interrupted);
    let point = RunDir::new(dir_b.path()).resume_point().unwrap().unwrap();
    assert_eq!((point.state.epoch, point.state.step_in_epoch), (0, 1));
    let mut resumed = point.restore(&model(&fx)).unwrap();
    let summary = fit(
        &mut resumed,
        &data,
        &config,
        &RunDir::new(dir_b.path()).lock().unwrap(),
        Some(&point),
        serde_json::Value::Null,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(summary.stopped, StopReason::Completed);
    for ((name, a), (_, b)) in straight
        .to_named_tensors()
        .iter()
        .zip(resumed.to_named_tensors())
    {
        assert_eq!(max_abs_diff(a, &b), 0.0, "{name} differs after resume");
    }
    // The interrupted epoch reports all of its batches, not those after the resume.
    assert_eq!(summary.history.len(), 3);
    for (resumed, straight) in summary.history.iter().zip(&uninterrupted.history) {
        assert_eq!(resumed.train, straight.train, "epoch {}", resumed.epoch);
    }
}

#[test]
fn resuming_with_another_configuration_is_refused() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut m = model(&fx);
    run(&mut m, &data, &config(FreezePolicy::Head, 1), dir.path());
    let point = RunDir::new(dir.path()).resume_point().unwrap().unwrap();
    let err = fit(
        &mut m,
        &data,
        &config(FreezePolicy::All, 2),
        &RunDir::new(dir.path()).lock().unwrap(),
        Some(&point),
        serde_json::Value::Null,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
}

#[test]
fn a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut m = model(&fx);
    // Epoch 1 at a sane rate writes a checkpoint; then the rate explodes.
    let config = FitConfig {
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 1e-3,
            momentum: 0.9,
            ..SgdConfig::default()
        }),
        schedule: LrSchedule::new(Schedule::Step {
            step_size: 1,
            gamma: 1e30,
        }),
        ..config(FreezePolicy::All, 3)
    };
    let err = fit(
        &mut m,
        &data,
        &config,
        &RunDir::new(dir.path()).lock().unwrap(),
        None,
        serde_json::Value::Null,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::NonFiniteLoss { .. }), "{err}");
    let point = RunDir::new(dir.path()).resume_point().unwrap().unwrap();
    assert_eq!(
        point.state.epoch, 1,
        "the checkpoint of the last good epoch"
    );
    assert!(
        !dir.path().join(LAST_WEIGHTS).exists(),
        "nothing is exported from a diverged run"
    );
    let good = point.restore(&model(&fx)).unwrap();
    for (name, t) in good.to_named_tensors() {
        let finite = t
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite());
        assert!(finite, "{name} has non-finite values");
    }
}

#[test]
fn gradual_unfreezing_trains_the_head_first_then_the_rest() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let init: HashMap<String, Tensor> = weights(&fx, "init.").into_iter().collect();
    let moved = |m: &Vgg, name: &str| {
        let now: HashMap<String, Tensor> = m.to_named_tensors().into_iter().collect();
        max_abs_diff(&now[name], &init[name]) > 0.0
    };
    for (epochs, backbone_moves) in [(1, false), (2, true)] {
        let mut m = model(&fx);
        let dir = tempfile::tempdir().unwrap();
        let config = FitConfig {
            unfreeze: Some(finetune_train::Unfreeze {
                head_epochs: 1,
                then: FreezePolicy::All,
                lr_scale: 0.1,
            }),
            ..config(FreezePolicy::Head, epochs)
        };
        run(&mut m, &data, &config, dir.path());
        assert!(moved(&m, "classifier.6.weight"));
        assert_eq!(
            moved(&m, "features.0.weight"),
            backbone_moves,
            "after {epochs} epochs"
        );
    }
}

#[test]
fn early_stopping_ends_the_run_after_patience_epochs_without_improvement() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let mut m = model(&fx);
    let dir = tempfile::tempdir().unwrap();
    // A zero learning rate: the training loss never improves after epoch 1.
    let config = FitConfig {
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.0,
            ..SgdConfig::default()
        }),
        monitor: finetune_train::Monitor::TrainLoss,
        patience: Some(2),
        ..config(FreezePolicy::Head, 10)
    };
    let summary = run(&mut m, &data, &config, dir.path());
    assert_eq!(summary.stopped, StopReason::EarlyStopped);
    assert_eq!(summary.history.len(), 3);
    assert_eq!(summary.best_epoch, Some(1));
}

#[test]
fn best_safetensors_holds_the_best_epoch_and_last_the_final_one() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let config = |epochs| FitConfig {
        monitor: finetune_train::Monitor::TrainLoss,
        ..config(FreezePolicy::Classifier, epochs)
    };
    let (mut m, dir) = (model(&fx), tempfile::tempdir().unwrap());
    let summary = run(&mut m, &data, &config(4), dir.path());
    let best_epoch = summary.best_epoch.unwrap();
    let load = |path: &Path| {
        Vgg::load(path, narrow_config(), &Device::Cpu)
            .unwrap()
            .0
            .to_named_tensors()
    };
    // The same run stopped at the best epoch ends with the best weights
    // (constant learning rate: the epochs before it do not depend on the length).
    let (mut shorter, dir_b) = (model(&fx), tempfile::tempdir().unwrap());
    run(&mut shorter, &data, &config(best_epoch), dir_b.path());
    let best = load(&dir.path().join(BEST_WEIGHTS));
    for ((name, a), (_, b)) in best.iter().zip(shorter.to_named_tensors()) {
        assert_eq!(max_abs_diff(a, &b), 0.0, "best {name} (epoch {best_epoch})");
    }
    let last = load(&dir.path().join(LAST_WEIGHTS));
    for ((name, a), (_, b)) in last.iter().zip(m.to_named_tensors()) {
        assert_eq!(max_abs_diff(a, &b), 0.0, "last {name}");
    }
}

#[test]
fn last_safetensors_is_the_model_whether_linked_from_the_checkpoint_or_written() {
    let fx = fixture();
    let data = FitData {
        train: loader(&fx, false),
        eval: None,
    };
    let unfreeze = Some(finetune_train::Unfreeze {
        head_epochs: 1,
        then: FreezePolicy::All,
        lr_scale: 0.1,
    });
    // (policy, epochs, unfreezing, whether every tensor trained last)
    let cases = [
        (FreezePolicy::All, 1, None, true),
        (FreezePolicy::Head, 1, None, false),
        (FreezePolicy::Head, 2, unfreeze, true),
    ];
    for (freeze, epochs, unfreeze, whole) in cases {
        let mut m = model(&fx);
        let dir = tempfile::tempdir().unwrap();
        let config = FitConfig {
            unfreeze,
            ..config(freeze, epochs)
        };
        run(&mut m, &data, &config, dir.path());
        let written = dir.path().join("written.safetensors");
        m.save_safetensors(&written).unwrap();
        let last = dir.path().join(LAST_WEIGHTS);
        assert!(
            std::fs::read(&last).unwrap() == std::fs::read(&written).unwrap(),
            "{freeze:?} {epochs}: last.safetensors is not the model"
        );
        // The checkpoint's file of trained tensors is the same file as
        // last.safetensors exactly when it holds the whole model.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let changed = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path().join("changed.safetensors"))
                .find(|p| p.is_file())
                .expect("a checkpoint directory");
            let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
            assert_eq!(
                inode(&changed) == inode(&last),
                whole,
                "{freeze:?} {epochs}"
            );
        }
    }
}

/// Debian's chromium, or `None` when it is not installed and the browser
/// tests were not asked for (`FINETUNE_BROWSER_TESTS=1`, which CI sets after
/// installing it, makes a missing browser a failure).
fn chromium() -> Option<std::path::PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("FINETUNE_BROWSER_TESTS").is_none(),
            "FINETUNE_BROWSER_TESTS is set but no chromium is installed"
        );
        eprintln!("note: no chromium installed: the report page is not opened in a browser");
    }
    found
}

#[test]
fn the_report_page_opens_in_a_headless_browser_with_every_section() {
    let fx = fixture();
    let mut m = model(&fx);
    let data = FitData {
        train: loader(&fx, true),
        eval: Some(loader(&fx, false)),
    };
    let dir = tempfile::tempdir().unwrap();
    let config = FitConfig {
        eval_every: 1,
        ..config(FreezePolicy::Blocks(1), 2)
    };
    run(&mut m, &data, &config, dir.path());
    let report = dir.path().join(finetune_train::REPORT_HTML);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(dir.path().join(finetune_train::TOP_LOSSES_PNG).is_file());
    // Three pictures inlined, nothing fetched, and no reload once finished.
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        3,
        "{html}"
    );
    assert!(!html.contains("src=\"http") && !html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("finished"));

    let Some(browser) = chromium() else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("shot.png");
    let output = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--enable-logging=stderr")
        .arg("--virtual-time-budget=2000")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1100,3000")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "{log}"
    );
    let shot = image::open(&screenshot).unwrap().into_rgb8();
    let colours: std::collections::HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "the page renders pictures, not a blank");

    let dom = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in finetune_train::REPORT_SECTIONS {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "section {id} missing:\n{dom}"
        );
    }
    assert_eq!(dom.matches("<img").count(), 3);
}
