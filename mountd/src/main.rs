//! `hydra`: the command-line interface and daemon of hydra.

use std::process::ExitCode;

use clap::Parser;
use hydra_mountd::cli;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let argv = if called == cli::fstab::HELPER_NAME {
        // Run by mount(8) for an fstab entry of type fuse.hydra.
        match cli::fstab::translate(&argv) {
            Ok(args) => args,
            Err(e) => {
                eprintln!("{}: error: {e}", cli::fstab::HELPER_NAME);
                return ExitCode::from(2);
            }
        }
    } else {
        argv
    };
    let parsed = cli::Cli::try_parse_from(&argv);
    let args = match parsed {
        Ok(args) => args,
        Err(err) => return cli::error::usage(err),
    };
    match cli::run(args, argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::error::report(&err),
    }
}
