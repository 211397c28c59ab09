//! Writing a stored repository out as a real bare repository with the
//! same object ids and refs.

use std::ops::Bound;
use std::path::Path;

use crate::error::{GitError, GitResult};
use crate::object::Oid;
use crate::pack::write_pack;
use crate::repo::{RefTarget, Repo};

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// Objects written.
    pub objects: u64,
    /// Refs written (HEAD included).
    pub refs: usize,
}

/// Writes `repo` as a bare repository at `dest` (absent or an empty
/// directory). On failure, what was created is removed again.
pub fn export(repo: &Repo, dest: &Path) -> GitResult<ExportReport> {
    let existed = dest.exists();
    if existed {
        let mut entries = std::fs::read_dir(dest)
            .map_err(|e| GitError::io(format!("reading {}", dest.display()), e))?;
        if entries.next().is_some() {
            return Err(GitError::Source(format!(
                "{} exists and is not empty",
                dest.display()
            )));
        }
    }
    let result = write_all(repo, dest);
    if result.is_err() {
        if existed {
            clear_dir(dest);
        } else {
            let _ = std::fs::remove_dir_all(dest);
        }
    }
    result
}

fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

fn write_all(repo: &Repo, dest: &Path) -> GitResult<ExportReport> {
    let target = git2::Repository::init_bare(dest)?;
    let mut oids = Vec::new();
    repo.objects()
        .scan(Bound::Unbounded, Bound::Unbounded, false, &mut |k, _| {
            if let Some(oid) = Oid::from_bytes(k) {
                oids.push(oid);
            }
            Ok(true)
        })?;
    write_pack(repo, &target, &oids)?;
    let refs = set_refs(&target, repo)?;
    Ok(ExportReport {
        objects: oids.len() as u64,
        refs,
    })
}

/// Makes the refs of `target` those of `repo` (HEAD last); returns how many.
pub fn set_refs(target: &git2::Repository, repo: &Repo) -> GitResult<usize> {
    let message = "hydra git export";
    for (name, ref_target) in repo.refs() {
        if name == "HEAD" {
            continue;
        }
        match ref_target {
            RefTarget::Direct(oid) => {
                target.reference(name, oid.to_git2(), true, message)?;
            }
            RefTarget::Symbolic(to) => {
                target.reference_symbolic(name, to, true, message)?;
            }
        }
    }
    match repo.refs().get("HEAD") {
        Some(RefTarget::Symbolic(to)) => {
            target.reference_symbolic("HEAD", to, true, message)?;
        }
        Some(RefTarget::Direct(oid)) => target.set_head_detached(oid.to_git2())?,
        None => {}
    }
    Ok(repo.refs().len())
}
