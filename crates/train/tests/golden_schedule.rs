//! Learning-rate schedules against PyTorch's schedulers (`tools/golden/train.py`).
//!
//! Tolerance: 1e-9 relative. PyTorch steps its schedulers recursively (each lr
//! from the previous one) while ours are closed forms; the two agree to about
//! 1e-15 per step, so 1e-9 leaves room without hiding a wrong formula.

use std::path::PathBuf;

use finetune_train::{LrSchedule, Schedule, Warmup, WarmupUnit};
use serde_json::Value;

fn fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedules.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn list(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_seq(ours: &[f64], torch: &[f64], what: &str) {
    assert_eq!(ours.len(), torch.len(), "{what}");
    for (i, (a, b)) in ours.iter().zip(torch).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1e-12),
            "{what}[{i}]: ours {a} torch {b}"
        );
    }
}

#[test]
fn per_epoch_schedules_match_torch() {
    let fx = fixture();
    for key in ["cosine_t10_min1e-3", "cosine_t200_recipe"] {
        let c = &fx[key];
        let s = Schedule::Cosine {
            t_max: c["t_max"].as_u64().unwrap() as usize,
            eta_min: c["eta_min"].as_f64().unwrap(),
        };
        let torch = list(&c["lrs"]);
        let base = c["base_lr"].as_f64().unwrap();
        // The step within the epoch must not matter for an epoch schedule.
        let ours: Vec<f64> = (0..torch.len()).map(|e| s.lr(base, e, 5, 10)).collect();
        assert_seq(&ours, &torch, key);
    }
    let c = &fx["step_3_0.1"];
    let s = Schedule::Step {
        step_size: 3,
        gamma: c["gamma"].as_f64().unwrap(),
    };
    let torch = list(&c["lrs"]);
    let ours: Vec<f64> = (0..torch.len()).map(|e| s.lr(0.1, e, 0, 1)).collect();
    assert_seq(&ours, &torch, "step");
}

#[test]
fn one_cycle_lr_and_momentum_match_torch() {
    let fx = fixture();
    for key in ["onecycle_default", "onecycle_pct0.25"] {
        let c = &fx[key];
        let epochs = c["epochs"].as_u64().unwrap() as usize;
        let spe = c["steps_per_epoch"].as_u64().unwrap() as usize;
        let s = Schedule::OneCycle {
            epochs,
            pct_start: c["pct_start"].as_f64().unwrap(),
            div_factor: c["div_factor"].as_f64().unwrap(),
            final_div_factor: c["final_div_factor"].as_f64().unwrap(),
        };
        let max_lr = c["max_lr"].as_f64().unwrap();
        let positions: Vec<(usize, usize)> = (0..epochs)
            .flat_map(|e| (0..spe).map(move |b| (e, b)))
            .collect();
        let lrs: Vec<f64> = positions
            .iter()
            .map(|&(e, b)| s.lr(max_lr, e, b, spe))
            .collect();
        let moms: Vec<f64> = positions
            .iter()
            .map(|&(e, b)| s.momentum(e, b, spe).unwrap())
            .collect();
        assert_seq(&lrs, &list(&c["lrs"]), key);
        assert_seq(&moms, &list(&c["momentums"]), key);
    }
    assert_eq!(
        Schedule::one_cycle(3),
        Schedule::OneCycle {
            epochs: 3,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    );
}

#[test]
fn warmup_by_epochs_scales_the_cosine() {
    let s = LrSchedule {
        schedule: Schedule::Cosine {
            t_max: 10,
            eta_min: 0.0,
        },
        warmup: Some(Warmup {
            length: 2,
            unit: WarmupUnit::Epochs,
            start_factor: 0.5,
        }),
    };
    let plain = LrSchedule::new(s.schedule);
    assert_eq!(s.lr(1.0, 0, 3, 4), 0.5 * plain.lr(1.0, 0, 3, 4));
    assert_eq!(s.lr(1.0, 1, 0, 4), 0.75 * plain.lr(1.0, 1, 0, 4));
    assert_eq!(s.lr(1.0, 2, 0, 4), plain.lr(1.0, 2, 0, 4));
}
