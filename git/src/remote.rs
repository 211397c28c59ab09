//! The remote helper protocol (gitremote-helpers(7), `fetch` and `push`
//! capabilities), so real git can clone, fetch and push `hydra::NAME`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use hydra_dag::Bucket;

use crate::error::{GitError, GitResult};
use crate::import::{copy_objects, valid_ref_name};
use crate::object::Oid;
use crate::pack::{missing_in, write_pack};
use crate::repo::{RefTarget, Repo, Update};

/// How many times a push is retried when another writer moves the repository.
const PUSH_ATTEMPTS: usize = 5;

/// One ref a push asks to change.
#[derive(Clone, Debug)]
struct PushSpec {
    force: bool,
    src: String,
    dst: String,
}

/// Answers git's commands on `input` until it is done. `open` gives the
/// bucket, opened for writing when asked (only a push needs that); `local`
/// is the repository git runs in.
pub fn serve(
    name: &str,
    open: &mut dyn FnMut(bool) -> GitResult<Bucket>,
    local: &git2::Repository,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> GitResult<()> {
    let io = |e| GitError::io("talking to git", e);
    let mut lines = input.lines();
    while let Some(line) = lines.next() {
        let line = line.map_err(io)?;
        let mut reply = String::new();
        if line.is_empty() {
            break;
        } else if line == "capabilities" {
            reply.push_str("fetch\npush\n\n");
        } else if line == "list" || line == "list for-push" {
            let repo = Repo::open(&open(false)?, name)?;
            for (ref_name, target) in repo.refs() {
                match target {
                    RefTarget::Direct(oid) => reply.push_str(&format!("{oid} {ref_name}\n")),
                    RefTarget::Symbolic(to) => reply.push_str(&format!("@{to} {ref_name}\n")),
                }
            }
            reply.push('\n');
        } else if line.starts_with("fetch ") {
            let mut wants = Vec::new();
            let mut next = Some(line);
            while let Some(l) = next.filter(|l| !l.is_empty()) {
                let hex = l.split_whitespace().nth(1).unwrap_or("");
                wants.push(Oid::from_hex(hex).ok_or_else(|| {
                    GitError::Source(format!("git asked for a malformed object id {hex:?}"))
                })?);
                next = lines.next().transpose().map_err(io)?;
            }
            let repo = Repo::open_existing(&open(false)?, name)?;
            let missing = missing_in(&repo, &local.odb()?, &wants)?;
            write_pack(&repo, local, &missing)?;
            reply.push('\n');
        } else if line.starts_with("push ") {
            let mut specs = Vec::new();
            let mut next = Some(line);
            while let Some(l) = next.filter(|l| !l.is_empty()) {
                let spec = l.trim_start_matches("push ");
                let (force, spec) = match spec.strip_prefix('+') {
                    Some(rest) => (true, rest),
                    None => (false, spec),
                };
                let (src, dst) = spec.split_once(':').unwrap_or((spec, spec));
                specs.push(PushSpec {
                    force,
                    src: src.to_string(),
                    dst: dst.to_string(),
                });
                next = lines.next().transpose().map_err(io)?;
            }
            let bucket = open(true)?;
            for (dst, result) in push(&bucket, name, local, &specs)? {
                match result {
                    Ok(()) => reply.push_str(&format!("ok {dst}\n")),
                    Err(why) => reply.push_str(&format!("error {dst} {why}\n")),
                }
            }
            reply.push('\n');
        } else {
            return Err(GitError::Source(format!(
                "git sent a command this helper does not know: {line:?}"
            )));
        }
        output.write_all(reply.as_bytes()).map_err(io)?;
        output.flush().map_err(io)?;
    }
    Ok(())
}

/// Applies a push: per ref, `Ok` or why it was refused. Accepted changes
/// land in one commit; refused ones change nothing.
fn push(
    bucket: &Bucket,
    name: &str,
    local: &git2::Repository,
    specs: &[PushSpec],
) -> GitResult<Vec<(String, Result<(), String>)>> {
    for attempt in 0.. {
        let base = Repo::open(bucket, name)?;
        let mut results = Vec::new();
        let mut refs = BTreeMap::new();
        let mut roots = Vec::new();
        for spec in specs {
            let outcome = check(&base, local, spec);
            if let Ok(change) = &outcome {
                if let Some(oid) = change {
                    roots.push((*oid, format!("pushed to {}", spec.dst)));
                }
                refs.insert(spec.dst.clone(), change.map(RefTarget::Direct));
            }
            results.push((spec.dst.clone(), outcome.map(|_| ())));
        }
        if refs.is_empty() {
            return Ok(results);
        }
        if base.ref_target("HEAD").is_none() && !base.refs().contains_key("HEAD") {
            // A new repository's HEAD names the main branch pushed, if any.
            let head = ["refs/heads/main", "refs/heads/master"]
                .into_iter()
                .map(str::to_string)
                .chain(
                    refs.keys()
                        .filter(|r| r.starts_with("refs/heads/"))
                        .cloned(),
                )
                .find(|r| matches!(refs.get(r), Some(Some(_))));
            if let Some(head) = head {
                refs.insert("HEAD".into(), Some(RefTarget::Symbolic(head)));
            }
        }
        let session = bucket.session();
        let copied = copy_objects(&local.odb()?, &base, &session, &roots)?;
        let update = Update {
            objects: copied.items,
            refs,
            replace_refs: false,
        };
        let message = format!(
            "git push {}",
            specs
                .iter()
                .map(|s| s.dst.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        match base.commit(&session, update, &message) {
            Ok(_) => return Ok(results),
            Err(GitError::Conflict(_)) if attempt + 1 < PUSH_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// What one push spec changes the ref to (`None`: delete), or why not.
fn check(base: &Repo, local: &git2::Repository, spec: &PushSpec) -> Result<Option<Oid>, String> {
    if !valid_ref_name(&spec.dst) || spec.dst == "HEAD" {
        return Err("invalid ref name".into());
    }
    let old = match base.refs().get(&spec.dst) {
        Some(RefTarget::Direct(oid)) => Some(*oid),
        Some(RefTarget::Symbolic(_)) => return Err("is a symbolic ref".into()),
        None => None,
    };
    if spec.src.is_empty() {
        return match old {
            Some(_) => Ok(None),
            None => Err("remote ref does not exist".into()),
        };
    }
    let new = local
        .revparse_single(&spec.src)
        .map_err(|e| format!("cannot resolve {}: {}", spec.src, e.message()))?;
    let new = Oid::from_git2(new.id());
    let Some(old) = old else {
        return Ok(Some(new));
    };
    if old == new || spec.force {
        return Ok(Some(new));
    }
    if spec.dst.starts_with("refs/tags/") {
        return Err("already exists".into());
    }
    let descends = local
        .odb()
        .map(|o| o.exists(old.to_git2()))
        .unwrap_or(false)
        && local
            .graph_descendant_of(new.to_git2(), old.to_git2())
            .unwrap_or(false);
    if descends {
        Ok(Some(new))
    } else {
        Err("non-fast-forward".into())
    }
}
