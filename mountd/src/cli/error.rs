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
    let text = err.kind().as_str().map(str::to_string);
    let rendered = err.to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let line = if first.is_empty() {
        text.unwrap_or_else(|| "invalid command line".into())
    } else {
        first
    };
    eprintln!("hydra: error: {line} (see `hydra --help`)");
    ExitCode::from(USAGE)
}
