//! What the CLI tests share: the local HTTP server and archive builders of
//! `finetune_download::testing`, a tiny STL10 archive's files, and the
//! `finetune` binary cut off from the user's caches.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::process::Command;

pub use finetune_download::testing::*;

/// The files of a tiny STL10 (3 train, 2 test, 1 unlabeled image), by archive path.
pub fn tiny_stl10_files() -> Vec<(String, Vec<u8>)> {
    let image = finetune_data::STL10_IMAGE_BYTES;
    vec![
        ("stl10_binary/train_X.bin".into(), bytes(3 * image, 1)),
        ("stl10_binary/train_y.bin".into(), vec![1, 5, 10]),
        ("stl10_binary/test_X.bin".into(), bytes(2 * image, 2)),
        ("stl10_binary/test_y.bin".into(), vec![2, 3]),
        ("stl10_binary/unlabeled_X.bin".into(), bytes(image, 3)),
        (
            "stl10_binary/class_names.txt".into(),
            b"airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\ntruck\n".to_vec(),
        ),
        ("stl10_binary/fold_indices.txt".into(), b"0 1\n2\n".to_vec()),
        ("stl10_binary/README".into(), b"not needed\n".to_vec()),
    ]
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
