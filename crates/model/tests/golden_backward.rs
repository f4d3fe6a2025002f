//! Backward parity with torchvision on a narrow VGG (same cfg structure,
//! widths / 16, hidden 32): train mode, dropout 0, cross-entropy, one backward.
//!
//! Tolerance: 1e-4 of each gradient's largest magnitude (reference in float64);
//! f32 rounding through the backward pass stays near 1e-6 of that scale.

mod common;

use candle_core::{backprop::GradStore, Tensor};
use common::{assert_close, formula_step, golden, narrow_backward_config as narrow};
use finetune_model::{Vgg, VggConfig, VggVariant};

const TOL: f32 = 1e-4;

fn run(tag: &str, config: VggConfig) -> (Vgg, GradStore) {
    let (vgg, logits, loss) = formula_step(config);
    let gold = golden();
    assert_close(&logits, &gold[&format!("{tag}.logits")], TOL, "logits");
    assert_close(
        &loss.reshape(1).unwrap(),
        &gold[&format!("{tag}.loss")],
        TOL,
        "loss",
    );
    let grads = loss.backward().unwrap();
    for (name, var) in vgg.named_parameters() {
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let want = &gold[&format!("{tag}.grad.{name}")];
        if let Some(weight_grad) = zero_in_exact_arithmetic(&vgg, &grads, &name) {
            // A conv bias followed by batch norm gets exactly zero gradient (the
            // batch mean removes it); both sides hold only rounding noise, so
            // compare it with the scale of the conv's weight gradient instead.
            let noise = max_abs(got);
            assert!(noise <= TOL * max_abs(&weight_grad), "{name}: {noise:e}");
            continue;
        }
        assert_close(got, want, TOL, &name);
    }
    (vgg, grads)
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// For the bias of a conv followed by batch norm, the gradient of that conv's weight.
fn zero_in_exact_arithmetic(vgg: &Vgg, grads: &GradStore, name: &str) -> Option<Tensor> {
    let layer = name.strip_suffix(".bias")?;
    let index: usize = layer.strip_prefix("features.")?.parse().ok()?;
    let params = vgg.named_parameters();
    let has_bn_after = params
        .iter()
        .any(|(n, _)| n == &format!("features.{}.weight", index + 1));
    let is_conv = params
        .iter()
        .any(|(n, v)| n == &format!("{layer}.weight") && v.as_tensor().rank() == 4);
    if !(vgg.config().batch_norm && has_bn_after && is_conv) {
        return None;
    }
    let (_, w) = params
        .into_iter()
        .find(|(n, _)| n == &format!("{layer}.weight"))?;
    grads.get(w.as_tensor()).cloned()
}

#[test]
fn narrow_vgg16_gradients_match_torchvision() {
    let (vgg, _) = run("bwd16", narrow(VggVariant::Vgg16, false));
    assert_eq!(vgg.named_parameters().len(), 32);
}

#[test]
fn narrow_vgg11_bn_gradients_and_running_stats_match_torchvision() {
    let (vgg, _) = run("bwd11bn", narrow(VggVariant::Vgg11, true));
    let gold = golden();
    let mut checked = 0;
    for (name, t) in vgg.to_named_tensors() {
        if name.contains("running") {
            assert_close(&t, &gold[&format!("bwd11bn.after.{name}")], TOL, &name);
            checked += 1;
        }
    }
    assert_eq!(checked, 16, "8 batch norms, mean and var each");
}
