//! Optimiser updates against PyTorch (`tools/golden/train.py`).
//!
//! Tolerance: 1e-6 of each tensor's largest magnitude. Both sides compute in
//! f32, but PyTorch fuses some steps (`lerp`, `addcmul`, `addcdiv`, FMA in
//! vector kernels) and so rounds in a different order; over 5 steps that
//! accounts for a few 1e-8, far below any wrong formula (a missing bias
//! correction, decay or dampening changes results by 1e-3 or more).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use finetune_model::write_safetensors;
use finetune_train::{
    AdamWConfig, Optimizer, OptimizerConfig, OptimizerState, ParamGroup, SgdConfig,
};
use serde_json::Value;

const STEPS: usize = 5;
const NAMES: [&str; 2] = ["layer.weight", "layer.bias"];

struct Fixture {
    tensors: HashMap<String, Tensor>,
    cases: serde_json::Map<String, Value>,
}

fn fixture() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let cases = meta.metadata().as_ref().unwrap()["cases"].clone();
    let cases: Value = serde_json::from_str(&cases).unwrap();
    Fixture {
        tensors: candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap(),
        cases: cases.as_object().unwrap().clone(),
    }
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap()
}

fn config(case: &Value) -> OptimizerConfig {
    match case["kind"].as_str().unwrap() {
        "sgd" => OptimizerConfig::Sgd(SgdConfig {
            lr: f(case, "lr"),
            momentum: f(case, "momentum"),
            dampening: f(case, "dampening"),
            nesterov: case["nesterov"].as_bool().unwrap(),
            weight_decay: f(case, "wd"),
        }),
        "adamw" => OptimizerConfig::AdamW(AdamWConfig {
            lr: f(case, "lr"),
            beta1: case["betas"][0].as_f64().unwrap(),
            beta2: case["betas"][1].as_f64().unwrap(),
            eps: f(case, "eps"),
            weight_decay: f(case, "wd"),
        }),
        k => panic!("unknown kind {k}"),
    }
}

/// Fresh parameters holding `values`, grouped as the case says.
fn groups(case: &Value, values: &[Tensor]) -> (Vec<Var>, Vec<ParamGroup>) {
    let vars: Vec<Var> = values
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let named = |i: usize| (NAMES[i].to_string(), vars[i].clone());
    let groups = match case.get("bias_group") {
        Some(bg) if !bg.is_null() => vec![
            ParamGroup::new("weights", vec![named(0)]),
            ParamGroup::new("biases", vec![named(1)])
                .with_lr_scale(f(bg, "lr_scale"))
                .with_weight_decay(f(bg, "wd")),
        ],
        _ => vec![ParamGroup::new("all", vec![named(0), named(1)])],
    };
    (vars, groups)
}

/// One optimiser step where the gradient of every parameter is the fixture's:
/// loss = sum(p * g) has dloss/dp = g exactly.
fn step(fx: &Fixture, case: &Value, opt: &mut dyn Optimizer, vars: &[Var], s: usize) {
    if let Some(lrs) = case.get("lrs") {
        opt.set_lr(lrs[s].as_f64().unwrap());
    }
    let mut loss = Tensor::new(0f32, &Device::Cpu).unwrap();
    for (name, v) in NAMES.iter().zip(vars) {
        let g = &fx.tensors[&format!("grad.{s}.{name}")];
        loss = loss
            .add(&v.as_tensor().mul(g).unwrap().sum_all().unwrap())
            .unwrap();
    }
    let grads = loss.backward().unwrap();
    opt.step(&grads).unwrap();
}

fn assert_close(ours: &Tensor, torch: &Tensor, what: &str) {
    let diff = finetune_model::relative_diff(ours, torch).unwrap();
    assert!(diff <= 1e-6, "{what}: relative difference {diff:e}");
}

fn params0(fx: &Fixture) -> Vec<Tensor> {
    NAMES
        .iter()
        .map(|n| fx.tensors[&format!("params0.{n}")].copy().unwrap())
        .collect()
}

#[test]
fn every_case_matches_torch_step_by_step() {
    let fx = fixture();
    assert!(fx.cases.len() >= 7);
    for (name, case) in &fx.cases {
        let (vars, groups) = groups(case, &params0(&fx));
        let mut opt = config(case).build(groups).unwrap();
        for s in 0..STEPS {
            step(&fx, case, opt.as_mut(), &vars, s);
            for (p, v) in NAMES.iter().zip(&vars) {
                let want = &fx.tensors[&format!("{name}.param.{s}.{p}")];
                assert_close(v.as_tensor(), want, &format!("{name} step {s} {p}"));
            }
        }
    }
}

#[test]
fn resume_from_the_saved_state_is_exact() {
    let fx = fixture();
    for (name, case) in &fx.cases {
        // Uninterrupted.
        let (vars, g) = groups(case, &params0(&fx));
        let mut opt = config(case).build(g).unwrap();
        for s in 0..STEPS {
            step(&fx, case, opt.as_mut(), &vars, s);
        }
        // Interrupted after 2 steps: the state and the configuration go to
        // files, then a fresh optimiser resumes from them.
        let (vars_a, g) = groups(case, &params0(&fx));
        let mut opt_a = config(case).build(g).unwrap();
        for s in 0..2 {
            step(&fx, case, opt_a.as_mut(), &vars_a, s);
        }
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("optimizer.safetensors");
        let saved = opt_a.state().unwrap();
        let named: Vec<(String, Tensor)> = saved.tensors.into_iter().collect();
        write_safetensors(&state_file, &named, None).unwrap();
        let config_file = dir.path().join("config.json");
        std::fs::write(&config_file, serde_json::to_vec(&config(case)).unwrap()).unwrap();
        let current: Vec<Tensor> = vars_a
            .iter()
            .map(|v| v.as_tensor().copy().unwrap())
            .collect();
        drop(opt_a);

        let cfg: OptimizerConfig =
            serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
        let state = OptimizerState {
            kind: cfg.kind(),
            tensors: candle_core::safetensors::load(&state_file, &Device::Cpu).unwrap(),
        };
        let (vars_b, g) = groups(case, &current);
        let mut opt_b = cfg.build(g).unwrap();
        opt_b.load_state(&state).unwrap();
        for s in 2..STEPS {
            step(&fx, case, opt_b.as_mut(), &vars_b, s);
        }
        for (v, w) in vars.iter().zip(&vars_b) {
            let a = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = w
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(a, b, "{name}: resumed run differs from uninterrupted run");
        }
    }
}
