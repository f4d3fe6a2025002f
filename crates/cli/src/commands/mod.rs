//! One module per subcommand: its flags and the wiring that runs it.

pub mod fetch;
pub mod train;
