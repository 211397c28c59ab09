//! The one place where errors become a message on stderr and an exit code.

use std::process::ExitCode;

use hydra_chunker::ChunkError;
use hydra_dag::DagError;
use hydra_fs::FsError;
use hydra_git::GitError;
use hydra_kv::KvError;

/// Exit code for a failed command.
const FAILURE: u8 = 1;
/// Exit code when stored data failed verification.
const INTEGRITY: u8 = 3;
/// Exit code when the store is held by another writer.
const LOCKED: u8 = 4;

/// The block-layer error behind `err`, whichever crate's error wraps it.
fn dag_error(err: &anyhow::Error) -> Option<&DagError> {
    err.chain().find_map(|cause| {
        cause
            .downcast_ref::<DagError>()
            .or_else(|| match cause.downcast_ref::<ChunkError>() {
                Some(ChunkError::Dag(e)) => Some(e),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<KvError>() {
                Some(KvError::Dag(e)) => Some(&**e),
                Some(KvError::Chunk(c)) => match &**c {
                    ChunkError::Dag(e) => Some(e),
                    _ => None,
                },
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<GitError>() {
                Some(GitError::Dag(e)) => Some(&**e),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<FsError>() {
                Some(FsError::Dag(e)) => Some(&**e),
                Some(FsError::Chunk(c)) => match &**c {
                    ChunkError::Dag(e) => Some(e),
                    _ => None,
                },
                _ => None,
            })
    })
}

/// Prints `err` as one line on stderr and returns its exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let mut line = String::from("hydra: error: ");
    let mut first = true;
    for cause in err.chain() {
        let text = cause.to_string();
        // thiserror messages often embed their source already.
        if !first && line.contains(&text) {
            continue;
        }
        if !first {
            line.push_str(": ");
        }
        line.push_str(&text);
        first = false;
    }
    let line = line.replace(['\n', '\r'], " ");
    eprintln!("{line}");
    let code = match dag_error(err) {
        Some(DagError::Integrity { .. } | DagError::BadSignature { .. }) => INTEGRITY,
        Some(DagError::Locked { .. }) => LOCKED,
        _ => FAILURE,
    };
    ExitCode::from(code)
}

/// Exit code for a malformed command line.
const USAGE: u8 = 2;

/// Handles a command line clap refused: help and version print as usual;
/// errors become one line on stderr.
pub fn usage(err: clap::Error) -> ExitCode {
    if !err.use_stderr() {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    eprintln!("hydra: error: {} (see `hydra --help`)", usage_line(&err));
    ExitCode::from(USAGE)
}

/// What clap says of a bad command line, in one line: its first line, and
/// when that ends in a colon, the indented lines it introduces (the
/// arguments missing or in conflict).
fn usage_line(err: &clap::Error) -> String {
    let rendered = err.to_string();
    let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .trim()
        .to_string();
    if first.is_empty() {
        return err
            .kind()
            .as_str()
            .unwrap_or("invalid command line")
            .to_string();
    }
    if !first.ends_with(':') {
        return first;
    }
    let named: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    format!("{first} {}", named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn refusal(args: &[&str]) -> String {
        let cmd = Command::new("hydra")
            .arg(Arg::new("fs").required(true))
            .arg(Arg::new("mountpoint").required(true))
            .arg(
                Arg::new("n")
                    .long("n")
                    .value_parser(clap::value_parser!(u32)),
            );
        usage_line(&cmd.try_get_matches_from(args).expect_err("refused"))
    }

    #[test]
    fn a_refused_command_line_is_one_line_naming_what_is_wrong() {
        let missing = refusal(&["hydra"]);
        assert_eq!(
            missing,
            "the following required arguments were not provided: <fs>, <mountpoint>"
        );
        let bad = refusal(&["hydra", "a", "b", "--n", "x"]);
        assert!(bad.starts_with("invalid value 'x' for '--n <n>'"), "{bad}");
        assert!(!bad.contains('\n'), "{bad}");
    }
}
