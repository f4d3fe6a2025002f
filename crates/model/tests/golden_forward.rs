//! Forward parity with torchvision's VGG16 at full width, eval mode, weights
//! from the shared formula, references from `tools/golden/model.py` (float64).
//!
//! Tolerance: 1e-4 of the logits' largest magnitude. Our f32 pass through
//! 16 layers accumulates rounding of order 1e-6 relative; a wrong bin, a
//! missing bias or a transposed flatten changes logits by far more.

mod common;

use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use common::formula::{formula_input, formula_state_dict};
use common::{assert_close, golden};
use finetune_model::{Mode, NamingScheme, Vgg, VggConfig};

const TOL: f32 = 1e-4;

fn formula_weights() -> Vec<(String, Tensor)> {
    formula_state_dict(&Vgg::state_dict_layout(&VggConfig::vgg16(10)))
}

/// One full-width VGG16 shared by the tests of this binary (528 MB, built once).
fn vgg16() -> &'static Vgg {
    static MODEL: OnceLock<Vgg> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (vgg, report) =
            Vgg::from_named_tensors(formula_weights(), VggConfig::vgg16(10), &Device::Cpu)
                .expect("formula weights fit vgg16");
        assert_eq!(report.scheme, NamingScheme::Torchvision);
        assert_eq!(report.head_replaced, None);
        vgg
    })
}

fn check(tag: &str, shape: &[usize], vgg: &Vgg) {
    let x = formula_input(shape, 1000);
    let logits = vgg.forward_t(&x, &Mode::Eval).expect("forward");
    let want = &golden()[&format!("{tag}.logits")];
    // Printed for the README's "seen" column (`cargo test -- --nocapture`).
    eprintln!("{tag}: relative error {:e}", common::rel_err(&logits, want));
    assert_close(&logits, want, TOL, tag);
}

#[test]
fn vgg16_matches_torchvision_at_96x96() {
    // 96 -> features 3x3 -> adaptive pool up-samples to 7x7.
    check("fwd96", &[2, 3, 96, 96], vgg16());
}

#[test]
fn vgg16_matches_torchvision_at_224x224() {
    // 224 -> features 7x7 -> adaptive pool is the identity.
    check("fwd224", &[1, 3, 224, 224], vgg16());
}

#[test]
fn vgg16_matches_torchvision_at_64x96() {
    // Non-square: features 2x3, bins differ per axis.
    check("fwd64x96", &[2, 3, 64, 96], vgg16());
}

#[test]
fn vgg16_from_timm_named_safetensors_matches_torchvision() {
    // The same weights under timm's names and conv shapes, through a real file.
    let tensors: std::collections::HashMap<String, Tensor> = formula_weights()
        .into_iter()
        .map(|(name, t)| match name.as_str() {
            "classifier.0.weight" => (
                "pre_logits.fc1.weight".into(),
                t.reshape((4096, 512, 7, 7)).unwrap(),
            ),
            "classifier.0.bias" => ("pre_logits.fc1.bias".into(), t),
            "classifier.3.weight" => (
                "pre_logits.fc2.weight".into(),
                t.reshape((4096, 4096, 1, 1)).unwrap(),
            ),
            "classifier.3.bias" => ("pre_logits.fc2.bias".into(), t),
            "classifier.6.weight" => ("head.fc.weight".into(), t),
            "classifier.6.bias" => ("head.fc.bias".into(), t),
            _ => (name, t),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timm.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    drop(tensors);
    let (vgg, report) = Vgg::load(&path, VggConfig::vgg16(10), &Device::Cpu).expect("load timm");
    assert_eq!(report.scheme, NamingScheme::Timm);
    check("fwd96", &[2, 3, 96, 96], &vgg);
}
