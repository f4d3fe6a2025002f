//! The library behind the `finetune` command.
//!
//! What the subcommands share: [`setup`] opens `--data` as STL10 or an
//! image folder, builds the transforms, picks the device and records how a
//! run prepared its images ([`setup::Preprocess`] in `preprocess.json`),
//! which `eval`, `predict` and `preview` read back
//! ([`setup::Preprocess::resolve`], [`setup::RunArgs`]) to feed images the
//! way training did.

pub mod setup;
