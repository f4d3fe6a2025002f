//! What the CLI tests share: the local HTTP server and archive builders of
//! `finetune_files::testing`, a tiny STL10 archive's files, and the
//! `finetune` binary cut off from the user's caches.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::process::Command;

pub use finetune_files::testing::*;

/// The members of a tiny STL10 archive (3 train, 2 test, 1 unlabeled image).
pub fn tiny_stl10_files() -> Vec<(String, Vec<u8>)> {
    finetune_data::synthetic::stl10_members(3, 2, 1)
}

/// A narrow VGG16 (widths / 64, hidden 8) with ImageNet's 1000-class head,
/// as the safetensors bytes a mirror would serve.
pub fn narrow_vgg16_bytes() -> Vec<u8> {
    let config = finetune_model::VggConfig {
        width_divisor: 64,
        classifier_hidden: 8,
        ..finetune_model::VggConfig::vgg16(1000)
    };
    let dir = tempfile::tempdir().expect("scratch");
    let path = dir.path().join("w.safetensors");
    finetune_model::Vgg::new_random(config, 5, &candle_core::Device::Cpu)
        .and_then(|vgg| vgg.save_safetensors(&path))
        .expect("narrow weights");
    std::fs::read(path).expect("read back")
}

/// The `finetune` binary with the user's caches and download overrides
/// removed from its environment, so no test reads or writes them.
pub fn finetune_isolated() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_finetune"));
    for key in [
        "FINETUNE_CACHE",
        "FINETUNE_STL10_URL",
        "FINETUNE_STL10_MD5",
        "FINETUNE_VGG16_URL",
        "HF_ENDPOINT",
        "HF_HUB_CACHE",
        "HF_HOME",
        "XDG_CACHE_HOME",
    ] {
        command.env_remove(key);
    }
    command
}
