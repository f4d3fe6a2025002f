//! Rust side of the VGG16 training-step benchmark; the PyTorch side
//! is `tools/bench/vgg_step.py`, and `tools/bench/vgg_step.sh` runs both.
//!
//! ```text
//! cargo run --release -p finetune-model --example vgg_step -- [--batch 16] [--side 96] [--warmup 1] [--iters 5] [--modes full,head] [--split] [--plain-malloc] [--im2col] [--precision f32|bf16]
//! ```
//! VGG16 (10 classes, random weights), one optimisation step per iteration:
//! `full` trains every layer (train mode, cross-entropy, backward, plain SGD),
//! `head` trains only `classifier.6` and runs the frozen rest without a graph.
//! Prints `candle <mode> <images/s median> (min .. max) over N` per mode;
//! `--split` adds the mean time of forward, backward and update, and the
//! forward speed of each conv block and of the frozen classifier (the
//! fastest of 9 runs each);
//! `--plain-malloc` skips [`finetune_model::retain_freed_memory`] (for comparison);
//! `--im2col` turns Winograd off ([`finetune_model::set_winograd`]);
//! `--precision bf16` runs the GEMMs in bfloat16 ([`finetune_model::set_precision`]).
//! Threads: candle's CPU backend uses rayon's pool (`RAYON_NUM_THREADS`).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::optim::{Optimizer, SGD};
use finetune_model::{Cut, Mode, Vgg, VggConfig};

struct Args {
    batch: usize,
    side: usize,
    warmup: usize,
    iters: usize,
    modes: Vec<String>,
    verbose: bool,
    plain_malloc: bool,
    im2col: bool,
    precision: finetune_model::Precision,
}

fn parse() -> Result<Args, Box<dyn std::error::Error>> {
    let mut a = Args {
        batch: 16,
        side: 96,
        warmup: 1,
        iters: 5,
        modes: vec!["full".into(), "head".into()],
        verbose: false,
        plain_malloc: false,
        im2col: false,
        precision: finetune_model::Precision::F32,
    };
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = argv.iter().position(|a| a == "--split") {
        argv.remove(at);
        a.verbose = true;
    }
    if let Some(at) = argv.iter().position(|a| a == "--im2col") {
        argv.remove(at);
        a.im2col = true;
    }
    if let Some(at) = argv.iter().position(|a| a == "--plain-malloc") {
        argv.remove(at);
        a.plain_malloc = true;
    }
    for pair in argv.chunks(2) {
        let [flag, value] = pair else {
            return Err(format!("flag without value: {pair:?}").into());
        };
        match flag.as_str() {
            "--batch" => a.batch = value.parse()?,
            "--side" => a.side = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--iters" => a.iters = value.parse()?,
            "--modes" => a.modes = value.split(',').map(str::to_string).collect(),
            "--precision" => a.precision = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    finetune_model::set_winograd(!args.im2col);
    finetune_model::set_precision(args.precision)?;
    // As `finetune train` should: large buffers are reused instead of faulted in anew.
    let retained = !args.plain_malloc && finetune_model::retain_freed_memory();
    let verbose = args.verbose;
    let device = Device::Cpu;
    let mut vgg = Vgg::new_random(VggConfig::vgg16(10), 0, &device)?;
    let x = Tensor::randn(0f32, 1., (args.batch, 3, args.side, args.side), &device)?;
    if verbose {
        block_rates(&vgg, &x)?;
    }
    let y = Tensor::from_vec(
        (0..args.batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
        args.batch,
        &device,
    )?;
    if verbose {
        println!("allocator keeps freed memory: {retained}");
    }
    for mode in &args.modes {
        let full = mode == "full";
        vgg.set_trainable(|n| full || n.starts_with("classifier.6."));
        let vars = vgg
            .trainable_parameters()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let mut sgd = SGD::new(vars, 1e-3)?;
        let mut rates = Vec::new();
        // Seconds spent in forward, backward and update, summed over the timed steps.
        let mut split = [0f64; 3];
        for i in 0..args.warmup + args.iters {
            let t0 = Instant::now();
            let logits = vgg.forward_t(
                &x,
                &Mode::Train {
                    dropout_seed: i as u64,
                },
            )?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let _ = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            let t1 = Instant::now();
            let grads = loss.backward()?;
            let t2 = Instant::now();
            sgd.step(&grads)?;
            drop(grads);
            let t3 = Instant::now();
            if i >= args.warmup {
                rates.push(args.batch as f64 / (t3 - t0).as_secs_f64());
                for (acc, d) in split.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                    *acc += d.as_secs_f64() / args.iters as f64;
                }
            }
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "candle {mode} {median:.2} img/s ({:.2} .. {:.2}) over {}",
            rates[0],
            rates[rates.len() - 1],
            rates.len()
        );
        if verbose {
            println!(
                "  mean s/step: forward {:.3}, backward {:.3}, update {:.3}",
                split[0], split[1], split[2]
            );
        }
    }
    Ok(())
}

/// The fastest of 9 timed runs of `f` (seconds), after one untimed run, and
/// its last result: on a shared machine the minimum is the figure least
/// disturbed by other processes.
fn fastest(
    mut f: impl FnMut() -> Result<Tensor, finetune_model::ModelError>,
) -> Result<(f64, Tensor), Box<dyn std::error::Error>> {
    let mut best = f64::INFINITY;
    let mut out = f()?;
    for _ in 0..9 {
        let t0 = Instant::now();
        out = f()?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok((best, out))
}

/// Forward speed of each conv block of VGG16 without autograd (convolutions,
/// ReLUs and the max-pool), in GFLOP/s of its convolutions, then of
/// `classifier.0` to `classifier.4` (eval mode: dropout is the identity).
fn block_rates(vgg: &Vgg, x: &Tensor) -> Result<(), Box<dyn std::error::Error>> {
    // (in, out) channels of VGG16's convolutions per block.
    let blocks: [&[(usize, usize)]; 5] = [
        &[(3, 64), (64, 64)],
        &[(64, 128), (128, 128)],
        &[(128, 256), (256, 256), (256, 256)],
        &[(256, 512), (512, 512), (512, 512)],
        &[(512, 512), (512, 512), (512, 512)],
    ];
    let (n, _, side, _) = x.dims4()?;
    let mut h = x.clone();
    for (k, convs) in blocks.iter().enumerate() {
        let (from, to) = (
            if k == 0 { Cut::Input } else { Cut::Block(k) },
            Cut::Block(k + 1),
        );
        let s = (side >> k) * (side >> k);
        let flops: usize = convs.iter().map(|(c, o)| 2 * n * o * c * 9 * s).sum();
        let (t, out) = fastest(|| vgg.forward_range(&h, from, to, &Mode::Eval))?;
        println!(
            "  block {} forward: {:.1} ms, {:.0} GFLOP/s",
            k + 1,
            t * 1e3,
            flops as f64 / t / 1e9
        );
        h = out;
    }
    let pooled = vgg.forward_range(&h, Cut::Block(5), Cut::Pooled, &Mode::Eval)?;
    let (t, _) = fastest(|| vgg.forward_range(&pooled, Cut::Pooled, Cut::Hidden, &Mode::Eval))?;
    let flops = 2 * n * 4096 * (25088 + 4096);
    println!(
        "  classifier.0-4 forward: {:.1} ms, {:.0} GFLOP/s",
        t * 1e3,
        flops as f64 / t / 1e9
    );
    Ok(())
}
