//! Helpers shared by the integration tests: the weight formula, the golden
//! fixture, and a closeness check.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod formula;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use finetune_model::{Mode, Vgg, VggConfig, VggVariant};

/// The fixture written by `tools/golden/model.py`.
pub fn golden() -> HashMap<String, Tensor> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_golden.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu)
        .expect("golden fixture (run tools/golden/model.py)")
}

/// The narrow network of the golden backward fixture (`tools/golden/model.py`):
/// the cfg structure of `variant`, widths / 16, hidden 32, dropout 0.
pub fn narrow_backward_config(variant: VggVariant, batch_norm: bool) -> VggConfig {
    let mut config = VggConfig::new(variant, batch_norm, 10);
    config.width_divisor = 16;
    config.classifier_hidden = 32;
    config.dropout = 0.0;
    config
}

/// The golden backward fixture's step on `config`: formula weights, the
/// formula input `[2, 3, 64, 64]`, train mode, cross-entropy against
/// classes 3 and 7. Returns the network, its logits and the loss.
pub fn formula_step(config: VggConfig) -> (Vgg, Tensor, Tensor) {
    let layout = Vgg::state_dict_layout(&config);
    let (vgg, _) =
        Vgg::from_named_tensors(formula::formula_state_dict(&layout), config, &Device::Cpu)
            .expect("formula weights fit");
    let x = formula::formula_input(&[2, 3, 64, 64], 1000);
    let target = Tensor::new(&[3u32, 7], &Device::Cpu).unwrap();
    let logits = vgg
        .forward_t(&x, &Mode::Train { dropout_seed: 0 })
        .expect("forward");
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    (vgg, logits, loss)
}

/// Path of a committed fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Largest |got - want| divided by the largest |want|: error relative to
/// the tensor's scale ([`finetune_model::relative_diff`]).
pub fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    finetune_model::relative_diff(got, want).expect("tensors of the same shape")
}

/// Asserts `rel_err(got, want) <= tol`, naming `what`.
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    let e = rel_err(got, want);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}
