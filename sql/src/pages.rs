//! A database file as a map of fixed-size units in a prolly tree.
//!
//! The file is cut into [`UNIT`]-byte units (one SQLite page at the default
//! page size); unit `i` is a raw block under the key `p` + `i` (8 bytes,
//! big-endian) and the file's length is an 8-byte value under `size`. A
//! handle reads the snapshot it pinned and keeps its writes in memory until
//! [`PageFile::commit`] stores the changed units and moves the ref by one
//! compare-and-swap, so a crash at any point leaves the last commit whole.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use bytes::Bytes;
use hydra_dag::{Block, Bucket, Cid, Codec, DagError, RefName, RefNote};
use hydra_kv::{Item, Tree};
use lru::LruCache;

use crate::error::{SqlError, SqlResult};

/// Bytes per stored unit of the file.
pub const UNIT: usize = 4096;

/// Units kept decoded per handle (16 MiB).
const CACHED_UNITS: usize = 4096;

const SIZE_KEY: &[u8] = b"size";

fn unit_key(i: u64) -> Bytes {
    let mut k = Vec::with_capacity(9);
    k.push(b'p');
    k.extend_from_slice(&i.to_be_bytes());
    Bytes::from(k)
}

/// Where a handle's snapshot comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The ref: each read transaction takes its newest commit.
    Live(RefName),
    /// One fixed root, read-only (`None`: the empty database).
    At(Option<Cid>),
}

/// One open database file.
#[derive(Debug)]
pub struct PageFile {
    bucket: Bucket,
    source: Source,
    /// The snapshot reads see beneath the changes.
    base: Tree,
    /// The file's length in the snapshot.
    base_size: u64,
    /// The file's length with the changes.
    size: u64,
    /// Changed units: whole, or `None` when cut off by a truncation.
    dirty: BTreeMap<u64, Option<Vec<u8>>>,
    cache: LruCache<Cid, Bytes>,
}

impl PageFile {
    /// A handle on `source`, pinned to its current snapshot.
    pub fn open(bucket: Bucket, source: Source) -> SqlResult<PageFile> {
        let mut file = PageFile {
            base: Tree::new(bucket.clone(), None),
            bucket,
            source,
            base_size: 0,
            size: 0,
            dirty: BTreeMap::new(),
            cache: LruCache::new(NonZeroUsize::new(CACHED_UNITS).unwrap_or(NonZeroUsize::MIN)),
        };
        let root = match &file.source {
            Source::Live(name) => file.bucket.get_ref(name)?,
            Source::At(root) => *root,
        };
        file.repin(root)?;
        Ok(file)
    }

    /// Whether the handle may never write.
    pub fn is_read_only(&self) -> bool {
        matches!(self.source, Source::At(_))
    }

    /// The root the handle reads (`None`: empty).
    pub fn root(&self) -> Option<Cid> {
        self.base.root()
    }

    /// The current root of the ref (for a fixed snapshot, its root).
    pub fn newest(&self) -> SqlResult<Option<Cid>> {
        match &self.source {
            Source::Live(name) => Ok(self.bucket.get_ref(name)?),
            Source::At(root) => Ok(*root),
        }
    }

    /// Moves to the newest snapshot (a new read transaction); changes must
    /// have been committed or discarded.
    pub fn refresh(&mut self) -> SqlResult<()> {
        let newest = self.newest()?;
        if newest != self.base.root() {
            self.repin(newest)?;
        }
        Ok(())
    }

    fn repin(&mut self, root: Option<Cid>) -> SqlResult<()> {
        self.base = Tree::new(self.bucket.clone(), root);
        self.base_size = match self.base.get(SIZE_KEY)? {
            None => 0,
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("the file size is not 8 bytes"))?,
            ),
        };
        self.size = self.base_size;
        self.dirty.clear();
        Ok(())
    }

    fn corrupt(&self, reason: &str) -> SqlError {
        SqlError::Corrupt {
            name: match &self.source {
                Source::Live(name) => name.to_string(),
                Source::At(root) => format!("at {root:?}"),
            },
            reason: reason.to_string(),
        }
    }

    /// The file's length as this handle sees it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether there are changes not yet committed.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || self.size != self.base_size
    }

    /// Unit `i` of the snapshot (zeros past the stored ones).
    fn base_unit(&mut self, i: u64) -> SqlResult<Bytes> {
        match self.base.get_item(&unit_key(i))? {
            None => Ok(Bytes::from_static(&[0; UNIT])),
            Some(Item::Blob(cid)) => {
                if let Some(b) = self.cache.get(&cid) {
                    return Ok(b.clone());
                }
                let data = self.bucket.require(&cid)?;
                if data.len() != UNIT {
                    return Err(self.corrupt("a unit of the wrong length"));
                }
                self.cache.put(cid, data.clone());
                Ok(data)
            }
            Some(_) => Err(self.corrupt("a unit that is not a block")),
        }
    }

    /// Unit `i` as this handle sees it.
    fn unit(&mut self, i: u64) -> SqlResult<Bytes> {
        match self.dirty.get(&i) {
            Some(Some(data)) => Ok(Bytes::copy_from_slice(data)),
            Some(None) => Ok(Bytes::from_static(&[0; UNIT])),
            None => self.base_unit(i),
        }
    }

    /// Reads into `buf` from `offset`; returns how many bytes the file
    /// held there (the rest of `buf` is zeroed).
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> SqlResult<usize> {
        let avail = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < avail {
            let at = offset + done as u64;
            let i = at / UNIT as u64;
            let within = (at % UNIT as u64) as usize;
            let n = (UNIT - within).min(avail - done);
            match self.dirty.get(&i) {
                Some(Some(data)) => buf[done..done + n].copy_from_slice(&data[within..within + n]),
                Some(None) => buf[done..done + n].fill(0),
                None => {
                    let unit = self.base_unit(i)?;
                    buf[done..done + n].copy_from_slice(&unit[within..within + n]);
                }
            }
            done += n;
        }
        buf[avail..].fill(0);
        Ok(avail)
    }

    /// Writes `data` at `offset`, growing the file as needed.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> SqlResult<()> {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let i = at / UNIT as u64;
            let within = (at % UNIT as u64) as usize;
            let n = (UNIT - within).min(data.len() - done);
            let slot = match self.dirty.get_mut(&i) {
                Some(Some(unit)) => unit,
                _ => {
                    let unit = if n == UNIT {
                        vec![0; UNIT]
                    } else {
                        self.unit(i)?.to_vec()
                    };
                    self.dirty.entry(i).or_default().insert(unit)
                }
            };
            slot[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.size = self.size.max(offset + data.len() as u64);
        Ok(())
    }

    /// Cuts the file to `size` bytes (or extends it with zeros).
    pub fn truncate(&mut self, size: u64) -> SqlResult<()> {
        if size < self.size {
            let first_gone = size.div_ceil(UNIT as u64);
            let last = self.size.div_ceil(UNIT as u64);
            for i in first_gone..last {
                self.dirty.insert(i, None);
            }
            // What stays of a cut unit reads back; the rest is zeros.
            let within = (size % UNIT as u64) as usize;
            if within != 0 {
                let i = size / UNIT as u64;
                let mut unit = self.unit(i)?.to_vec();
                unit[within..].fill(0);
                self.dirty.insert(i, Some(unit));
            }
        }
        self.size = size;
        Ok(())
    }

    /// Whether the changes leave the file as the snapshot has it (what a
    /// rollback that wrote the old pages back looks like).
    pub fn changes_are_noops(&mut self) -> SqlResult<bool> {
        if self.size != self.base_size {
            return Ok(false);
        }
        let touched: Vec<u64> = self.dirty.keys().copied().collect();
        for i in touched {
            let base = self.base_unit(i)?;
            let same = match self.dirty.get(&i) {
                Some(Some(data)) => data[..] == base[..],
                Some(None) => base.iter().all(|b| *b == 0),
                None => true,
            };
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Forgets the changes.
    pub fn discard(&mut self) {
        self.dirty.clear();
        self.size = self.base_size;
    }

    /// Stores the changes and moves the ref from the pinned snapshot to
    /// the new one, logged with `message`; fails with
    /// [`SqlError::Conflict`] (storing nothing visible) if another writer
    /// committed since the snapshot was pinned. Returns the new root, or
    /// `None` when there was nothing to commit.
    pub fn commit(&mut self, message: &str) -> SqlResult<Option<Cid>> {
        let Source::Live(name) = &self.source else {
            return Err(self.corrupt("a snapshot is read-only"));
        };
        let name = name.clone();
        if !self.is_dirty() {
            return Ok(None);
        }
        let units = self.size.div_ceil(UNIT as u64);
        let mut blocks = Vec::new();
        let mut changes: BTreeMap<Bytes, Option<Item>> = BTreeMap::new();
        for (&i, data) in &self.dirty {
            let item = match data {
                Some(data) if i < units => {
                    let block = Block::new(Codec::RAW, data.clone())?;
                    let item = Item::Blob(*block.cid());
                    blocks.push(block);
                    Some(item)
                }
                _ => None,
            };
            changes.insert(unit_key(i), item);
        }
        changes.insert(
            Bytes::from_static(SIZE_KEY),
            Some(Item::Value(Bytes::copy_from_slice(
                &self.size.to_be_bytes(),
            ))),
        );
        // Pages and tree nodes go to the store in one batch (one sync).
        let pages = blocks.len();
        let new = self.base.apply_unstored(changes, &mut blocks)?;
        let session = self.bucket.session();
        session.put_blocks(&blocks)?;
        blocks.truncate(pages);
        let (old_root, new_root) = (self.base.root(), new.root());
        if new_root != old_root {
            let note = RefNote::by_current_user(message);
            match self
                .bucket
                .cas_ref(&name, old_root.as_ref(), new_root.as_ref(), &note)
            {
                Ok(_) => {}
                Err(DagError::RefConflict { .. }) => {
                    return Err(SqlError::Conflict {
                        name: name.to_string(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        // The units just written are the likeliest to be read next.
        for block in blocks {
            self.cache.put(*block.cid(), block.data().clone());
        }
        self.dirty.clear();
        self.base = new;
        self.base_size = self.size;
        Ok(new_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(bucket: &Bucket) -> PageFile {
        PageFile::open(
            bucket.clone(),
            Source::Live(RefName::new("sql/t").expect("name")),
        )
        .expect("open")
    }

    #[test]
    fn writes_read_back_and_commit_atomically() {
        let bucket = Bucket::in_memory();
        let mut f = live(&bucket);
        assert_eq!(f.size(), 0);
        f.write(0, &[1; 100]).expect("write");
        f.write(UNIT as u64 * 2 + 10, &[2; UNIT]).expect("write");
        assert_eq!(f.size(), UNIT as u64 * 3 + 10);
        let mut buf = vec![9; UNIT * 4];
        assert_eq!(f.read(0, &mut buf).expect("read"), UNIT * 3 + 10);
        assert_eq!(&buf[..100], &[1; 100][..]);
        assert!(buf[100..UNIT * 2 + 10].iter().all(|b| *b == 0));
        assert_eq!(&buf[UNIT * 2 + 10..UNIT * 3 + 10], &[2; UNIT][..]);
        assert!(buf[UNIT * 3 + 10..].iter().all(|b| *b == 0));
        // Another handle sees nothing until the commit.
        assert_eq!(live(&bucket).size(), 0);
        let root = f.commit("one").expect("commit");
        assert!(root.is_some());
        let mut g = live(&bucket);
        let mut again = vec![0; UNIT * 4];
        assert_eq!(g.read(0, &mut again).expect("read"), UNIT * 3 + 10);
        assert_eq!(again, buf);
        // Truncation zeroes what is cut, also when the file grows again.
        g.truncate(50).expect("truncate");
        g.truncate(UNIT as u64).expect("extend");
        let mut b = vec![7; UNIT];
        g.read(0, &mut b).expect("read");
        assert_eq!(&b[..50], &[1; 50][..]);
        assert!(b[50..].iter().all(|x| *x == 0));
        g.commit("two").expect("commit");
        assert_eq!(live(&bucket).size(), UNIT as u64);
    }

    #[test]
    fn a_stale_writer_conflicts_and_a_rollback_is_a_noop() {
        let bucket = Bucket::in_memory();
        let mut a = live(&bucket);
        let mut b = live(&bucket);
        a.write(0, &[1; UNIT]).expect("write");
        a.commit("a").expect("commit");
        b.write(0, &[2; UNIT]).expect("write");
        assert!(matches!(b.commit("b"), Err(SqlError::Conflict { .. })));
        b.discard();
        b.refresh().expect("refresh");
        let mut buf = [0; 4];
        b.read(0, &mut buf).expect("read");
        assert_eq!(buf, [1; 4]);
        // Writing the same bytes back changes nothing.
        b.write(0, &[1; UNIT]).expect("write");
        assert!(b.changes_are_noops().expect("compare"));
        b.write(5, &[3]).expect("write");
        assert!(!b.changes_are_noops().expect("compare"));
    }

    #[test]
    fn a_fixed_snapshot_reads_its_root_only() {
        let bucket = Bucket::in_memory();
        let mut a = live(&bucket);
        a.write(0, b"first").expect("write");
        let first = a.commit("1").expect("commit");
        a.write(0, b"later").expect("write");
        a.commit("2").expect("commit");
        let mut at = PageFile::open(bucket, Source::At(first)).expect("open");
        assert!(at.is_read_only());
        let mut buf = [0; 5];
        at.read(0, &mut buf).expect("read");
        assert_eq!(&buf, b"first");
        assert!(at.commit("x").is_err());
    }
}
