//! `MOUNTPOINT/.git-views/NAME/REV/`: the repositories of the store,
//! browsable read-only at any branch, tag or commit. The root's readdir
//! does not list `.git-views`.
//!
//! A repository's directory lists HEAD, its branches and its tags (a `/`
//! in a ref name shows as `:`, which git forbids in names); any other
//! revision git understands (a commit id, `main~3`) can be looked up by
//! name. A revision's tree becomes a read-only filesystem on first use:
//! its directory nodes are built in memory (file content is the blobs the
//! repository already stores), so views cost no writes to the store and
//! work on read-only mounts too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hydra_dag::{Bucket, BucketPolicy, MemoryVolume, VerifiedVolume, Volume};
use hydra_fs::{Fs, FsError, FsResult};
use hydra_git::{GitError, Oid, Repo};

/// The directory's name in the root.
pub const GIT_VIEWS_NAME: &[u8] = b".git-views";

#[derive(Debug, Default)]
struct State {
    /// Repository names by their stable index.
    repos: Vec<String>,
    /// Built views by index.
    views: Vec<Fs>,
    by_key: HashMap<(String, Oid), usize>,
}

/// The git views of one store.
#[derive(Debug)]
pub struct GitViews {
    store: Bucket,
    overlay: Bucket,
    state: Mutex<State>,
}

fn git_error(e: GitError) -> FsError {
    match e {
        GitError::UnknownRevision(_)
        | GitError::Ambiguous(_)
        | GitError::NoRepo(_)
        | GitError::NoPath { .. }
        | GitError::WrongKind { .. } => FsError::NotFound,
        GitError::Fs(e) => *e,
        GitError::Dag(e) => FsError::Dag(e),
        GitError::Chunk(e) => FsError::Chunk(e),
        other => FsError::Lost(other.to_string()),
    }
}

impl GitViews {
    /// The views of the repositories in `store`.
    pub fn new(store: Bucket) -> FsResult<GitViews> {
        let memory: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(Arc::new(MemoryVolume::new())));
        let mut volumes = vec![memory];
        volumes.extend(store.volumes().iter().cloned());
        let policy = BucketPolicy {
            replication: 1,
            ..store.policy().clone()
        };
        let overlay = Bucket::new("git-views", policy, volumes)?;
        Ok(GitViews {
            store,
            overlay,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored repositories, with stable indexes.
    pub fn repos(&self) -> FsResult<Vec<(u64, String)>> {
        let names = hydra_git::list(&self.store).map_err(git_error)?;
        let mut state = self.state();
        Ok(names
            .into_iter()
            .map(|name| {
                let index = match state.repos.iter().position(|r| *r == name) {
                    Some(i) => i,
                    None => {
                        state.repos.push(name.clone());
                        state.repos.len() - 1
                    }
                };
                (index as u64, name)
            })
            .collect())
    }

    /// The index of repository `name`, if the store has it.
    pub fn repo_index(&self, name: &[u8]) -> FsResult<u64> {
        let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
        self.repos()?
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| i)
            .ok_or(FsError::NotFound)
    }

    /// The name of the repository with index `index`.
    pub fn repo_name(&self, index: u64) -> FsResult<String> {
        self.state()
            .repos
            .get(index as usize)
            .cloned()
            .ok_or(FsError::NotFound)
    }

    /// The names a repository's directory lists: HEAD, branches, tags.
    pub fn names(&self, repo: &str) -> FsResult<Vec<String>> {
        let repo = Repo::open(&self.store, repo).map_err(git_error)?;
        let mut out = Vec::new();
        if repo.ref_target("HEAD").is_some() {
            out.push("HEAD".to_string());
        }
        for prefix in ["refs/heads/", "refs/tags/"] {
            for name in repo.refs().keys() {
                if let Some(short) = name.strip_prefix(prefix) {
                    let shown = short.replace('/', ":");
                    if !out.contains(&shown) {
                        out.push(shown);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The view of revision `name` (as listed, or any revision) of `repo`:
    /// its index and filesystem, built on first use.
    pub fn lookup(&self, repo: &str, name: &[u8]) -> FsResult<(u64, Fs)> {
        let rev = std::str::from_utf8(name)
            .map_err(|_| FsError::NotFound)?
            .replace(':', "/");
        let stored = Repo::open(&self.store, repo).map_err(git_error)?;
        let oid = stored.resolve(&rev).map_err(git_error)?;
        let (commit, _) = stored.commit_object(&oid).map_err(git_error)?;
        let key = (repo.to_string(), commit);
        let built = {
            let state = self.state();
            state
                .by_key
                .get(&key)
                .map(|&i| (i as u64, state.views[i].clone()))
        };
        if let Some(built) = built {
            return Ok(built);
        }
        let at = Repo::at(&self.overlay, repo, stored.root()).map_err(git_error)?;
        let session = self.overlay.session();
        let root = hydra_git::commit_root(&at, &commit, &session).map_err(git_error)?;
        let fs = Fs::open_snapshot(self.overlay.clone(), root)?;
        let mut state = self.state();
        if let Some(&i) = state.by_key.get(&key) {
            return Ok((i as u64, state.views[i].clone()));
        }
        state.views.push(fs.clone());
        let i = state.views.len() - 1;
        state.by_key.insert(key, i);
        Ok((i as u64, fs))
    }

    /// The view with index `index`.
    pub fn view(&self, index: u64) -> FsResult<Fs> {
        self.state()
            .views
            .get(index as usize)
            .cloned()
            .ok_or(FsError::NotFound)
    }
}
