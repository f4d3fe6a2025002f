//! Project automation, reached through `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask finetune [train flags]`: the main job. Fetches STL10 and the VGG16
//!   weights into the cache when absent, then fine-tunes with the recipe's defaults.
//! - `cargo xtask ci`: what `.ci/run` runs (fmt check, clippy -D warnings, tests).
//! - `cargo xtask bench`: the criterion benchmarks of the data pipeline.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  finetune [FLAGS]   fetch STL10 + VGG16 if absent, then `finetune train` with the recipe's
                     defaults; FLAGS pass through to `finetune train` (e.g. --out runs/x,
                     --train head, --epochs 5). `--data DIR` / `--weights FILE` skip the fetch;
                     without --out each run gets a new runs/stl10-vgg16[-N]; `--resume DIR`
                     continues one.
  ci                 cargo fmt --check, cargo clippy -D warnings, cargo test, and the library
                     crates tested without their download feature (what .ci/run runs)
  bench              criterion benchmarks of the data pipeline";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` puts the causes on one line; no backtrace for a user's error.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("finetune") => finetune(&args[1..]),
        Some("ci") => ci(),
        Some("bench") => cargo(&["bench", "-p", "finetune-benches"]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command `{other}`\n\n{USAGE}"),
    }
}

/// Formatting, lints with warnings as errors, then the whole test suite.
fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    // The libraries without the `download` feature the CLI turns on: what a
    // project that only wants the loader, the model or the loop gets.
    cargo(&[
        "test",
        "-p",
        "finetune-files",
        "-p",
        "finetune-data",
        "-p",
        "finetune-model",
        "-p",
        "finetune-train",
    ])?;
    Ok(())
}

/// The main job: make sure data and weights are local, then train.
fn finetune(flags: &[String]) -> Result<()> {
    let has = |name: &str| {
        flags
            .iter()
            .any(|f| f == name || f.starts_with(&format!("{name}=")))
    };
    // Build once in release mode: a debug VGG16 is far too slow to train.
    cargo(&["build", "--release", "-p", "finetune-cli"])?;
    let bin = release_binary()?;

    let mut train: Vec<String> = vec!["train".into()];
    if has("--resume") {
        // The run knows its data, weights and directory.
        train.extend(flags.iter().cloned());
        return run_train(&bin, &train);
    }
    if !has("--data") {
        let dir = finetune_stdout(&bin, &["fetch", "stl10"])
            .context("could not fetch STL10; pass `--data DIR` to use a local copy, or set FINETUNE_STL10_URL to a mirror")?;
        train.extend(["--data".into(), dir]);
    }
    if !has("--weights") {
        let file = finetune_stdout(&bin, &["fetch", "vgg16"])
            .context("could not fetch the VGG16 weights; pass `--weights FILE` to use a local file, or set FINETUNE_VGG16_URL to a mirror")?;
        train.extend(["--weights".into(), file]);
    }
    if !has("--out") {
        // A new run directory each time: `finetune train` refuses a used one.
        let out = (1..)
            .map(|n| match n {
                1 => "runs/stl10-vgg16".to_string(),
                n => format!("runs/stl10-vgg16-{n}"),
            })
            .find(|dir| !std::path::Path::new(dir).exists())
            .expect("some name is free");
        train.extend(["--out".into(), out]);
    }
    train.extend(flags.iter().cloned());
    run_train(&bin, &train)
}

/// Runs `finetune ARGS`, echoing the command line.
fn run_train(bin: &PathBuf, train: &[String]) -> Result<()> {
    eprintln!("$ finetune {}", train.join(" "));
    let status = Command::new(bin)
        .args(train)
        .status()
        .with_context(|| format!("could not run {}", bin.display()))?;
    if !status.success() {
        bail!("`finetune train` failed with {status}");
    }
    Ok(())
}

/// Runs the `finetune` binary, streaming its progress (stderr) and returning the last
/// line it printed on stdout: the path `fetch` reports.
fn finetune_stdout(bin: &PathBuf, args: &[&str]) -> Result<String> {
    eprintln!("$ finetune {}", args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run {}", bin.display()))?;
    if !out.status.success() {
        bail!("`finetune {}` failed with {}", args.join(" "), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => Ok(line.trim().to_string()),
        None => bail!("`finetune {}` printed no path", args.join(" ")),
    }
}

fn release_binary() -> Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    let bin = target
        .join("release")
        .join(format!("finetune{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("expected the release binary at {}", bin.display());
    }
    Ok(bin)
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .with_context(|| format!("could not run `{cargo}`"))?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(())
}
