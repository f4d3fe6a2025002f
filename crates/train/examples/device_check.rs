//! Checks the network and the optimiser on an accelerator against the CPU, and
//! measures training-step speed there; `tools/gpu/check.sh` runs it on a GPU
//! machine. Every part also runs with `--device cpu`, so it is tested without one.
//!
//! ```text
//! device_check correctness [--device cuda]
//! device_check speed [--device cuda] [--batches 64,16] [--side 96] [--warmup 2] [--iters 10] [--modes full,head] [--precision f32|bf16]
//! device_check write-stl10 DIR TRAIN TEST      # synthetic STL10 for `finetune train`
//! device_check write-vgg16 FILE                # random 1000-class VGG16, torchvision names
//! ```
//!
//! `correctness` builds the same narrow VGG16 (same seed, so the same weights)
//! on the CPU and on the device, and compares logits, loss and every gradient
//! of one training step, then the weights after three SGD steps (momentum
//! 0.9, weight decay 5e-4). Each comparison prints the largest absolute
//! difference divided by the largest absolute CPU value, and `PASS` or `FAIL`;
//! the exit status is non-zero when any fails.
//!
//! `speed` times one optimisation step of full-width VGG16 (10 classes,
//! random weights, plain SGD at lr 1e-3 as `tools/bench/vgg_step.py` does) in
//! modes `full` (every layer trains) and `head` (only `classifier.6`), and
//! prints `candle <device> <mode> batch <n> <images/s median> (min .. max)`
//! with the mean time of forward, backward and update (the device is
//! synchronised after each, so the split is honest on a GPU).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use candle_core::{Device, Tensor};
use finetune_model::{Mode, Vgg, VggConfig};
use finetune_train::{Optimizer, ParamGroup, Sgd, SgdConfig};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Largest difference, relative to the largest CPU magnitude, accepted for the
/// forward pass (logits, loss). Both sides compute in f32 (TF32 is off), but
/// cuBLAS and our CPU GEMMs sum in different orders: a few ulps per layer.
const FORWARD_TOL: f32 = 1e-4;
/// The same for gradients and for weights after three steps: the backward
/// pass goes through twice as many reductions (and, on the device, candle's
/// conv-transpose kernel instead of our GEMMs), so rounding compounds more.
const GRAD_TOL: f32 = 1e-3;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("device_check: FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("device_check: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Flags shared by the parts; `rest` keeps positional arguments.
struct Args {
    device: String,
    batches: Vec<usize>,
    side: usize,
    warmup: usize,
    iters: usize,
    modes: Vec<String>,
    precision: finetune_model::Precision,
    rest: Vec<String>,
}

fn parse(argv: &[String]) -> AnyResult<Args> {
    let mut a = Args {
        device: "cpu".into(),
        batches: vec![64, 16],
        side: 96,
        warmup: 2,
        iters: 10,
        modes: vec!["full".into(), "head".into()],
        precision: finetune_model::Precision::F32,
        rest: Vec::new(),
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            a.rest.push(arg.clone());
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("flag {arg} needs a value"))?;
        match arg.as_str() {
            "--device" => a.device = value.clone(),
            "--batches" => {
                a.batches = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--side" => a.side = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--iters" => a.iters = value.parse()?,
            "--modes" => a.modes = value.split(',').map(str::to_string).collect(),
            "--precision" => a.precision = value.parse()?,
            _ => return Err(format!("unknown flag {arg}").into()),
        }
    }
    Ok(a)
}

fn run() -> AnyResult<bool> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((part, flags)) = argv.split_first() else {
        return Err("usage: device_check correctness|speed|write-stl10|write-vgg16 ...".into());
    };
    let args = parse(flags)?;
    match part.as_str() {
        "correctness" => correctness(&open(&args.device)?),
        "speed" => speed(&open(&args.device)?, &args).map(|()| true),
        "write-stl10" => {
            let [dir, train, test] = args.rest.as_slice() else {
                return Err("usage: device_check write-stl10 DIR TRAIN TEST".into());
            };
            let at = finetune_data::synthetic::write_stl10(
                Path::new(dir),
                train.parse()?,
                test.parse()?,
                0,
            )?;
            println!("wrote {}", at.display());
            Ok(true)
        }
        "write-vgg16" => {
            let [file] = args.rest.as_slice() else {
                return Err("usage: device_check write-vgg16 FILE".into());
            };
            Vgg::new_random(VggConfig::vgg16(1000), 0, &Device::Cpu)?
                .save_safetensors(Path::new(file))?;
            println!("wrote {file}");
            Ok(true)
        }
        other => Err(format!("unknown part {other}").into()),
    }
}

/// The device named on the command line, with full-f32 GEMMs.
fn open(name: &str) -> AnyResult<Device> {
    // cuBLAS may otherwise use TF32 (10-bit mantissa) for f32 products; the
    // comparison with the CPU needs true f32 (candle's default, set anyway).
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    let device = match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)?,
        other => return Err(format!("unknown device {other} (cpu or cuda)").into()),
    };
    println!("device: {device:?}");
    Ok(device)
}

/// `max|a - b| / max|a|` over all elements (`a` is the CPU reference); NaN
/// when either side has one.
fn rel_diff(a: &Tensor, b: &Tensor) -> AnyResult<f32> {
    Ok(finetune_model::relative_diff(b, a)?)
}

/// Tallies comparisons and prints one line per group of them.
struct Verdict {
    ok: bool,
}

impl Verdict {
    fn check(&mut self, what: &str, diffs: &[(String, f32)], tol: f32) {
        let worst = diffs
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .cloned()
            .unwrap_or_default();
        let pass = diffs.iter().all(|(_, d)| *d <= tol);
        self.ok &= pass;
        println!(
            "{} {what}: max rel diff {:.2e} ({}) over {} tensors, tolerance {tol:.0e}",
            if pass { "PASS" } else { "FAIL" },
            worst.1,
            worst.0,
            diffs.len()
        );
        if !pass {
            for (name, d) in diffs.iter().filter(|(_, d)| *d > tol) {
                println!("    {name}: {d:.2e}");
            }
        }
    }
}

/// A narrow VGG16 small enough for the CPU side to be quick.
fn narrow_config() -> VggConfig {
    let mut config = VggConfig::vgg16(10);
    config.width_divisor = 8;
    config.classifier_hidden = 64;
    config
}

/// Deterministic images (a smooth pattern per image) and labels.
fn batch(n: usize, side: usize, device: &Device) -> AnyResult<(Tensor, Tensor)> {
    let len = n * 3 * side * side;
    let pixels: Vec<f32> = (0..len)
        .map(|i| ((i as f32) * 0.37).sin() + 0.25 * ((i / (side * side)) as f32 * 1.3).cos())
        .collect();
    let x = Tensor::from_vec(pixels, (n, 3, side, side), device)?;
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % 10).collect();
    let y = Tensor::from_vec(labels, n, device)?;
    Ok((x, y))
}

fn sgd(vgg: &Vgg, config: SgdConfig) -> AnyResult<Sgd> {
    let groups = vec![ParamGroup::new("all", vgg.trainable_parameters())];
    Ok(Sgd::new(groups, config)?)
}

fn correctness(device: &Device) -> AnyResult<bool> {
    let mut verdict = Verdict { ok: true };
    let config = narrow_config();
    let cpu = Vgg::new_random(config.clone(), 7, &Device::Cpu)?;
    let dev = Vgg::new_random(config, 7, device)?;
    // torchvision's N(0, 0.01) linear init makes a narrow net's logits ~1e-4
    // and the loss ln 10 whatever the features; larger weights make the
    // comparison see the features (scaling by a power of two is exact).
    for vgg in [&cpu, &dev] {
        for (name, var) in vgg.named_parameters() {
            if name.starts_with("classifier.") && name.ends_with(".weight") {
                var.set(&(var.as_tensor() * 16.0)?)?;
            }
        }
    }
    let (xc, yc) = batch(4, 32, &Device::Cpu)?;
    let (xd, yd) = (xc.to_device(device)?, yc.to_device(device)?);

    // Eval forward: no dropout, no graph.
    let eval_c = cpu.forward_t(&xc, &Mode::Eval)?;
    let eval_d = dev.forward_t(&xd, &Mode::Eval)?;
    verdict.check(
        "eval logits",
        &[("logits".into(), rel_diff(&eval_c, &eval_d)?)],
        FORWARD_TOL,
    );

    // One training step's forward (dropout masks come from the host RNG, so
    // both sides drop the same units), loss and gradients.
    let train = Mode::Train { dropout_seed: 11 };
    let logits_c = cpu.forward_t(&xc, &train)?;
    let logits_d = dev.forward_t(&xd, &train)?;
    let loss_c = candle_nn::loss::cross_entropy(&logits_c, &yc)?;
    let loss_d = candle_nn::loss::cross_entropy(&logits_d, &yd)?;
    println!(
        "loss: cpu {:.6}, device {:.6}",
        loss_c.to_scalar::<f32>()?,
        loss_d.to_device(&Device::Cpu)?.to_scalar::<f32>()?
    );
    verdict.check(
        "train logits and loss",
        &[
            ("logits".into(), rel_diff(&logits_c, &logits_d)?),
            ("loss".into(), rel_diff(&loss_c, &loss_d)?),
        ],
        FORWARD_TOL,
    );
    let grads_c = loss_c.backward()?;
    let grads_d = loss_d.backward()?;
    let mut diffs = Vec::new();
    for ((name, vc), (_, vd)) in cpu.named_parameters().iter().zip(dev.named_parameters()) {
        let (Some(gc), Some(gd)) = (grads_c.get(vc), grads_d.get(&vd)) else {
            return Err(format!("no gradient for {name}").into());
        };
        diffs.push((name.clone(), rel_diff(gc, gd)?));
    }
    verdict.check("gradients", &diffs, GRAD_TOL);

    // Three SGD steps with momentum and weight decay on both sides.
    let config = SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
        ..Default::default()
    };
    let (mut opt_c, mut opt_d) = (sgd(&cpu, config)?, sgd(&dev, config)?);
    for step in 0..3u64 {
        let mode = Mode::Train {
            dropout_seed: 100 + step,
        };
        let lc = candle_nn::loss::cross_entropy(&cpu.forward_t(&xc, &mode)?, &yc)?;
        let ld = candle_nn::loss::cross_entropy(&dev.forward_t(&xd, &mode)?, &yd)?;
        opt_c.step(&lc.backward()?)?;
        opt_d.step(&ld.backward()?)?;
    }
    let mut diffs = Vec::new();
    for ((name, vc), (_, vd)) in cpu.named_parameters().iter().zip(dev.named_parameters()) {
        diffs.push((name.clone(), rel_diff(vc.as_tensor(), vd.as_tensor())?));
    }
    verdict.check("weights after 3 SGD steps", &diffs, GRAD_TOL);
    Ok(verdict.ok)
}

fn speed(device: &Device, args: &Args) -> AnyResult<()> {
    // As `finetune train` does: large CPU buffers are reused, not faulted in anew.
    finetune_model::retain_freed_memory();
    finetune_model::set_precision(args.precision)?;
    let mut vgg = Vgg::new_random(VggConfig::vgg16(10), 0, device)?;
    for &n in &args.batches {
        let (x, y) = batch(n, args.side, device)?;
        for mode in &args.modes {
            let full = mode == "full";
            vgg.set_trainable(|name| full || name.starts_with("classifier.6."));
            // torch.optim.SGD(params, lr=1e-3), as in tools/bench/vgg_step.py.
            let mut opt = sgd(&vgg, SgdConfig::default())?;
            let mut rates = Vec::new();
            let mut split = [0f64; 3];
            for i in 0..args.warmup + args.iters {
                device.synchronize()?;
                let t0 = Instant::now();
                let logits = vgg.forward_t(
                    &x,
                    &Mode::Train {
                        dropout_seed: i as u64,
                    },
                )?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                // Reading the loss waits for the forward pass, as a training loop would.
                let _ = loss.to_device(&Device::Cpu)?.to_scalar::<f32>()?;
                let t1 = Instant::now();
                let grads = loss.backward()?;
                device.synchronize()?;
                let t2 = Instant::now();
                opt.step(&grads)?;
                drop(grads);
                device.synchronize()?;
                let t3 = Instant::now();
                if i < args.warmup {
                    // Printed at once, so a run cut short still shows the scale.
                    println!(
                        "  {mode} batch {n} warmup step {i}: forward {:.4} s, backward {:.4} s, update {:.4} s",
                        (t1 - t0).as_secs_f64(),
                        (t2 - t1).as_secs_f64(),
                        (t3 - t2).as_secs_f64()
                    );
                } else {
                    rates.push(n as f64 / (t3 - t0).as_secs_f64());
                    for (acc, d) in split.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                        *acc += d.as_secs_f64() / args.iters as f64;
                    }
                }
            }
            if rates.is_empty() {
                continue;
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "candle {} {mode} batch {n} {:.2} img/s ({:.2} .. {:.2}) over {}; mean s/step: forward {:.4}, backward {:.4}, update {:.4}",
                if device.is_cpu() { "cpu" } else { "cuda" },
                rates[rates.len() / 2],
                rates[0],
                rates[rates.len() - 1],
                rates.len(),
                split[0],
                split[1],
                split[2]
            );
        }
    }
    Ok(())
}
