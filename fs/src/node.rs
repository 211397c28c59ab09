//! The stored format: inode records, directory nodes, the filesystem root.
//!
//! All DAG-CBOR. A directory's entries carry their children's records
//! inline (metadata plus content: inline bytes or a blob root for files, a
//! link for subdirectories, the target for symlinks), so a tree of tiny
//! files costs a block per directory, not per file. A hard-linked inode
//! lives once in the root's link table and its entries name its group.
//! Entry lists, and the link table, are prolly trees of `hydra-kv` keyed
//! by name (nodes of about 64 entries cut where a name's hash says, and
//! before one passes 256 KiB), so a change to a large directory stores a
//! few new nodes, not the whole listing, and equal listings are one tree.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use hydra_chunker::Blob;
use hydra_dag::{Block, Bucket, Cid, Codec, Ipld};
use hydra_kv::{Item, Tree};

use crate::error::{FsError, FsResult};

/// The type of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDev,
    /// A block device.
    BlockDev,
    /// A unix socket.
    Socket,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::File => "f",
            Kind::Dir => "d",
            Kind::Symlink => "l",
            Kind::Fifo => "p",
            Kind::CharDev => "c",
            Kind::BlockDev => "b",
            Kind::Socket => "s",
        }
    }

    fn from_code(code: &str) -> Option<Kind> {
        Some(match code {
            "f" => Kind::File,
            "d" => Kind::Dir,
            "l" => Kind::Symlink,
            "p" => Kind::Fifo,
            "c" => Kind::CharDev,
            "b" => Kind::BlockDev,
            "s" => Kind::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            Kind::File => libc::S_IFREG,
            Kind::Dir => libc::S_IFDIR,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Fifo => libc::S_IFIFO,
            Kind::CharDev => libc::S_IFCHR,
            Kind::BlockDev => libc::S_IFBLK,
            Kind::Socket => libc::S_IFSOCK,
        }
    }

    /// The kind named by the `S_IFMT` bits of `mode`.
    pub fn from_mode(mode: u32) -> Option<Kind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFCHR => Kind::CharDev,
            libc::S_IFBLK => Kind::BlockDev,
            libc::S_IFSOCK => Kind::Socket,
            _ => return None,
        })
    }
}

/// Metadata every inode has. Times are nanoseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub atime: i64,
    /// Last content change.
    pub mtime: i64,
    /// Last status change.
    pub ctime: i64,
    /// Device number (devices only).
    pub rdev: u64,
    /// Extended attributes.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// What a record's content is, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// File bytes.
    File(Blob),
    /// A directory: the root of its entry list (`None` when empty).
    Dir(Option<Cid>),
    /// A symlink's target.
    Symlink(Vec<u8>),
    /// Fifos, devices, sockets: no content.
    Special,
}

/// One inode as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its type.
    pub kind: Kind,
    /// Its metadata.
    pub meta: Meta,
    /// Its content.
    pub content: Stored,
}

/// What a directory entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The child itself.
    Inode(Record),
    /// A hard-linked inode, by its group in the root's link table.
    Link(u64),
}

fn int(i: impl Into<i128>) -> Ipld {
    Ipld::Integer(i.into())
}

impl Record {
    /// Encodes as an IPLD map.
    pub fn to_ipld(&self) -> Ipld {
        let m = &self.meta;
        let mut map = BTreeMap::new();
        map.insert("k".into(), Ipld::String(self.kind.code().into()));
        map.insert("m".into(), int(m.perm));
        map.insert("u".into(), int(m.uid));
        map.insert("g".into(), int(m.gid));
        map.insert("a".into(), int(m.atime));
        map.insert("t".into(), int(m.mtime));
        map.insert("c".into(), int(m.ctime));
        if m.rdev != 0 {
            map.insert("r".into(), int(m.rdev));
        }
        if !m.xattrs.is_empty() {
            let list = m
                .xattrs
                .iter()
                .map(|(k, v)| Ipld::List(vec![Ipld::Bytes(k.clone()), Ipld::Bytes(v.clone())]))
                .collect();
            map.insert("x".into(), Ipld::List(list));
        }
        match &self.content {
            Stored::File(Blob::Inline(data)) => {
                map.insert("d".into(), Ipld::Bytes(data.to_vec()));
            }
            Stored::File(Blob::Stored { root, size }) => {
                map.insert("b".into(), Ipld::List(vec![Ipld::Link(*root), int(*size)]));
            }
            Stored::Dir(Some(cid)) => {
                map.insert("e".into(), Ipld::Link(*cid));
            }
            Stored::Dir(None) => {}
            Stored::Symlink(target) => {
                map.insert("s".into(), Ipld::Bytes(target.clone()));
            }
            Stored::Special => {}
        }
        Ipld::Map(map)
    }

    /// Decodes from an IPLD map; `cid` names the enclosing block for errors.
    pub fn from_ipld(value: &Ipld, cid: &Cid) -> FsResult<Record> {
        let bad = |reason: &str| FsError::Corrupt {
            cid: *cid,
            reason: reason.to_string(),
        };
        let get_int = |key: &str| -> FsResult<i128> {
            match value.get(key) {
                Some(Ipld::Integer(i)) => Ok(*i),
                None => Ok(0),
                _ => Err(bad("a number field is not a number")),
            }
        };
        let kind = match value.get("k") {
            Some(Ipld::String(code)) => Kind::from_code(code).ok_or_else(|| bad("unknown kind"))?,
            _ => return Err(bad("record without a kind")),
        };
        let u32_of = |i: i128| u32::try_from(i).map_err(|_| bad("out-of-range id or mode"));
        let mut xattrs = BTreeMap::new();
        if let Some(Ipld::List(list)) = value.get("x") {
            for pair in list {
                match pair {
                    Ipld::List(kv) => match (kv.first(), kv.get(1)) {
                        (Some(Ipld::Bytes(k)), Some(Ipld::Bytes(v))) => {
                            xattrs.insert(k.clone(), v.clone());
                        }
                        _ => return Err(bad("malformed xattr")),
                    },
                    _ => return Err(bad("malformed xattr")),
                }
            }
        }
        let meta = Meta {
            perm: u32_of(get_int("m")?)? & 0o7777,
            uid: u32_of(get_int("u")?)?,
            gid: u32_of(get_int("g")?)?,
            atime: get_int("a")? as i64,
            mtime: get_int("t")? as i64,
            ctime: get_int("c")? as i64,
            rdev: u64::try_from(get_int("r")?).map_err(|_| bad("bad rdev"))?,
            xattrs,
        };
        let content = match kind {
            Kind::File => match (value.get("d"), value.get("b")) {
                (Some(Ipld::Bytes(d)), _) => Stored::File(Blob::Inline(Bytes::from(d.clone()))),
                (_, Some(Ipld::List(b))) => match (b.first(), b.get(1)) {
                    (Some(Ipld::Link(root)), Some(Ipld::Integer(size))) => {
                        Stored::File(Blob::Stored {
                            root: *root,
                            size: u64::try_from(*size).map_err(|_| bad("bad size"))?,
                        })
                    }
                    _ => return Err(bad("malformed blob link")),
                },
                _ => Stored::File(Blob::empty()),
            },
            Kind::Dir => match value.get("e") {
                Some(Ipld::Link(cid)) => Stored::Dir(Some(*cid)),
                None => Stored::Dir(None),
                _ => return Err(bad("malformed directory link")),
            },
            Kind::Symlink => match value.get("s") {
                Some(Ipld::Bytes(t)) => Stored::Symlink(t.clone()),
                _ => return Err(bad("symlink without a target")),
            },
            _ => Stored::Special,
        };
        Ok(Record {
            kind,
            meta,
            content,
        })
    }
}

impl Entry {
    /// Encodes as an IPLD value.
    pub fn to_ipld(&self) -> Ipld {
        match self {
            Entry::Inode(record) => record.to_ipld(),
            Entry::Link(group) => Ipld::Map(BTreeMap::from([("h".to_string(), int(*group))])),
        }
    }

    /// Decodes an IPLD value; `cid` names the enclosing block for errors.
    pub fn from_ipld(value: &Ipld, cid: &Cid) -> FsResult<Entry> {
        match value.get("h") {
            Some(Ipld::Integer(group)) => {
                u64::try_from(*group)
                    .map(Entry::Link)
                    .map_err(|_| FsError::Corrupt {
                        cid: *cid,
                        reason: "bad link group".into(),
                    })
            }
            _ => Record::from_ipld(value, cid).map(Entry::Inode),
        }
    }
}

/// Writes a sorted list of (name, value) as a prolly tree of
/// `hydra-kv` (each value kept as DAG-CBOR, so its links are the tree's);
/// returns its root (`None` for no entries) and the blocks to store.
pub fn write_entries(entries: &[(Vec<u8>, Ipld)]) -> FsResult<(Option<Cid>, Vec<Block>)> {
    write_encoded(
        entries
            .iter()
            .map(|(name, value)| (name.clone(), Bytes::from(value.encode())))
            .collect(),
    )
}

/// A directory entry as its stored list holds it (DAG-CBOR).
pub fn encode_entry(entry: &Entry) -> Bytes {
    Bytes::from(entry.to_ipld().encode())
}

/// As [`write_entries`], with each value already encoded (by
/// [`encode_entry`]): a large directory's list is held as its bytes, not
/// as a decoded value per entry (about 800 bytes each).
pub fn write_encoded(entries: Vec<(Vec<u8>, Bytes)>) -> FsResult<(Option<Cid>, Vec<Block>)> {
    let items = entries
        .into_iter()
        .map(|(name, value)| (Bytes::from(name), Item::Cbor(value)))
        .collect();
    Ok(hydra_kv::build(items)?)
}

/// The list stored as `base` with each (name, value) of `changes` put in
/// (a value encoded by [`encode_entry`]) or, for `None`, taken out: only
/// the nodes on the way to them are new. `lists` holds the nodes read and
/// made (see [`list_cache`]).
pub fn update_encoded(
    lists: &Tree,
    base: Cid,
    changes: Vec<(Vec<u8>, Option<Bytes>)>,
) -> FsResult<(Option<Cid>, Vec<Block>)> {
    let changes = changes
        .into_iter()
        .map(|(name, value)| (Bytes::from(name), value.map(Item::Cbor)))
        .collect();
    let mut blocks = Vec::new();
    let tree = lists.at(Some(base)).apply_unstored(changes, &mut blocks)?;
    Ok((tree.root(), blocks))
}

/// Decoded directory-list nodes kept between commits.
const LIST_CACHE: usize = 8 << 20;

/// A cache of the directory-list nodes commits read and make (an empty
/// tree to take others from with [`Tree::at`]): a commit's change to a
/// list finds the nodes the last one made, decoded.
pub fn list_cache(bucket: &Bucket) -> Tree {
    Tree::with_cache(bucket.clone(), None, LIST_CACHE)
}

/// Hands each (name, value) of a list written by [`write_entries`] to
/// `f`, in order.
fn scan_entries(
    bucket: &Bucket,
    root: &Cid,
    mut f: impl FnMut(&[u8], Ipld) -> FsResult<()>,
) -> FsResult<()> {
    // No node cache: the filesystem keeps what it loads.
    let tree = Tree::with_cache(bucket.clone(), Some(*root), 0);
    let mut failed = None;
    tree.scan(
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |name, item| {
            let Item::Cbor(value) = item else {
                return Err(hydra_kv::KvError::Corrupt {
                    cid: *root,
                    reason: "a directory entry that is not a record".into(),
                });
            };
            let value = Ipld::decode(value)?;
            // An entry that does not decode stops the scan; its error is
            // the one returned.
            match f(name, value) {
                Ok(()) => Ok(true),
                Err(e) => {
                    failed = Some(e);
                    Ok(false)
                }
            }
        },
    )?;
    failed.map_or(Ok(()), Err)
}

/// Reads a list written by [`write_entries`], in order.
pub fn read_entries(bucket: &Bucket, root: &Cid) -> FsResult<Vec<(Vec<u8>, Ipld)>> {
    let mut out = Vec::new();
    scan_entries(bucket, root, |name, value| {
        out.push((name.to_vec(), value));
        Ok(())
    })?;
    Ok(out)
}

/// The entries of a directory's stored list (`None`: empty), decoded, in
/// name order.
pub fn read_dir<B: FromIterator<(Vec<u8>, Entry)>>(
    bucket: &Bucket,
    list: Option<Cid>,
) -> FsResult<B> {
    let Some(cid) = list else {
        return Ok(std::iter::empty().collect());
    };
    let mut out = Vec::new();
    scan_entries(bucket, &cid, |name, value| {
        out.push((name.to_vec(), Entry::from_ipld(&value, &cid)?));
        Ok(())
    })?;
    Ok(out.into_iter().collect())
}

/// The committed root of a filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsRoot {
    /// The root directory.
    pub root: Record,
    /// Hard-linked inodes: (group, link count, record).
    pub links: Vec<(u64, u32, Record)>,
    /// The next unused group number.
    pub next_group: u64,
}

impl FsRoot {
    /// Encodes the root, storing the link table as an entry tree.
    pub fn write(&self) -> FsResult<(Block, Vec<Block>)> {
        let entries: Vec<(Vec<u8>, Ipld)> = self
            .links
            .iter()
            .map(|(g, n, r)| {
                let value =
                    BTreeMap::from([("n".to_string(), int(*n)), ("r".to_string(), r.to_ipld())]);
                (g.to_be_bytes().to_vec(), Ipld::Map(value))
            })
            .collect();
        let (links, mut blocks) = write_entries(&entries)?;
        let mut map = BTreeMap::new();
        map.insert("hydra".to_string(), Ipld::String("fs".into()));
        map.insert("version".to_string(), int(1));
        map.insert("root".to_string(), self.root.to_ipld());
        if let Some(links) = links {
            map.insert("links".to_string(), Ipld::Link(links));
        }
        map.insert("next_group".to_string(), int(self.next_group));
        let block = Block::new(Codec::DAG_CBOR, Ipld::Map(map).encode())?;
        blocks.push(block.clone());
        Ok((block, blocks))
    }

    /// Reads a committed root block: the root directory's record, the
    /// link table's tree (not read), and the decoded block.
    pub fn read_head(bucket: &Bucket, cid: &Cid) -> FsResult<(Record, Option<Cid>, Ipld)> {
        let data = bucket.require(cid)?;
        let value = Ipld::decode(&data)?;
        let bad = |reason: &str| FsError::Corrupt {
            cid: *cid,
            reason: reason.to_string(),
        };
        if value.get("hydra") != Some(&Ipld::String("fs".into())) {
            return Err(bad("not a hydra filesystem root"));
        }
        if value.get("version") != Some(&int(1)) {
            return Err(bad("unsupported filesystem version"));
        }
        let root = Record::from_ipld(value.get("root").ok_or_else(|| bad("no root"))?, cid)?;
        if root.kind != Kind::Dir {
            return Err(bad("root is not a directory"));
        }
        let links = match value.get("links") {
            Some(Ipld::Link(table)) => Some(*table),
            _ => None,
        };
        Ok((root, links, value))
    }

    /// Loads a committed root.
    pub fn read(bucket: &Bucket, cid: &Cid) -> FsResult<FsRoot> {
        let (root, table, value) = FsRoot::read_head(bucket, cid)?;
        let bad = |reason: &str| FsError::Corrupt {
            cid: *cid,
            reason: reason.to_string(),
        };
        let mut links = Vec::new();
        if let Some(table) = &table {
            for (key, entry) in read_entries(bucket, table)? {
                let group =
                    <[u8; 8]>::try_from(key.as_slice()).map_err(|_| bad("bad group key"))?;
                let nlink = match entry.get("n") {
                    Some(Ipld::Integer(n)) => {
                        u32::try_from(*n).map_err(|_| bad("bad link count"))?
                    }
                    _ => return Err(bad("link table entry without a count")),
                };
                let record = Record::from_ipld(
                    entry
                        .get("r")
                        .ok_or_else(|| bad("link table entry without a record"))?,
                    table,
                )?;
                links.push((u64::from_be_bytes(group), nlink, record));
            }
        }
        let next_group = match value.get("next_group") {
            Some(Ipld::Integer(n)) => u64::try_from(*n).map_err(|_| bad("bad next_group"))?,
            _ => return Err(bad("no next_group")),
        };
        Ok(FsRoot {
            root,
            links,
            next_group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(i: u32, len: usize) -> Record {
        Record {
            kind: Kind::File,
            meta: Meta {
                perm: 0o644,
                uid: i,
                gid: 7,
                atime: 1,
                mtime: 2,
                ctime: 3,
                rdev: 0,
                xattrs: BTreeMap::from([(b"user.k".to_vec(), b"v".to_vec())]),
            },
            content: Stored::File(Blob::Inline(Bytes::from(vec![i as u8; len]))),
        }
    }

    #[test]
    fn records_round_trip() {
        let cid = Cid::hash(Codec::RAW, b"x");
        for r in [
            file(1, 10),
            Record {
                kind: Kind::Symlink,
                meta: Meta::default(),
                content: Stored::Symlink(b"../t".to_vec()),
            },
            Record {
                kind: Kind::CharDev,
                meta: Meta {
                    rdev: 0x0103,
                    ..Meta::default()
                },
                content: Stored::Special,
            },
            Record {
                kind: Kind::Dir,
                meta: Meta::default(),
                content: Stored::Dir(Some(cid)),
            },
        ] {
            assert_eq!(Record::from_ipld(&r.to_ipld(), &cid).expect("decodes"), r);
        }
    }

    #[test]
    fn large_listings_split_and_change_locally() {
        let bucket = Bucket::in_memory();
        let entries: Vec<(Vec<u8>, Ipld)> = (0..20_000u32)
            .map(|i| {
                (
                    format!("file-{i:06}").into_bytes(),
                    Entry::Inode(file(i, 100)).to_ipld(),
                )
            })
            .collect();
        let (root, blocks) = write_entries(&entries).expect("write");
        assert!(blocks.len() > 100, "{} nodes", blocks.len());
        assert!(
            blocks
                .iter()
                .all(|b| b.len() <= hydra_kv::node::MAX_NODE_BYTES + 1024)
        );
        bucket.put_blocks(&blocks).expect("put");
        let back = read_entries(&bucket, &root.expect("root")).expect("read");
        assert_eq!(back, entries);
        let mut changed = entries.clone();
        changed[10_000].1 = Entry::Link(5).to_ipld();
        let (_, after) = write_entries(&changed).expect("write");
        let old: std::collections::HashSet<Cid> = blocks.iter().map(|b| *b.cid()).collect();
        let new = after.iter().filter(|b| !old.contains(b.cid())).count();
        assert!(new <= 4, "{new} new nodes for one changed entry");
    }

    #[test]
    fn an_encoded_listing_reads_back_and_a_bad_entry_is_an_error() {
        let bucket = Bucket::in_memory();
        let mut listed: Vec<(Vec<u8>, Bytes)> = (0..3000u32)
            .map(|i| {
                (
                    format!("f{i:05}").into_bytes(),
                    encode_entry(&Entry::Inode(file(i, 10))),
                )
            })
            .collect();
        listed.push((b"link".to_vec(), encode_entry(&Entry::Link(9))));
        let (root, blocks) = write_encoded(listed.clone()).expect("write");
        bucket.put_blocks(&blocks).expect("put");
        let back: Vec<(Vec<u8>, Entry)> = read_dir(&bucket, root).expect("read");
        assert_eq!(back.len(), 3001);
        assert_eq!(
            back[1234],
            (b"f01234".to_vec(), Entry::Inode(file(1234, 10)))
        );
        assert_eq!(back[3000], (b"link".to_vec(), Entry::Link(9)));
        // The same bytes as the decoded form's writer.
        let decoded: Vec<(Vec<u8>, Ipld)> =
            back.iter().map(|(n, e)| (n.clone(), e.to_ipld())).collect();
        assert_eq!(write_entries(&decoded).expect("write").0, root);
        // An entry that is not a record fails the read, whichever it is.
        listed[2000].1 =
            Bytes::from(Ipld::Map(BTreeMap::from([("k".to_string(), int(1))])).encode());
        let (root, blocks) = write_encoded(listed).expect("write");
        bucket.put_blocks(&blocks).expect("put");
        let read: FsResult<Vec<(Vec<u8>, Entry)>> = read_dir(&bucket, root);
        assert!(matches!(read, Err(FsError::Corrupt { .. })), "{read:?}");
    }
}
