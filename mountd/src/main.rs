//! `hydra`: the command-line interface and daemon of hydra.

use std::process::ExitCode;

use clap::Parser;
use hydra_mountd::cli;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::error::usage(err),
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::error::report(&err),
    }
}
