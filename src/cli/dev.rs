//! `dev`: the whole system on this machine.

use clap::Args;

use super::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct DevArgs {}

pub async fn run(_a: DevArgs) -> CliResult {
    Err(CliError::new(1, "`dev` is not implemented yet"))
}
