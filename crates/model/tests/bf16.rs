//! `Precision::Bf16` end to end on the narrow VGG16 of the golden
//! backward fixture (widths / 16, hidden 32, 64x64, batch 2; its convs go
//! through both im2col and Winograd, its classifier through the linear
//! GEMMs), against torchvision's values. Its own test binary: the switch
//! is process-wide. The GEMM itself is checked exactly, against an f64
//! product of the rounded operands, in the crate's unit tests.
//!
//! The gradients of this network are sensitive: rounding only its weights
//! and input to bfloat16, then computing in f32, already moves the
//! gradients of the conv layers and of `classifier.0`/`.3` by 7e-2 to
//! 2.6e-1 of their scale (ReLU and max-pool choices flip and send whole
//! gradient values elsewhere), and bf16 arithmetic moves them by as much
//! (8e-2 to 3e-1). So the logits, the loss and the head's gradient, which
//! no flip reaches, are held to bfloat16's rounding; the other gradients
//! only to a bound that a wrong layout (errors of order 1) would break.

mod common;

use common::{formula_step, golden, narrow_backward_config, rel_err};
use finetune_model::{bf16_supported, set_precision, Precision, VggVariant};

/// Largest error of the logits, the loss and the head's gradient in bf16,
/// relative to the largest magnitude of the reference: a few of
/// bfloat16's 2^-9 rounding steps compounded over 16 layers (measured: 1e-2
/// at most).
const BF16_TOL: f32 = 3e-2;

/// The same for the gradients that ReLU and max-pool flips reach
/// (measured: 3e-1 at most).
const FLIPPED_TOL: f32 = 0.5;

/// Every checked tensor's error against the fixture, by name.
fn errors() -> Vec<(String, f32)> {
    let (vgg, logits, loss) = formula_step(narrow_backward_config(VggVariant::Vgg16, false));
    let gold = golden();
    let mut out = vec![
        (
            "logits".to_string(),
            rel_err(&logits, &gold["bwd16.logits"]),
        ),
        (
            "loss".to_string(),
            rel_err(&loss.reshape(1).unwrap(), &gold["bwd16.loss"]),
        ),
    ];
    let grads = loss.backward().unwrap();
    for (name, var) in vgg.named_parameters() {
        let got = grads.get(var.as_tensor()).expect("a gradient");
        out.push((
            name.clone(),
            rel_err(got, &gold[&format!("bwd16.grad.{name}")]),
        ));
    }
    out
}

#[test]
fn bf16_stays_within_bfloat16_rounding_of_torchvision_and_is_not_f32() {
    if !bf16_supported() {
        let err = set_precision(Precision::Bf16).expect_err("no AVX512_BF16 here");
        assert!(err.to_string().contains("AVX512_BF16"), "{err}");
        assert_eq!(finetune_model::precision(), Precision::F32);
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    set_precision(Precision::F32).unwrap();
    let f32_errors = errors();
    set_precision(Precision::Bf16).unwrap();
    assert_eq!(finetune_model::precision(), Precision::Bf16);
    let bf16_errors = errors();
    set_precision(Precision::F32).unwrap();
    assert_eq!(f32_errors.len(), 2 + 32);
    for ((name, e32), (_, e16)) in f32_errors.iter().zip(&bf16_errors) {
        eprintln!("{name}: f32 {e32:.1e}, bf16 {e16:.1e}");
        let flips = name.starts_with("features.")
            || name.starts_with("classifier.0.")
            || name.starts_with("classifier.3.");
        let tol = if flips { FLIPPED_TOL } else { BF16_TOL };
        assert!(*e16 <= tol, "{name}: bf16 error {e16:e} > {tol:e}");
        // bfloat16's rounding shows on every tensor: f32 stays near 1e-6.
        assert!(
            *e16 > 10.0 * e32.max(1e-7),
            "{name}: bf16 {e16:e} vs f32 {e32:e}"
        );
    }
}

#[test]
fn precision_names_parse_and_print() {
    for p in [Precision::F32, Precision::Bf16] {
        assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
    }
    let err = "fp16".parse::<Precision>().unwrap_err();
    assert!(err.contains("fp16") && err.contains("bf16"), "{err}");
}
