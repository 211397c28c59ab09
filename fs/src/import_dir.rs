//! Importing a directory of the host: every file type and its metadata.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::archive::ArchiveReport;
use crate::attr::{Ino, OpenFlags, SetAttr, TimeSet};
use crate::error::{FsError, FsResult};
use crate::fs::Fs;
use crate::perm::Caller;

fn host_err(path: &Path, e: impl std::fmt::Display) -> FsError {
    FsError::Archive(format!("{}: {e}", path.display()))
}

/// Copies the tree at `source` into directory `at` of `fs` (created if
/// needed), keeping types, modes, owners, times, hard links and xattrs.
pub fn import_dir(fs: &Fs, source: &Path, at: &[u8]) -> FsResult<ArchiveReport> {
    let c = Caller::root();
    let meta = std::fs::symlink_metadata(source).map_err(|e| host_err(source, e))?;
    if !meta.is_dir() {
        return Err(host_err(source, "not a directory"));
    }
    let base = fs.mkdir_p(Ino::ROOT, at, &c)?;
    let mut report = ArchiveReport::default();
    let mut links: HashMap<(u64, u64), Ino> = HashMap::new();
    let mut dirs: Vec<(Ino, std::fs::Metadata, std::path::PathBuf)> =
        vec![(base, meta, source.to_path_buf())];
    let mut stack = vec![(base, source.to_path_buf())];
    while let Some((dir_ino, dir_path)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir_path)
            .map_err(|e| host_err(&dir_path, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| host_err(&dir_path, e))?;
        names.sort();
        for name in names {
            let path = dir_path.join(&name);
            let name = name.as_bytes();
            let m = std::fs::symlink_metadata(&path).map_err(|e| host_err(&path, e))?;
            report.entries += 1;
            let ft = m.file_type();
            if !ft.is_dir()
                && m.nlink() > 1
                && let Some(&first) = links.get(&(m.dev(), m.ino()))
            {
                let ctime = fs.getattr(first)?.ctime;
                fs.link(first, dir_ino, name, &c)?;
                fs.setattr(
                    first,
                    &SetAttr {
                        ctime: Some(ctime),
                        ..SetAttr::default()
                    },
                    None,
                    &c,
                )?;
                continue;
            }
            let ino = if ft.is_dir() {
                let ino = fs.mkdir(dir_ino, name, 0o700, &c)?.ino;
                stack.push((ino, path.clone()));
                dirs.push((ino, m.clone(), path.clone()));
                continue;
            } else if ft.is_file() {
                let (attr, fh) = fs.create(dir_ino, name, 0o600, OpenFlags::default(), &c)?;
                let mut file = std::fs::File::open(&path).map_err(|e| host_err(&path, e))?;
                let mut buf = vec![0u8; 1 << 20];
                let mut offset = 0u64;
                loop {
                    let n =
                        std::io::Read::read(&mut file, &mut buf).map_err(|e| host_err(&path, e))?;
                    if n == 0 {
                        break;
                    }
                    fs.write(fh, offset, &buf[..n], &c)?;
                    offset += n as u64;
                }
                fs.release(fh)?;
                report.files += 1;
                report.bytes += offset;
                attr.ino
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| host_err(&path, e))?;
                fs.symlink(dir_ino, name, target.as_os_str().as_bytes(), &c)?
                    .ino
            } else {
                let bits = if ft.is_fifo() {
                    libc::S_IFIFO
                } else if ft.is_char_device() {
                    libc::S_IFCHR
                } else if ft.is_block_device() {
                    libc::S_IFBLK
                } else {
                    libc::S_IFSOCK
                };
                fs.mknod(dir_ino, name, bits | 0o600, m.rdev(), &c)?.ino
            };
            if m.nlink() > 1 {
                links.insert((m.dev(), m.ino()), ino);
            }
            apply(fs, ino, &m, &path, ft.is_symlink(), &c)?;
        }
    }
    for (ino, m, path) in dirs.iter().rev() {
        apply(fs, *ino, m, path, false, &c)?;
    }
    Ok(report)
}

fn apply(
    fs: &Fs,
    ino: Ino,
    m: &std::fs::Metadata,
    path: &Path,
    symlink: bool,
    c: &Caller,
) -> FsResult<()> {
    for (name, value) in host_xattrs(path) {
        fs.setxattr(ino, &name, &value, 0, c)?;
    }
    fs.setattr(
        ino,
        &SetAttr {
            uid: Some(m.uid()),
            gid: Some(m.gid()),
            ..SetAttr::default()
        },
        None,
        c,
    )?;
    let set = SetAttr {
        mode: (!symlink).then_some(m.mode() & 0o7777),
        atime: Some(TimeSet::At(m.atime() * 1_000_000_000 + m.atime_nsec())),
        mtime: Some(TimeSet::At(m.mtime() * 1_000_000_000 + m.mtime_nsec())),
        ctime: Some(m.ctime() * 1_000_000_000 + m.ctime_nsec()),
        ..SetAttr::default()
    };
    fs.setattr(ino, &set, None, c)?;
    Ok(())
}

/// The extended attributes of a host path (not following symlinks).
fn host_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(path, name, &mut value[..]) {
            value.truncate(len);
            out.push((name.to_vec(), value));
        }
    }
    out
}
