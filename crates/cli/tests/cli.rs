//! The `finetune fetch` command as a user runs it: help text, output, errors.

mod support;

use std::process::Command;

use support::{sha256_hex, unreachable_url, TestServer};

fn finetune() -> Command {
    support::finetune_isolated()
}

#[test]
fn fetch_help_teaches_what_where_and_overrides() {
    let output = finetune().args(["fetch", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "stl10",
        "vgg16",
        "FINETUNE_CACHE",
        "~/.cache/finetune",
        "--data",
        "--weights",
    ] {
        assert!(
            help.contains(needle),
            "fetch --help lacks {needle}:\n{help}"
        );
    }
    let output = finetune()
        .args(["fetch", "stl10", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "FINETUNE_STL10_URL",
        "FINETUNE_STL10_MD5",
        "--unlabeled",
        "--dir",
        "md5",
    ] {
        assert!(
            help.contains(needle),
            "fetch stl10 --help lacks {needle}:\n{help}"
        );
    }
    let output = finetune()
        .args(["fetch", "vgg16", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "FINETUNE_VGG16_URL",
        "HF_ENDPOINT",
        "HF_HUB_CACHE",
        "timm/vgg16.tv_in1k",
    ] {
        assert!(
            help.contains(needle),
            "fetch vgg16 --help lacks {needle}:\n{help}"
        );
    }
}

#[test]
fn fetch_vgg16_prints_the_weights_path() {
    let weights = support::narrow_vgg16_bytes();
    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file("/w", weights.clone(), &[("ETag", &etag)], true);
    let tmp = tempfile::tempdir().unwrap();
    let output = finetune()
        .args(["fetch", "vgg16", "--quiet", "--dir"])
        .arg(tmp.path())
        .env("FINETUNE_VGG16_URL", server.url("/w"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let path = tmp.path().join("vgg16.tv_in1k.safetensors");
    assert_eq!(printed.trim(), path.display().to_string());
    assert_eq!(std::fs::read(path).unwrap(), weights);
}

#[test]
fn flag_url_wins_over_environment() {
    let archive = support::tar_gz(&support::tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let output = finetune()
        .args([
            "fetch",
            "stl10",
            "-q",
            "--url",
            &server.url("/s.tgz"),
            "--dir",
        ])
        .arg(tmp.path())
        .env("FINETUNE_STL10_URL", unreachable_url())
        .env("FINETUNE_STL10_MD5", support::md5_hex(&archive))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(tmp.path().join("stl10_binary/train_X.bin").is_file());
}

#[test]
fn offline_fetch_exits_non_zero_with_a_short_message() {
    let tmp = tempfile::tempdir().unwrap();
    let url = unreachable_url();
    let output = finetune()
        .args(["fetch", "stl10", "--url", &url, "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: could not reach") && stderr.contains(&url),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_md5_is_refused_before_any_download() {
    let tmp = tempfile::tempdir().unwrap();
    let output = finetune()
        .args([
            "fetch",
            "stl10",
            "--md5",
            "xyz",
            "--url",
            &unreachable_url(),
            "--dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("md5") && stderr.contains("32 hexadecimal"),
        "{stderr}"
    );
}
