//! Tar import and export, with every kind of entry and metadata kept.
//!
//! Import reads plain, gzip, zstd, xz and bzip2 archives (detected by
//! content), pax and GNU long names and link names, hard links, symlinks,
//! devices, fifos, modes, owners, nanosecond times and `SCHILY.xattr`
//! attributes. Entries that would land outside the target directory
//! (`..` components, paths through a symlink) are refused with a warning.
//! The caller commits once at the end, or not at all. Change times come
//! from the archive (pax `ctime`, else the mtime), so an import is a pure
//! function of its archive and importing it twice dedups completely.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};

use tar::{EntryType, Header};

use crate::attr::{Ino, OpenFlags, SetAttr, TimeSet};
use crate::error::{FsError, FsResult};
use crate::fs::Fs;
use crate::node::Kind;
use crate::path::{components, split_last};
use crate::perm::Caller;

/// Bytes copied per read/write while moving file content.
const PIECE: usize = 1 << 20;

/// What an import or export did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveReport {
    /// Entries handled.
    pub entries: u64,
    /// Regular files.
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Entries refused or skipped, with why.
    pub warnings: Vec<String>,
}

fn archive_err(entry: Option<&[u8]>, reason: impl std::fmt::Display) -> FsError {
    FsError::Archive(match entry {
        Some(name) => format!("entry {:?}: {reason}", String::from_utf8_lossy(name)),
        None => reason.to_string(),
    })
}

/// Wraps `input` in the decompressor its first bytes call for.
pub fn decompress<'a>(input: impl Read + 'a) -> FsResult<Box<dyn Read + 'a>> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let head = input
        .fill_buf()
        .map_err(|e| archive_err(None, format!("reading: {e}")))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(input)
            .map_err(|e| archive_err(None, format!("zstd: {e}")))?;
        Box::new(decoder)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(input))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(input))
    } else {
        Box::new(input)
    })
}

/// Seconds (with an optional `.fraction`) from a pax time, as ns.
fn pax_time(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(if secs < 0 {
        secs * 1_000_000_000 - nanos
    } else {
        secs * 1_000_000_000 + nanos
    })
}

/// Metadata gathered from an entry's header and pax records.
struct EntryMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    atime: Option<i64>,
    ctime: Option<i64>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Imports a tar stream into directory `at` of `fs` (created if needed).
pub fn import_tar(fs: &Fs, input: impl Read, at: &[u8]) -> FsResult<ArchiveReport> {
    let c = Caller::root();
    let base = fs.mkdir_p(Ino::ROOT, at, &c)?;
    let mut archive = tar::Archive::new(decompress(input)?);
    let mut report = ArchiveReport::default();
    let mut dir_meta: Vec<(Ino, EntryMeta)> = Vec::new();
    let mut buf = vec![0u8; PIECE];
    let entries = archive.entries().map_err(|e| archive_err(None, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(None, format!("unreadable header: {e}")))?;
        let raw_path = entry.path_bytes().into_owned();
        let name_for_errors = raw_path.clone();
        let at_err = |e: &dyn std::fmt::Display| archive_err(Some(&name_for_errors), e);
        let mut meta = EntryMeta {
            mode: entry.header().mode().map_err(|e| at_err(&e))? & 0o7777,
            uid: entry.header().uid().map_err(|e| at_err(&e))? as u32,
            gid: entry.header().gid().map_err(|e| at_err(&e))? as u32,
            mtime: entry.header().mtime().map_err(|e| at_err(&e))? as i64 * 1_000_000_000,
            atime: None,
            ctime: None,
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(|e| at_err(&e))? {
            for ext in pax {
                let ext = ext.map_err(|e| at_err(&e))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    meta.mtime =
                        pax_time(ext.value_bytes()).ok_or_else(|| at_err(&"bad pax mtime"))?;
                } else if key == b"atime" {
                    meta.atime = pax_time(ext.value_bytes());
                } else if key == b"ctime" {
                    meta.ctime = pax_time(ext.value_bytes());
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs
                        .push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"uid" || key == b"gid" {
                    let v: Option<u32> = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|s| s.parse().ok());
                    match (key, v) {
                        (b"uid", Some(v)) => meta.uid = v,
                        (b"gid", Some(v)) => meta.gid = v,
                        _ => return Err(at_err(&"bad pax uid/gid")),
                    }
                }
            }
        }
        report.entries += 1;
        let kind = entry.header().entry_type();
        // Normalize: no absolute paths, no `..`.
        let parts = components(&raw_path)?;
        if parts.contains(&&b".."[..]) {
            report.warnings.push(format!(
                "refused {:?}: '..' would leave the target",
                String::from_utf8_lossy(&raw_path)
            ));
            continue;
        }
        if parts.is_empty() {
            if kind == EntryType::Directory {
                dir_meta.push((base, meta));
            }
            continue;
        }
        let rel = parts.join(&b'/');
        let (parent_path, name) = split_last(&rel)?;
        let parent = match fs.mkdir_p(base, &parent_path, &c) {
            Ok(ino) => ino,
            Err(FsError::NotDir) => {
                report.warnings.push(format!(
                    "refused {:?}: its path goes through a symlink or a file",
                    String::from_utf8_lossy(&raw_path)
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        let existing = match fs.lookup(parent, &name, &c) {
            Ok(attr) => Some(attr),
            Err(FsError::NotFound) => None,
            Err(e) => return Err(e),
        };
        // A later entry replaces an earlier non-directory of the same name.
        if let Some(old) = &existing
            && (old.kind != Kind::Dir || kind != EntryType::Directory)
        {
            if old.kind == Kind::Dir {
                report.warnings.push(format!(
                    "refused {:?}: a directory of that name exists",
                    String::from_utf8_lossy(&raw_path)
                ));
                continue;
            }
            fs.unlink(parent, &name, &c)?;
        }
        let ino = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let (attr, fh) = fs.create(parent, &name, 0o600, OpenFlags::default(), &c)?;
                let mut offset = 0u64;
                loop {
                    let n = read_full(&mut entry, &mut buf)
                        .map_err(|e| at_err(&format!("truncated data: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    fs.write(fh, offset, &buf[..n], &c)?;
                    offset += n as u64;
                }
                fs.release(fh)?;
                let expected = entry.header().entry_size().map_err(|e| at_err(&e))?;
                if kind != EntryType::GNUSparse && offset != expected {
                    return Err(at_err(&format!(
                        "truncated data: {offset} of {expected} bytes"
                    )));
                }
                report.files += 1;
                report.bytes += offset;
                attr.ino
            }
            EntryType::Directory => match existing {
                Some(attr) => attr.ino,
                None => fs.mkdir(parent, &name, 0o755, &c)?.ino,
            },
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| at_err(&"symlink without a target"))?
                    .into_owned();
                fs.symlink(parent, &name, &target, &c)?.ino
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| at_err(&"hard link without a target"))?
                    .into_owned();
                let target_parts = components(&target)?;
                if target_parts.contains(&&b".."[..]) {
                    report.warnings.push(format!(
                        "refused {:?}: hard link target leaves the target",
                        String::from_utf8_lossy(&raw_path)
                    ));
                    continue;
                }
                let target_ino = fs
                    .resolve_from(base, &target_parts.join(&b'/'), &c)
                    .map_err(|_| {
                        at_err(&format!(
                            "hard link to {:?}, which is not in the archive before it",
                            String::from_utf8_lossy(&target)
                        ))
                    })?;
                // The link shares the target's metadata; keep its ctime.
                let ctime = fs.getattr(target_ino)?.ctime;
                fs.link(target_ino, parent, &name, &c)?;
                fs.setattr(
                    target_ino,
                    &SetAttr {
                        ctime: Some(ctime),
                        ..SetAttr::default()
                    },
                    None,
                    &c,
                )?;
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (type_bits, rdev) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0),
                    _ => {
                        let major = entry
                            .header()
                            .device_major()
                            .map_err(|e| at_err(&e))?
                            .unwrap_or(0);
                        let minor = entry
                            .header()
                            .device_minor()
                            .map_err(|e| at_err(&e))?
                            .unwrap_or(0);
                        let bits = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (bits, libc::makedev(major, minor))
                    }
                };
                fs.mknod(parent, &name, type_bits | 0o600, rdev, &c)?.ino
            }
            other => {
                report.warnings.push(format!(
                    "skipped {:?}: unsupported entry type {other:?}",
                    String::from_utf8_lossy(&raw_path)
                ));
                continue;
            }
        };
        if kind == EntryType::Directory {
            dir_meta.push((ino, meta));
        } else {
            apply_meta(fs, ino, &meta, kind == EntryType::Symlink, &c)?;
        }
    }
    // Directory times last: creating their children changed them.
    for (ino, meta) in dir_meta.iter().rev() {
        apply_meta(fs, *ino, meta, false, &c)?;
    }
    Ok(report)
}

/// Reads until `buf` is full or the input ends.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn apply_meta(fs: &Fs, ino: Ino, meta: &EntryMeta, symlink: bool, c: &Caller) -> FsResult<()> {
    for (name, value) in &meta.xattrs {
        fs.setxattr(ino, name, value, 0, c)?;
    }
    // Owner first: chown clears setuid/setgid, the mode then sets them.
    let mut set = SetAttr {
        uid: Some(meta.uid),
        gid: Some(meta.gid),
        ..SetAttr::default()
    };
    fs.setattr(ino, &set, None, c)?;
    // The change time comes from the archive (or is the mtime), not the
    // clock: importing the same archive twice gives the same tree, so the
    // second import stores next to nothing.
    set = SetAttr {
        mode: (!symlink).then_some(meta.mode),
        atime: Some(TimeSet::At(meta.atime.unwrap_or(meta.mtime))),
        mtime: Some(TimeSet::At(meta.mtime)),
        ctime: Some(meta.ctime.unwrap_or(meta.mtime)),
        ..SetAttr::default()
    };
    fs.setattr(ino, &set, None, c)?;
    Ok(())
}

/// Writes the tree at `path` of `fs` as a tar stream (pax for long names,
/// nanosecond times and xattrs).
pub fn export_tar(fs: &Fs, path: &[u8], out: impl Write) -> FsResult<ArchiveReport> {
    let c = Caller::root();
    let top = fs.resolve(path, &c)?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut report = ArchiveReport::default();
    let mut seen_links: HashMap<Ino, Vec<u8>> = HashMap::new();
    // (inode, archive path); the top directory is "./".
    let mut stack: Vec<(Ino, Vec<u8>)> = vec![(top, b".".to_vec())];
    let io = |e: std::io::Error| archive_err(None, format!("writing: {e}"));
    while let Some((ino, name)) = stack.pop() {
        let attr = fs.getattr(ino)?;
        report.entries += 1;
        let mut header = Header::new_gnu();
        header.set_mode(attr.perm);
        header.set_uid(u64::from(attr.uid));
        header.set_gid(u64::from(attr.gid));
        header.set_mtime(attr.mtime.div_euclid(1_000_000_000).max(0) as u64);
        let mut pax: Vec<(String, Vec<u8>)> = vec![
            ("mtime".into(), format_time(attr.mtime).into_bytes()),
            ("atime".into(), format_time(attr.atime).into_bytes()),
        ];
        for xname in fs.listxattr(ino, &c)? {
            let value = fs.getxattr(ino, &xname, &c)?;
            pax.push((
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(&xname)),
                value,
            ));
        }
        let entry_path = if attr.kind == Kind::Dir && name != b"." {
            [name.as_slice(), b"/"].concat()
        } else if name == b"." {
            b"./".to_vec()
        } else {
            name.clone()
        };
        let entry_path = String::from_utf8_lossy(&entry_path).into_owned();
        if attr.kind != Kind::Dir && attr.nlink > 1 {
            if let Some(first) = seen_links.get(&ino) {
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                let target = String::from_utf8_lossy(first).into_owned();
                builder
                    .append_link(&mut header, &entry_path, &target)
                    .map_err(io)?;
                continue;
            }
            seen_links.insert(ino, name.clone());
        }
        builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(io)?;
        match attr.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, &entry_path, std::io::empty())
                    .map_err(io)?;
                let mut children: Vec<(Vec<u8>, Ino)> = fs
                    .readdir(ino, 2, &c)?
                    .into_iter()
                    .map(|e| (e.name, e.ino))
                    .collect();
                children.sort();
                for (child, child_ino) in children.into_iter().rev() {
                    let child_path = if name == b"." {
                        child
                    } else {
                        [name.as_slice(), b"/", &child].concat()
                    };
                    stack.push((child_ino, child_path));
                }
            }
            Kind::File => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(attr.size);
                let fh = fs.open_file(ino, OpenFlags::READ, &c)?;
                let reader = FileReader { fs, fh, offset: 0 };
                let result = builder
                    .append_data(&mut header, &entry_path, reader)
                    .map_err(io);
                fs.release(fh)?;
                result?;
                report.files += 1;
                report.bytes += attr.size;
            }
            Kind::Symlink => {
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                let target = fs.readlink(ino)?;
                builder
                    .append_link(
                        &mut header,
                        &entry_path,
                        String::from_utf8_lossy(&target).as_ref(),
                    )
                    .map_err(io)?;
            }
            Kind::CharDev | Kind::BlockDev | Kind::Fifo => {
                header.set_entry_type(match attr.kind {
                    Kind::CharDev => EntryType::Char,
                    Kind::BlockDev => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                header.set_size(0);
                if attr.kind != Kind::Fifo {
                    header
                        .set_device_major(libc::major(attr.rdev))
                        .map_err(io)?;
                    header
                        .set_device_minor(libc::minor(attr.rdev))
                        .map_err(io)?;
                }
                builder
                    .append_data(&mut header, &entry_path, std::io::empty())
                    .map_err(io)?;
            }
            Kind::Socket => {
                report.warnings.push(format!(
                    "skipped socket {entry_path:?}: tar cannot hold sockets"
                ));
            }
        }
    }
    builder.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(report)
}

fn format_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    format!("{secs}.{nanos:09}")
}

/// Reads a file through a handle, for the tar builder.
struct FileReader<'a> {
    fs: &'a Fs,
    fh: crate::attr::Fh,
    offset: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let data = self
            .fs
            .read(self.fh, self.offset, buf.len().min(PIECE))
            .map_err(std::io::Error::other)?;
        buf[..data.len()].copy_from_slice(&data);
        self.offset += data.len() as u64;
        Ok(data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"12"), Some(12_000_000_000));
        assert_eq!(pax_time(b"12.5"), Some(12_500_000_000));
        assert_eq!(pax_time(b"1.000000001"), Some(1_000_000_001));
        assert_eq!(pax_time(b"x"), None);
        assert_eq!(format_time(1_000_000_001), "1.000000001");
    }
}
