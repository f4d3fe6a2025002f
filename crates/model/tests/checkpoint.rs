//! Weights in and out on narrow networks: round trip, `.pth`, f16, timm
//! names, head replacement, and the errors a user can hit.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::fixture;
use common::formula::formula_state_dict;
use finetune_model::{CheckpointFormat, Mismatch, ModelError, NamingScheme, Vgg, VggConfig};

fn narrow(num_classes: usize) -> VggConfig {
    let mut config = VggConfig::vgg16(num_classes);
    config.width_divisor = 16;
    config.classifier_hidden = 32;
    config
}

/// The config of `model_tiny.pth` written by `tools/golden/model.py`.
fn tiny() -> VggConfig {
    let mut config = VggConfig::vgg16(10);
    config.width_divisor = 64;
    config.classifier_hidden = 8;
    config
}

fn formula_vgg(config: VggConfig) -> Vgg {
    let layout = Vgg::state_dict_layout(&config);
    Vgg::from_named_tensors(formula_state_dict(&layout), config, &Device::Cpu)
        .expect("formula fits")
        .0
}

fn same_tensors(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    let names = |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b));
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert_eq!(x.dims(), y.dims(), "{name}");
        assert_eq!(x.dtype(), y.dtype(), "{name}");
        let diff = finetune_model::max_abs_diff(x, y).unwrap();
        assert_eq!(diff, 0.0, "{name} differs");
    }
}

#[test]
fn save_then_load_gives_identical_names_and_tensors() {
    for batch_norm in [false, true] {
        let mut config = narrow(10);
        config.batch_norm = batch_norm;
        let vgg = formula_vgg(config.clone());
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.safetensors");
        vgg.save_safetensors(&first).unwrap();
        let (again, report) = Vgg::load(&first, config.clone(), &Device::Cpu).unwrap();
        assert_eq!(report.format, CheckpointFormat::Safetensors);
        assert_eq!(report.scheme, NamingScheme::Torchvision);
        same_tensors(&vgg.to_named_tensors(), &again.to_named_tensors());
        let second = dir.path().join("b.safetensors");
        again.save_safetensors(&second).unwrap();
        let (third, _) = Vgg::load(&second, config, &Device::Cpu).unwrap();
        same_tensors(&vgg.to_named_tensors(), &third.to_named_tensors());
        // Nothing but the two checkpoints is left behind (the temp file was renamed).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}

#[test]
fn zip_pth_written_by_torch_loads_exactly() {
    let (vgg, report) = Vgg::load(&fixture("model_tiny.pth"), tiny(), &Device::Cpu).unwrap();
    assert_eq!(report.format, CheckpointFormat::Pth);
    same_tensors(
        &vgg.to_named_tensors(),
        &formula_vgg(tiny()).to_named_tensors(),
    );
}

#[test]
fn f16_and_bf16_files_are_converted_to_f32() {
    let want = formula_vgg(narrow(10)).to_named_tensors();
    for dtype in [DType::F16, DType::BF16] {
        let half: HashMap<String, Tensor> = want
            .iter()
            .map(|(n, t)| (n.clone(), t.to_dtype(dtype).unwrap()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.safetensors");
        candle_core::safetensors::save(&half, &path).unwrap();
        let (vgg, report) = Vgg::load(&path, narrow(10), &Device::Cpu).unwrap();
        assert_eq!(report.stored_dtypes, vec![dtype.as_str().to_string()]);
        for ((name, got), (_, w)) in vgg.to_named_tensors().iter().zip(&want) {
            assert_eq!(got.dtype(), DType::F32);
            let rounded = w.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
            let d = (got - rounded)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0, "{name}: conversion must be exact widening");
        }
    }
}

#[test]
fn timm_names_in_memory_map_to_the_same_network() {
    let config = narrow(10);
    let tv = formula_vgg(config.clone()).to_named_tensors();
    let c = config.feature_channels();
    let timm: Vec<(String, Tensor)> = tv
        .iter()
        .map(|(n, t)| match n.as_str() {
            "classifier.0.weight" => (
                "pre_logits.fc1.weight".into(),
                t.reshape((32, c, 7, 7)).unwrap(),
            ),
            "classifier.0.bias" => ("pre_logits.fc1.bias".into(), t.clone()),
            "classifier.3.weight" => (
                "pre_logits.fc2.weight".into(),
                t.reshape((32, 32, 1, 1)).unwrap(),
            ),
            "classifier.3.bias" => ("pre_logits.fc2.bias".into(), t.clone()),
            "classifier.6.weight" => ("head.fc.weight".into(), t.clone()),
            "classifier.6.bias" => ("head.fc.bias".into(), t.clone()),
            _ => (n.clone(), t.clone()),
        })
        .collect();
    let (vgg, report) = Vgg::from_named_tensors(timm, config, &Device::Cpu).unwrap();
    assert_eq!(report.scheme, NamingScheme::Timm);
    same_tensors(&vgg.to_named_tensors(), &tv);
}

#[test]
fn a_head_of_another_size_is_replaced_by_a_seeded_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ten.safetensors");
    formula_vgg(narrow(10)).save_safetensors(&path).unwrap();

    let load = |classes: usize, seed: u64| {
        let mut config = narrow(classes);
        config.seed = seed;
        Vgg::load(&path, config, &Device::Cpu).unwrap()
    };
    let (kept, report) = load(10, 0);
    assert_eq!(
        report.head_replaced, None,
        "a head of the right size is kept"
    );
    same_tensors(
        &kept.to_named_tensors(),
        &formula_vgg(narrow(10)).to_named_tensors(),
    );

    let (a, report) = load(5, 1);
    assert_eq!(report.head_replaced, Some((10, 5)));
    assert!(report.to_string().contains("replaced"));
    let (b, _) = load(5, 1);
    let (c, _) = load(5, 2);
    let head = |v: &Vgg| {
        v.to_named_tensors()
            .into_iter()
            .filter(|(n, _)| n.starts_with("classifier.6."))
            .collect::<Vec<_>>()
    };
    same_tensors(&head(&a), &head(&b));
    assert_eq!(head(&a)[0].1.dims(), &[5, 32]);
    let w = head(&a)[0]
        .1
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let bound = 1.0 / 32f32.sqrt();
    assert!(
        w.iter().all(|v| v.abs() <= bound),
        "uniform in ±1/sqrt(hidden)"
    );
    assert!(
        w.iter().any(|v| v.abs() > bound / 2.0),
        "spread over the range"
    );
    let wc = head(&c)[0]
        .1
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(w, wc, "another seed, another head");
    // The rest is the checkpoint's.
    let body = |v: &Vgg| {
        v.to_named_tensors()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("classifier.6."))
            .collect::<Vec<_>>()
    };
    same_tensors(&body(&a), &body(&kept));
}

#[test]
fn every_mismatch_is_listed_at_once() {
    let mut tensors: HashMap<String, Tensor> = formula_vgg(narrow(10))
        .to_named_tensors()
        .into_iter()
        .collect();
    tensors.remove("features.2.bias"); // missing
    tensors.insert(
        "features.99.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    ); // unexpected
    tensors.insert(
        "features.5.weight".into(),
        Tensor::zeros((8, 4, 5, 5), DType::F32, &Device::Cpu).unwrap(),
    ); // shape
    tensors.insert(
        "classifier.3.bias".into(),
        Tensor::zeros(32, DType::U32, &Device::Cpu).unwrap(),
    ); // dtype
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = Vgg::load(&path, narrow(10), &Device::Cpu).unwrap_err();
    let ModelError::Mismatch { mismatches, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(mismatches.len(), 4, "{err}");
    assert!(mismatches.contains(&Mismatch::Missing {
        name: "features.2.bias".into(),
        expected: vec![4]
    }));
    assert!(mismatches.contains(&Mismatch::Unexpected {
        name: "features.99.weight".into(),
        found: vec![3]
    }));
    assert!(mismatches.contains(&Mismatch::Shape {
        name: "features.5.weight".into(),
        expected: vec![8, 4, 3, 3],
        found: vec![8, 4, 5, 5]
    }));
    assert!(mismatches
        .iter()
        .any(|m| matches!(m, Mismatch::DType { name, .. } if name == "classifier.3.bias")));
    let text = err.to_string();
    for needle in [
        "features.2.bias",
        "features.99.weight",
        "features.5.weight",
        "classifier.3.bias",
        "bad.safetensors",
    ] {
        assert!(text.contains(needle), "message lacks {needle}: {text}");
    }
}

#[test]
fn a_file_neither_safetensors_nor_zip_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, b"hello, I am not a checkpoint").unwrap();
    let err = Vgg::load(&path, narrow(10), &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, ModelError::UnrecognisedFormat { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("weights.bin"));
    assert!(err.to_string().contains("neither a safetensors"));
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = Vgg::load(
        std::path::Path::new("/nonexistent/vgg.safetensors"),
        narrow(10),
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/vgg.safetensors"));
}

#[test]
fn weights_holding_nan_or_inf_are_refused_naming_the_tensors() {
    let config = narrow(10);
    let mut named = formula_vgg(config.clone()).to_named_tensors();
    for (name, t) in named.iter_mut() {
        let bad = match name.as_str() {
            "features.2.weight" => f32::NAN,
            "classifier.3.bias" => f32::INFINITY,
            _ => continue,
        };
        let mut v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v[1] = bad;
        *t = Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.safetensors");
    finetune_model::write_safetensors(&path, &named, None).unwrap();
    let err = Vgg::load(&path, config, &Device::Cpu).err().unwrap();
    assert!(matches!(err, ModelError::NonFinite { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("broken.safetensors")
            && err.contains("features.2.weight, classifier.3.bias")
            && !err.contains("features.0"),
        "{err}"
    );
}

#[test]
fn a_nan_input_gives_nan_logits_as_in_pytorch() {
    // PyTorch's ReLU and max-pool propagate NaN; f32::max would hide it.
    let vgg = formula_vgg(narrow(10));
    let mut x = vec![0.5f32; 2 * 3 * 32 * 32];
    x[100] = f32::NAN;
    let x = Tensor::from_vec(x, (2, 3, 32, 32), &Device::Cpu).unwrap();
    let train = finetune_model::Mode::Train { dropout_seed: 1 };
    for mode in [finetune_model::Mode::Eval, train] {
        let logits: Vec<Vec<f32>> = vgg.forward_t(&x, &mode).unwrap().to_vec2().unwrap();
        assert!(logits[0].iter().all(|v| v.is_nan()), "{:?}", logits[0]);
        assert!(logits[1].iter().all(|v| v.is_finite()), "{:?}", logits[1]);
    }
}
