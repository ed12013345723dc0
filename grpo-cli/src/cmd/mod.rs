//! One module per subcommand; each has an `Args` struct (clap derive) and a
//! `run(Args) -> anyhow::Result<()>` that calls into a library crate.

pub mod bench;
pub mod env;
pub mod estimators;
pub mod eval;
pub mod generate;
pub mod io;
pub mod score;
pub mod serve;
pub mod train;
pub mod verify;
