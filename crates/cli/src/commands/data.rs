//! `finetune data bench`: throughput of the input pipeline alone.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use finetune_data::{DataOptions, LoaderConfig, Pipeline, PrefetchLoader, Split};

use super::{bounded, check_batch_fits, check_image_size, image_side, open_split, Statistics};

pub const ABOUT: &str = "\
Tools for the input data. `finetune data bench` measures how many training
images per second the loader prepares, without any network.";

const BENCH_ABOUT: &str = "\
Measure the input pipeline alone: read, shuffle, augment (RandomCrop with padding
4 and a horizontal flip, unless --no-augment), convert and normalise the
training split, batch after batch, exactly as `finetune train` does, and throw
the batches away.

Prints each epoch's time and rate, then as the last line `<N> images/s`: the
mean rate over the epochs after the first (the first warms up caches and
threads; with --epochs 1 it is that epoch's rate). If training runs at about
this rate, the loader is the bottleneck: try more --threads, or --no-augment
with `finetune train --train head`, which caches features.

Example:
  finetune data bench --data ~/.cache/finetune/stl10 --threads 4";

/// Flags of `finetune data`.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    what: DataWhat,
}

#[derive(Subcommand, Debug)]
enum DataWhat {
    /// Images per second of the training loader alone.
    #[command(long_about = BENCH_ABOUT)]
    Bench(BenchArgs),
}

/// Flags of `finetune data bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Folder holding stl10_binary/, or an image folder root (as for train).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 128, value_parser = bounded(1..=65_536))]
    batch_size: usize,
    /// Passes over the training split.
    #[arg(long, default_value_t = 3, value_parser = bounded(1..=1000))]
    epochs: usize,
    /// Without RandomCrop and the flip.
    #[arg(long)]
    no_augment: bool,
    /// Threads preparing each batch [default: one per core].
    #[arg(long, value_name = "N", value_parser = bounded(1..=1024))]
    threads: Option<usize>,
    /// Side of the square images produced.
    #[arg(long, value_name = "N", default_value_t = 96, value_parser = image_side())]
    image_size: usize,
    /// Normalisation statistics: stl10 or imagenet.
    #[arg(long, value_enum, default_value_t = Statistics::Stl10)]
    normalize: Statistics,
    /// Seed of the shuffle and augmentation.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Batches prepared ahead of the consumer (what `train` uses by default).
    #[arg(long, value_name = "K", default_value_t = LoaderConfig::default().prefetch,
          value_parser = bounded(1..=64))]
    prefetch: usize,
}

/// Runs `finetune data ...`.
pub fn run(DataArgs { what }: DataArgs) -> Result<()> {
    match what {
        DataWhat::Bench(args) => bench(args),
    }
}

fn bench(args: BenchArgs) -> Result<()> {
    if args.epochs == 0 || args.batch_size == 0 || args.threads == Some(0) {
        bail!("--epochs, --batch-size and --threads must be at least 1");
    }
    check_image_size(args.image_size)?;
    // The batches in flight: the one being filled, the queue, the one read.
    check_batch_fits("--batch-size", args.batch_size, args.image_size, 3 * 4)?;
    let options = DataOptions {
        image_size: args.image_size,
        split_seed: args.seed,
        ..DataOptions::default()
    };
    let dataset = open_split(&args.data, Split::Train, &options)?;
    let pipeline = Pipeline::training(
        dataset.image_dims(),
        args.image_size,
        args.normalize.normalize(),
        !args.no_augment,
    );
    println!(
        "{} training images, batch {}, {}; {} threads",
        dataset.len(),
        args.batch_size,
        pipeline.describe(),
        args.threads
            .map_or_else(|| "all".to_string(), |n| n.to_string())
    );
    let config = LoaderConfig {
        batch_size: args.batch_size,
        shuffle: true,
        seed: args.seed,
        num_threads: args.threads,
        prefetch: args.prefetch,
        ..LoaderConfig::default()
    };
    let loader = PrefetchLoader::new(dataset, pipeline, config);
    loader.validate()?;
    let mut rates = Vec::with_capacity(args.epochs);
    for epoch in 0..args.epochs {
        let start = Instant::now();
        let mut images = 0;
        for batch in loader.epoch(epoch as u64) {
            images += batch?.len();
        }
        let seconds = start.elapsed().as_secs_f64().max(1e-9);
        let rate = images as f64 / seconds;
        println!(
            "epoch {}: {images} images in {seconds:.3} s, {rate:.0} images/s",
            epoch + 1
        );
        rates.push(rate);
    }
    let measured = if rates.len() > 1 {
        &rates[1..]
    } else {
        &rates[..]
    };
    let mean = measured.iter().sum::<f64>() / measured.len() as f64;
    println!("{mean:.0} images/s");
    Ok(())
}
