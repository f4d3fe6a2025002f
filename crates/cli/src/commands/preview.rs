//! `finetune preview`: a labelled picture of what the network is fed.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use finetune_data::transforms::Normalize;
use finetune_data::{Batch, DataOptions, LoaderConfig, Pipeline, PrefetchLoader, Split, UNLABELED};
use finetune_train::{plot_image_grid, GridTile};

use super::{bounded, check_image_size, image_side, open_split, Statistics};

pub const ABOUT: &str = "\
Draw a labelled grid of the images the network is fed, to check the data and
the augmentation before a long run.

The images go through the same loader and transforms as `finetune train`
(train split: RandomCrop with padding 4 and a horizontal flip, unless
--no-augment; other splits: no augmentation), then the normalisation is undone
so they show as RGB again. Each is captioned with its class number and name.
They are the first --count images of training's first epoch for the same
--seed, with the same random crops and flips.

Example:
  finetune preview --data ~/.cache/finetune/stl10 --out grid.png";

/// Flags of `finetune preview`.
#[derive(Args, Debug)]
pub struct PreviewArgs {
    /// Folder holding stl10_binary/, or an image folder root (as for train).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    /// Which split to show: train, test or unlabeled (STL10 only).
    #[arg(long, default_value = "train")]
    pub split: Split,
    /// Number of images.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = bounded(1..=1024))]
    pub count: usize,
    /// Images per row [default: a square-ish grid].
    #[arg(long, value_name = "N", value_parser = bounded(1..=64))]
    pub columns: Option<usize>,
    /// Show the training images without RandomCrop and the flip.
    #[arg(long)]
    pub no_augment: bool,
    /// Seed of the shuffle and augmentation (the same as train's --seed).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Side of the square images fed to the network.
    #[arg(long, value_name = "N", default_value_t = 96, value_parser = image_side())]
    pub image_size: usize,
    /// Normalisation statistics: stl10 or imagenet (undone for display).
    #[arg(long, value_enum, default_value_t = Statistics::Stl10)]
    pub normalize: Statistics,
}

/// Runs `finetune preview`.
pub fn run(args: PreviewArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    check_image_size(args.image_size)?;
    let split = args.split;
    let options = DataOptions {
        image_size: args.image_size,
        split_seed: args.seed,
        ..DataOptions::default()
    };
    let dataset = open_split(&args.data, split, &options)?;
    let class_names = dataset.class_names().to_vec();
    let normalize = args.normalize.normalize();
    let (dims, size) = (dataset.image_dims(), args.image_size);
    let pipeline = if split == Split::Train {
        Pipeline::training(dims, size, normalize, !args.no_augment)
    } else {
        Pipeline::evaluation(dims, size, normalize)
    };
    let description = pipeline.describe();
    let config = LoaderConfig {
        batch_size: args.count,
        shuffle: true,
        seed: args.seed,
        ..LoaderConfig::default()
    };
    let loader = PrefetchLoader::new(dataset, pipeline, config);
    let batch = loader
        .epoch(0)
        .next()
        .context("the split holds no images")??;
    let tiles = tiles(&batch, &normalize, &class_names);
    let columns = args
        .columns
        .unwrap_or_else(|| (tiles.len() as f64).sqrt().ceil() as usize);
    plot_image_grid(&args.out, &tiles, columns)?;
    println!(
        "{}: {} {split} images through {description}",
        args.out.display(),
        tiles.len()
    );
    Ok(())
}

/// Each image of `batch` de-normalised back to HWC u8 RGB, with its caption.
fn tiles(batch: &Batch, normalize: &Normalize, class_names: &[String]) -> Vec<GridTile> {
    let [n, _, h, w] = batch.shape();
    let size = 3 * h * w;
    (0..n)
        .map(|i| {
            let chw = &batch.images()[i * size..(i + 1) * size];
            let rgb = normalize.invert(chw, (h, w)).data;
            let label = batch.labels()[i];
            let caption = if label == UNLABELED {
                "unlabeled".to_string()
            } else {
                let name = class_names.get(label as usize).map(String::as_str);
                format!("{label} {}", name.unwrap_or(""))
            };
            GridTile {
                rgb,
                dims: (h, w),
                caption,
            }
        })
        .collect()
}
