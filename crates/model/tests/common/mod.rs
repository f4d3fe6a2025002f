//! Helpers shared by the integration tests: the weight formula, the golden
//! fixture, and a closeness check.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod formula;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// The fixture written by `tools/golden/model.py`.
pub fn golden() -> HashMap<String, Tensor> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_golden.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu)
        .expect("golden fixture (run tools/golden/model.py)")
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
