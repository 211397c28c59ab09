//! `git-remote-hydra`: the git remote helper for `hydra::` URLs (git runs
//! it; see `hydra_mountd::cli::git`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    hydra_mountd::cli::git::remote_helper(&args)
}
