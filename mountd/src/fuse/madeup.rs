//! The directories the mount makes up: `.snapshots` and `.git-views`
//! with a directory per repository in it.

use hydra_fs::{Attr, DirEntry, Fs, FsError, Ino, Kind};

use super::HydraFuse;
use crate::snapdir::{
    GIT_VIEW_BASE, GIT_VIEWS_INO, Place, attr_in, git_repo_ino, place, synthetic_dir_attr,
};

impl HydraFuse {
    /// Attributes of `.git-views` or a repository's directory in it.
    pub(super) fn git_dir_attr(&self, ino: u64) -> Result<Attr, FsError> {
        Ok(synthetic_dir_attr(&self.fs.getattr(Ino::ROOT)?, ino))
    }

    /// The root attributes of view `k` (of the git views).
    pub(super) fn git_view_attr(&self, k: u64, fs: &Fs) -> Result<Attr, FsError> {
        Ok(attr_in(GIT_VIEW_BASE + k, fs.getattr(Ino::ROOT)?))
    }

    /// The entries of `.git-views` or of a repository's directory.
    fn git_listing(&self, place: Place) -> Result<Vec<(DirEntry, Attr)>, FsError> {
        let git = self.git()?;
        let (me, parent) = match place {
            Place::GitRepo(k) => (git_repo_ino(k), GIT_VIEWS_INO),
            _ => (GIT_VIEWS_INO, Ino::ROOT.0),
        };
        let dot = |name: &[u8], ino: u64, cookie: u64| -> Result<(DirEntry, Attr), FsError> {
            let attr = if ino == Ino::ROOT.0 {
                self.fs.getattr(Ino::ROOT)?
            } else {
                self.git_dir_attr(ino)?
            };
            Ok((
                DirEntry {
                    ino: Ino(ino),
                    name: name.to_vec(),
                    kind: Kind::Dir,
                    cookie,
                },
                attr,
            ))
        };
        let mut out = vec![dot(b".", me, 1)?, dot(b"..", parent, 2)?];
        let children: Vec<(Vec<u8>, Attr)> = match place {
            Place::GitRepo(k) => {
                let repo = git.repo_name(k)?;
                let mut v = Vec::new();
                for name in git.names(&repo)? {
                    let (view, fs) = git.lookup(&repo, name.as_bytes())?;
                    v.push((name.into_bytes(), self.git_view_attr(view, &fs)?));
                }
                v
            }
            _ => git
                .repos()?
                .into_iter()
                .map(|(k, name)| Ok((name.into_bytes(), self.git_dir_attr(git_repo_ino(k))?)))
                .collect::<Result<_, FsError>>()?,
        };
        for (k, (name, attr)) in children.into_iter().enumerate() {
            out.push((
                DirEntry {
                    ino: attr.ino,
                    name,
                    kind: Kind::Dir,
                    cookie: k as u64 + 3,
                },
                attr,
            ));
        }
        Ok(out)
    }

    /// Every entry of a directory the mount makes up.
    pub(super) fn made_up_listing(&self, n: u64) -> Result<Vec<(DirEntry, Attr)>, FsError> {
        if matches!(place(n), Place::GitDir | Place::GitRepo(_)) {
            return self.git_listing(place(n));
        }
        if place(n) == Place::Dir {
            let snaps = self.snapshots()?;
            let root = self.fs.getattr(Ino::ROOT)?;
            let dir = snaps.dir_attr(&root);
            let mut out = vec![
                (
                    DirEntry {
                        ino: dir.ino,
                        name: b".".to_vec(),
                        kind: Kind::Dir,
                        cookie: 1,
                    },
                    dir.clone(),
                ),
                (
                    DirEntry {
                        ino: Ino::ROOT,
                        name: b"..".to_vec(),
                        kind: Kind::Dir,
                        cookie: 2,
                    },
                    root,
                ),
            ];
            for (k, id) in snaps.ids()?.into_iter().enumerate() {
                let attr = attr_in(id, snaps.view(id)?.getattr(Ino::ROOT)?);
                let cookie = k as u64 + 3;
                out.push((
                    DirEntry {
                        ino: attr.ino,
                        name: id.to_string().into_bytes(),
                        kind: Kind::Dir,
                        cookie,
                    },
                    attr,
                ));
            }
            return Ok(out);
        }
        Err(FsError::NotDir)
    }
}
