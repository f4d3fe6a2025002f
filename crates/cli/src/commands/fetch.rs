//! `finetune fetch`: STL10 and the VGG16 weights into the cache.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use finetune_data::download::Stl10Download;
use finetune_model::download::Vgg16Download;

pub const ABOUT: &str = "\
Download STL10 or the pretrained VGG16 weights into the cache.

Downloads show a progress bar, resume after an interruption (the partial file is
kept as NAME.part and continued with an HTTP Range request), and are checked
before use: a file that fails its checksum is deleted, never left in the cache.

The cache is $FINETUNE_CACHE, else $XDG_CACHE_HOME/finetune, else
~/.cache/finetune (macOS: ~/Library/Caches/finetune, Windows:
%LOCALAPPDATA%\\finetune). --dir puts the files somewhere else.

Offline or behind a firewall? Point at a mirror with --url, or with the
environment variables FINETUNE_STL10_URL, FINETUNE_STL10_MD5 and
FINETUNE_VGG16_URL (HF_ENDPOINT for a Hugging Face mirror); flags win over the
environment. Or skip fetching and give `finetune train` local files with --data
and --weights. `finetune fetch stl10 --help` and `finetune fetch vgg16 --help`
give the details.";

/// Flags of `finetune fetch`.
#[derive(Args)]
pub struct FetchArgs {
    #[command(subcommand)]
    what: FetchWhat,
}

#[derive(Subcommand)]
enum FetchWhat {
    /// The STL10 dataset (binary version, 2.6 GB download).
    #[command(long_about = STL10_ABOUT)]
    Stl10 {
        /// Directory to put stl10_binary/ in [default: stl10/ in finetune's cache, see `finetune fetch --help`].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Download the archive from this URL instead (a mirror)
        /// [env: FINETUNE_STL10_URL; default: the official Stanford URL].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Expected md5 of the archive [env: FINETUNE_STL10_MD5; default:
        /// 91f7769df0f17e558f3565bffb0c7dfb, the official archive's, as torchvision checks it].
        #[arg(long, value_name = "HEX")]
        md5: Option<String>,
        /// Also extract unlabeled_X.bin (100 000 images, 2.7 GB; the recipe does not use it).
        #[arg(long)]
        unlabeled: bool,
        /// Print nothing but errors (no progress bar).
        #[arg(long, short)]
        quiet: bool,
    },
    /// The ImageNet VGG16 weights (torchvision's, as safetensors, 528 MB).
    #[command(long_about = VGG16_ABOUT)]
    Vgg16 {
        /// Directory to put vgg16.tv_in1k.safetensors in [default: weights/ in finetune's cache, see `finetune fetch --help`].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        // The doc comment is clap's help text, where a bare URL reads best.
        #[allow(rustdoc::bare_urls)]
        /// Download the safetensors file from this URL instead (a mirror)
        /// [env: FINETUNE_VGG16_URL; default: $HF_ENDPOINT or https://huggingface.co,
        /// then /timm/vgg16.tv_in1k/resolve/main/model.safetensors].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Expected sha256 of the file [default: the one the server states,
        /// as Hugging Face does for large files].
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Print nothing but errors (no progress bar).
        #[arg(long, short)]
        quiet: bool,
    },
}

const STL10_ABOUT: &str = "\
The STL10 dataset, binary version: 5 000 labelled training and 8 000 test images
of 96x96 pixels in 10 classes.

Downloads http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz (2.6 GB),
checks its md5 and extracts, while it streams in, only what training needs:
stl10_binary/{train_X,train_y,test_X,test_y}.bin, class_names.txt and
fold_indices.txt (plus unlabeled_X.bin with --unlabeled). Entries that would
land outside the target directory are refused. The archive is deleted once
extracted; if the files are already there, nothing is downloaded.

Prints the directory to give `finetune train --data`.";

const VGG16_ABOUT: &str = "\
The ImageNet VGG16 weights: torchvision's vgg16-397923af.pth converted to
safetensors by timm, Hugging Face repository timm/vgg16.tv_in1k, file
model.safetensors (528 MB).

If the Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub) already holds that file, it is used and nothing is
downloaded. Otherwise the file is downloaded and checked against the sha256
Hugging Face states for it. HF_ENDPOINT selects a Hugging Face mirror.

Prints the file to give `finetune train --weights`.";

/// Runs `finetune fetch`, printing the path it produced on stdout.
pub fn run(FetchArgs { what }: FetchArgs) -> Result<()> {
    let env = |key: &str| std::env::var(key).ok();
    match what {
        FetchWhat::Stl10 {
            dir,
            url,
            md5,
            unlabeled,
            quiet,
        } => {
            let mut request = Stl10Download::from_env(dir, env)?;
            if let Some(url) = url {
                request.url = url;
            }
            if let Some(md5) = md5 {
                request.md5 = md5;
            }
            request.unlabeled = unlabeled;
            request.quiet = quiet;
            let data = request.fetch()?;
            println!("{}", data.display());
        }
        FetchWhat::Vgg16 {
            dir,
            url,
            sha256,
            quiet,
        } => {
            let mut request = Vgg16Download::from_env(dir, env)?;
            if let Some(url) = url {
                request.url = url;
                // The user asked for that URL's file, not whatever the HF cache holds.
                request.hf_hub_cache = None;
            }
            request.sha256 = sha256;
            request.quiet = quiet;
            let weights = request.fetch()?;
            println!("{}", weights.display());
        }
    }
    Ok(())
}
