//! The `finetune` command: parses flags and hands each subcommand to the
//! library crates (`finetune_data`, `finetune_model`, `finetune_train`).

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;

/// Transfer learning in Rust: VGG16 pretrained on ImageNet, fine-tuned on STL10.
#[derive(Parser)]
#[command(name = "finetune", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a pretrained VGG on STL10 or an image folder.
    #[command(long_about = commands::train::ABOUT)]
    Train(Box<commands::train::TrainArgs>),
    /// A learning rate to train with: the learning-rate range test.
    #[command(name = "lr-find", long_about = commands::lr_find::ABOUT)]
    LrFind(Box<commands::lr_find::LrFindArgs>),
    /// Accuracy, per-class scores, confusion matrix and worst images of fine-tuned weights.
    #[command(long_about = commands::eval::ABOUT)]
    Eval(commands::eval::EvalArgs),
    /// The most likely classes of image files, with probabilities.
    #[command(long_about = commands::predict::ABOUT)]
    Predict(commands::predict::PredictArgs),
    /// A labelled picture of the (augmented) images the network is fed.
    #[command(long_about = commands::preview::ABOUT)]
    Preview(commands::preview::PreviewArgs),
    /// Input-data tools: `data bench` measures the loader's throughput.
    #[command(long_about = commands::data::ABOUT)]
    Data(commands::data::DataArgs),
    /// Download STL10 or the pretrained VGG16 weights into the cache.
    #[command(long_about = commands::fetch::ABOUT)]
    Fetch(commands::fetch::FetchArgs),
}

fn main() -> ExitCode {
    default_sigpipe();
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let given = matches
        .subcommand()
        .and_then(|(name, sub)| Some(given_flags(command.find_subcommand(name)?, sub)))
        .unwrap_or_default();
    // A training step allocates and frees a few GB of buffers; keeping freed
    // memory saves faulting it in again every step (about 25% of a full
    // VGG16 step on the CPU; see crates/model/src/memory.rs).
    finetune_model::retain_freed_memory();
    match run(cli, &given) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", message(&error));
            ExitCode::FAILURE
        }
    }
}

/// Output into a closed pipe (`finetune data bench | head -1`) ends the
/// process quietly, as it does other Unix tools, instead of a panic in
/// `println!`: Rust starts programs with SIGPIPE ignored. (Sockets are not
/// affected: the standard library writes to them without raising it.)
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: sets a signal's disposition to the default, before any other
    // thread exists; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes on one line each, skipping causes the message
/// already quotes (the fetch errors spell out their cause themselves).
fn message(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}

/// The flags of `command` given on its command line (as `--long-name`),
/// not defaulted.
fn given_flags(command: &clap::Command, matches: &ArgMatches) -> Vec<String> {
    command
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect()
}

fn run(cli: Cli, given: &[String]) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => commands::train::run(*args, given),
        Command::LrFind(args) => commands::lr_find::run(*args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Preview(args) => commands::preview::run(args),
        Command::Data(args) => commands::data::run(args),
        Command::Fetch(args) => commands::fetch::run(args),
    }
}
