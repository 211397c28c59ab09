//! Git objects as git defines them: ids, kinds, and the parts of commits,
//! trees and tags that the view reads (parsed from the exact stored bytes).

use std::fmt;

use crate::error::{GitError, GitResult};

/// A git object id (SHA-1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(pub [u8; 20]);

impl Oid {
    /// The id git gives an object of `kind` with `data`.
    pub fn hash(kind: ObjectKind, data: &[u8]) -> Oid {
        let mut h = sha1_smol::Sha1::new();
        h.update(format!("{} {}\0", kind.name(), data.len()).as_bytes());
        h.update(data);
        Oid(h.digest().bytes())
    }

    /// Parses 40 hex digits.
    pub fn from_hex(hex: &str) -> Option<Oid> {
        if hex.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Oid(out))
    }

    /// From 20 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Oid> {
        Some(Oid(bytes.try_into().ok()?))
    }

    /// The id as libgit2 spells it.
    pub fn to_git2(self) -> git2::Oid {
        // 20 bytes are always a valid raw SHA-1 id.
        git2::Oid::from_bytes(&self.0).unwrap_or_else(|_| git2::Oid::zero())
    }

    /// The id of a libgit2 object id (SHA-1 repositories only).
    pub fn from_git2(oid: git2::Oid) -> Oid {
        let mut out = [0u8; 20];
        let bytes = oid.as_bytes();
        let n = bytes.len().min(20);
        out[..n].copy_from_slice(&bytes[..n]);
        Oid(out)
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

/// The four kinds of git object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A commit.
    Commit,
    /// A directory listing.
    Tree,
    /// File content.
    Blob,
    /// An annotated tag.
    Tag,
}

impl ObjectKind {
    /// The name git uses in object headers.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
            ObjectKind::Tag => "tag",
        }
    }

    /// The type number of pack files (also what the view stores).
    pub fn code(self) -> u8 {
        match self {
            ObjectKind::Commit => 1,
            ObjectKind::Tree => 2,
            ObjectKind::Blob => 3,
            ObjectKind::Tag => 4,
        }
    }

    /// The kind of a pack type number.
    pub fn from_code(code: u8) -> Option<ObjectKind> {
        Some(match code {
            1 => ObjectKind::Commit,
            2 => ObjectKind::Tree,
            3 => ObjectKind::Blob,
            4 => ObjectKind::Tag,
            _ => return None,
        })
    }

    /// The kind of a libgit2 object type.
    pub fn from_git2(kind: git2::ObjectType) -> Option<ObjectKind> {
        Some(match kind {
            git2::ObjectType::Commit => ObjectKind::Commit,
            git2::ObjectType::Tree => ObjectKind::Tree,
            git2::ObjectType::Blob => ObjectKind::Blob,
            git2::ObjectType::Tag => ObjectKind::Tag,
            _ => return None,
        })
    }
}

/// A person and time line of a commit or tag (`Name <email> 1700000000 +0100`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Signature {
    /// The name.
    pub name: String,
    /// The email address.
    pub email: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Offset from UTC in minutes.
    pub offset_minutes: i32,
}

impl Signature {
    fn parse(line: &str) -> Signature {
        let (name, rest) = line.split_once(" <").unwrap_or((line, ""));
        let (email, rest) = rest
            .split_once("> ")
            .unwrap_or((rest.trim_end_matches('>'), ""));
        let mut parts = rest.split_whitespace();
        let time = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
        let offset_minutes = parts
            .next()
            .and_then(|z| {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let digits = z.trim_start_matches(['+', '-']);
                let n: i32 = digits.parse().ok()?;
                Some(sign * ((n / 100) * 60 + n % 100))
            })
            .unwrap_or(0);
        Signature {
            name: name.to_string(),
            email: email.to_string(),
            time,
            offset_minutes,
        }
    }
}

/// What the view reads of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Its root tree.
    pub tree: Oid,
    /// Its parents, in order.
    pub parents: Vec<Oid>,
    /// Who wrote the change.
    pub author: Signature,
    /// Who committed it.
    pub committer: Signature,
    /// The message (everything after the headers).
    pub message: String,
}

fn header_oid(oid: &Oid, value: &str, what: &str) -> GitResult<Oid> {
    Oid::from_hex(value).ok_or_else(|| GitError::CorruptObject {
        oid: *oid,
        reason: format!("bad {what} id {value:?}"),
    })
}

impl Commit {
    /// Parses a commit's bytes; `oid` names it in errors.
    pub fn parse(oid: &Oid, data: &[u8]) -> GitResult<Commit> {
        let text = String::from_utf8_lossy(data);
        let (headers, message) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut tree = None;
        let mut parents = Vec::new();
        let mut author = Signature::default();
        let mut committer = Signature::default();
        for line in headers.lines() {
            match line.split_once(' ') {
                Some(("tree", v)) if tree.is_none() => tree = Some(header_oid(oid, v, "tree")?),
                Some(("parent", v)) => parents.push(header_oid(oid, v, "parent")?),
                Some(("author", v)) => author = Signature::parse(v),
                Some(("committer", v)) => committer = Signature::parse(v),
                _ => {}
            }
        }
        let tree = tree.ok_or_else(|| GitError::CorruptObject {
            oid: *oid,
            reason: "commit without a tree".into(),
        })?;
        Ok(Commit {
            tree,
            parents,
            author,
            committer,
            message: message.to_string(),
        })
    }

    /// The first line of the message.
    pub fn summary(&self) -> &str {
        self.message.lines().next().unwrap_or("")
    }
}

/// What a tree entry is, by its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (mode 100644 or the legacy 100664).
    File,
    /// An executable file (100755).
    Executable,
    /// A symbolic link (120000): the blob is the target.
    Symlink,
    /// A subdirectory (040000).
    Tree,
    /// A submodule (160000): a commit of another repository.
    Submodule,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// The mode as git wrote it (octal digits).
    pub mode: u32,
    /// The name.
    pub name: Vec<u8>,
    /// The object.
    pub oid: Oid,
}

impl TreeEntry {
    /// What the entry is.
    pub fn kind(&self) -> EntryKind {
        match self.mode & 0o170000 {
            0o040000 => EntryKind::Tree,
            0o120000 => EntryKind::Symlink,
            0o160000 => EntryKind::Submodule,
            _ if self.mode & 0o111 != 0 => EntryKind::Executable,
            _ => EntryKind::File,
        }
    }

    /// The object kind the entry names.
    pub fn object_kind(&self) -> ObjectKind {
        match self.kind() {
            EntryKind::Tree => ObjectKind::Tree,
            EntryKind::Submodule => ObjectKind::Commit,
            _ => ObjectKind::Blob,
        }
    }
}

/// Parses a tree's bytes; `oid` names it in errors.
pub fn parse_tree(oid: &Oid, data: &[u8]) -> GitResult<Vec<TreeEntry>> {
    let bad = |reason: &str| GitError::CorruptObject {
        oid: *oid,
        reason: reason.to_string(),
    };
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("tree entry without a mode"))?;
        let mode = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .ok_or_else(|| bad("tree entry with a bad mode"))?;
        rest = &rest[space + 1..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("tree entry without a name"))?;
        let name = rest[..nul].to_vec();
        rest = &rest[nul + 1..];
        let id = rest.get(..20).ok_or_else(|| bad("truncated tree entry"))?;
        entries.push(TreeEntry {
            mode,
            name,
            oid: Oid::from_bytes(id).ok_or_else(|| bad("truncated tree entry"))?,
        });
        rest = &rest[20..];
    }
    Ok(entries)
}

/// The object an annotated tag points at, and its kind.
pub fn parse_tag(oid: &Oid, data: &[u8]) -> GitResult<(Oid, ObjectKind)> {
    let text = String::from_utf8_lossy(data);
    let mut target = None;
    let mut kind = None;
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        match line.split_once(' ') {
            Some(("object", v)) => target = Some(header_oid(oid, v, "tag target")?),
            Some(("type", v)) => {
                kind = [
                    ObjectKind::Commit,
                    ObjectKind::Tree,
                    ObjectKind::Blob,
                    ObjectKind::Tag,
                ]
                .into_iter()
                .find(|k| k.name() == v)
            }
            _ => {}
        }
    }
    match (target, kind) {
        (Some(t), Some(k)) => Ok((t, k)),
        _ => Err(GitError::CorruptObject {
            oid: *oid,
            reason: "tag without an object or a type".into(),
        }),
    }
}

/// The objects an object names directly (submodule commits excluded: they
/// belong to other repositories).
pub fn children(oid: &Oid, kind: ObjectKind, data: &[u8]) -> GitResult<Vec<(Oid, ObjectKind)>> {
    Ok(match kind {
        ObjectKind::Blob => Vec::new(),
        ObjectKind::Commit => {
            let c = Commit::parse(oid, data)?;
            let mut out = vec![(c.tree, ObjectKind::Tree)];
            out.extend(c.parents.into_iter().map(|p| (p, ObjectKind::Commit)));
            out
        }
        ObjectKind::Tree => parse_tree(oid, data)?
            .into_iter()
            .filter(|e| e.kind() != EntryKind::Submodule)
            .map(|e| (e.oid, e.object_kind()))
            .collect(),
        ObjectKind::Tag => vec![parse_tag(oid, data)?],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_what_git_computes() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            Oid::hash(ObjectKind::Blob, b"hello\n").to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let oid = Oid::hash(ObjectKind::Blob, b"");
        assert_eq!(Oid::from_hex(&oid.to_string()), Some(oid));
        assert_eq!(Oid::from_hex("xyz"), None);
    }

    #[test]
    fn commits_trees_and_tags_parse() {
        let tree = Oid::hash(ObjectKind::Tree, b"");
        let parent = Oid::hash(ObjectKind::Blob, b"p");
        let text = format!(
            "tree {tree}\nparent {parent}\nauthor A U <a@x> 1700000000 +0130\ncommitter C <c@x> 1700000100 -0800\n\nsubject\n\nbody\n"
        );
        let oid = Oid::hash(ObjectKind::Commit, text.as_bytes());
        let c = Commit::parse(&oid, text.as_bytes()).expect("parses");
        assert_eq!((c.tree, c.parents.clone()), (tree, vec![parent]));
        assert_eq!(c.author.name, "A U");
        assert_eq!(c.author.offset_minutes, 90);
        assert_eq!(c.committer.offset_minutes, -480);
        assert_eq!(c.summary(), "subject");

        let mut raw = b"100755 run\0".to_vec();
        raw.extend_from_slice(&parent.0);
        raw.extend_from_slice(b"40000 sub\0");
        raw.extend_from_slice(&tree.0);
        let entries = parse_tree(&oid, &raw).expect("parses");
        assert_eq!(entries[0].kind(), EntryKind::Executable);
        assert_eq!(entries[1].kind(), EntryKind::Tree);
        assert!(parse_tree(&oid, &raw[..raw.len() - 3]).is_err());

        let tag = format!("object {parent}\ntype commit\ntag v1\n\nmsg\n");
        assert_eq!(
            parse_tag(&oid, tag.as_bytes()).expect("parses"),
            (parent, ObjectKind::Commit)
        );
    }
}
