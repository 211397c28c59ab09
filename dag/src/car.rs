//! CAR v1: the IPLD archive format, for moving DAGs in and out of hydra.
//!
//! A CAR is a varint-prefixed DAG-CBOR header `{roots: [CID], version: 1}`
//! followed by sections `varint(len) CID bytes`. Export walks the DAG from a
//! root depth first, each block once. Import verifies every block against
//! its CID before storing any, so a bad file leaves the store unchanged.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::Path;

use bytes::Bytes;

use crate::block::{Block, MAX_BLOCK_SIZE};
use crate::bucket::Bucket;
use crate::cbor::{self, Ipld};
use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};
use crate::varint;

/// Headers larger than this are refused.
const MAX_HEADER: u64 = 1 << 20;
/// Imports store blocks in batches of about this many bytes.
const IMPORT_BATCH: usize = 32 << 20;

/// What an export or import moved.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CarSummary {
    /// The roots in the header.
    pub roots: Vec<Cid>,
    /// Blocks written or read.
    pub blocks: u64,
    /// Bytes of block data.
    pub bytes: u64,
}

/// Writes the DAG under `root` as a CAR v1 stream.
pub fn export_car(bucket: &Bucket, root: &Cid, out: impl Write) -> DagResult<CarSummary> {
    export_car_scoped(bucket, root, CarScope::All, out)
}

/// Which blocks a CAR export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarScope {
    /// The root block alone.
    Block,
    /// The root and everything it reaches.
    All,
}

/// Writes a CAR v1 of the blocks `scope` names, depth-first, each block once.
pub fn export_car_scoped(
    bucket: &Bucket,
    root: &Cid,
    scope: CarScope,
    out: impl Write,
) -> DagResult<CarSummary> {
    let mut car = CarWriter::new(out, &[*root])?;
    car.dag(bucket, root, scope)?;
    car.finish()
}

/// Writes a CAR v1 block by block, each block once.
pub struct CarWriter<W: Write> {
    out: BufWriter<W>,
    seen: HashSet<Cid>,
    summary: CarSummary,
}

impl<W: Write> CarWriter<W> {
    /// Starts a CAR whose header names `roots`.
    pub fn new(out: W, roots: &[Cid]) -> DagResult<CarWriter<W>> {
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut header = BTreeMap::new();
        header.insert(
            "roots".to_string(),
            Ipld::List(roots.iter().map(|r| Ipld::Link(*r)).collect()),
        );
        header.insert("version".to_string(), Ipld::Integer(1));
        let header = Ipld::Map(header).encode();
        let mut prefix = Vec::new();
        varint::encode(header.len() as u64, &mut prefix);
        out.write_all(&prefix)?;
        out.write_all(&header)?;
        Ok(CarWriter {
            out,
            seen: HashSet::new(),
            summary: CarSummary {
                roots: roots.to_vec(),
                ..CarSummary::default()
            },
        })
    }

    /// Writes block `cid` from `bucket` unless already written; returns
    /// its bytes when it was written now.
    pub fn block(&mut self, bucket: &Bucket, cid: &Cid) -> DagResult<Option<Bytes>> {
        if !self.seen.insert(*cid) {
            return Ok(None);
        }
        let data = bucket.require(cid)?;
        let cid_bytes = cid.to_bytes();
        let mut prefix = Vec::new();
        varint::encode((cid_bytes.len() + data.len()) as u64, &mut prefix);
        self.out.write_all(&prefix)?;
        self.out.write_all(&cid_bytes)?;
        self.out.write_all(&data)?;
        self.summary.blocks += 1;
        self.summary.bytes += data.len() as u64;
        Ok(Some(data))
    }

    /// Writes `root` and, for [`CarScope::All`], everything it reaches.
    pub fn dag(&mut self, bucket: &Bucket, root: &Cid, scope: CarScope) -> DagResult<()> {
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            let Some(data) = self.block(bucket, &cid)? else {
                continue;
            };
            if cid.codec() == Codec::DAG_CBOR && scope == CarScope::All {
                let links = cbor::links(&data)?;
                stack.extend(links.into_iter().rev().filter(|l| !self.seen.contains(l)));
            }
        }
        Ok(())
    }

    /// Flushes; returns what was written.
    pub fn finish(mut self) -> DagResult<CarSummary> {
        self.out.flush()?;
        Ok(self.summary)
    }
}

/// Reads a CAR v1 stream block by block, verifying each.
#[derive(Debug)]
pub struct CarReader<R: Read> {
    input: R,
    offset: u64,
    roots: Vec<Cid>,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> DagResult<Self> {
        let mut reader = CarReader {
            input,
            offset: 0,
            roots: Vec::new(),
        };
        let len = reader
            .read_varint()?
            .ok_or_else(|| reader.err(0, "empty file, no CAR header"))?;
        if len == 0 || len > MAX_HEADER {
            return Err(reader.err(0, &format!("header length {len} is out of range")));
        }
        let header = reader.read_exact(len as usize, "header")?;
        let header = Ipld::decode(&header).map_err(|e| {
            reader.err(reader.offset - len, &format!("header is not DAG-CBOR: {e}"))
        })?;
        match header.get("version") {
            Some(Ipld::Integer(1)) => {}
            Some(Ipld::Integer(2)) => {
                return Err(DagError::Unsupported(
                    "CAR v2 files; export them as CAR v1".into(),
                ));
            }
            _ => return Err(reader.err(0, "header has no version 1")),
        }
        let Some(Ipld::List(roots)) = header.get("roots") else {
            return Err(reader.err(0, "header has no roots list"));
        };
        for root in roots {
            match root {
                Ipld::Link(cid) => reader.roots.push(*cid),
                _ => return Err(reader.err(0, "a root is not a CID")),
            }
        }
        Ok(reader)
    }

    /// The roots named by the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    fn err(&self, offset: u64, reason: &str) -> DagError {
        DagError::Car {
            offset,
            reason: reason.to_string(),
        }
    }

    /// Reads a varint; `None` at a clean end of input.
    fn read_varint(&mut self) -> DagResult<Option<u64>> {
        let start = self.offset;
        let mut buf = Vec::with_capacity(10);
        loop {
            let mut byte = [0u8; 1];
            match self.input.read(&mut byte) {
                Ok(0) if buf.is_empty() => return Ok(None),
                Ok(0) => return Err(self.err(start, "truncated length prefix")),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            self.offset += 1;
            buf.push(byte[0]);
            if byte[0] & 0x80 == 0 {
                return varint::decode(&buf)
                    .map(|(v, _)| Some(v))
                    .ok_or_else(|| self.err(start, "malformed length prefix"));
            }
            if buf.len() >= 9 {
                return Err(self.err(start, "malformed length prefix"));
            }
        }
    }

    fn read_exact(&mut self, len: usize, what: &str) -> DagResult<Vec<u8>> {
        let mut buf = vec![0u8; len];
        match self.input.read_exact(&mut buf) {
            Ok(()) => {
                self.offset += len as u64;
                Ok(buf)
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Err(self.err(self.offset, &format!("truncated {what}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The next verified block, or `None` at the end.
    pub fn next_block(&mut self) -> DagResult<Option<Block>> {
        let start = self.offset;
        let Some(len) = self.read_varint()? else {
            return Ok(None);
        };
        if len == 0 || len > (MAX_BLOCK_SIZE + 64) as u64 {
            return Err(self.err(start, &format!("section length {len} is out of range")));
        }
        let section = self.read_exact(len as usize, "block section")?;
        let (cid, n) =
            Cid::read_bytes(&section).map_err(|e| self.err(start, &format!("section CID: {e}")))?;
        let data = Bytes::from(section).slice(n..);
        match Block::verified(cid, data) {
            Ok(block) => Ok(Some(block)),
            Err(DagError::Integrity { cid }) => Err(self.err(
                start,
                &format!("block {cid} does not match its content hash"),
            )),
            Err(e) => Err(e),
        }
    }
}

/// Imports a CAR file: verifies all of it first, then stores its blocks.
///
/// The blocks are written through one write session; the caller points a
/// ref at a root before dropping it, or the blocks are garbage.
pub fn import_car(session: &crate::WriteSession, path: &Path) -> DagResult<CarSummary> {
    let open = || -> DagResult<CarReader<BufReader<File>>> {
        let file = File::open(path).map_err(|e| DagError::io(path, e))?;
        CarReader::new(BufReader::with_capacity(1 << 20, file))
    };
    let mut check = open()?;
    let mut summary = CarSummary {
        roots: check.roots().to_vec(),
        ..CarSummary::default()
    };
    while let Some(block) = check.next_block()? {
        summary.blocks += 1;
        summary.bytes += block.len() as u64;
    }
    let mut reader = open()?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    while let Some(block) = reader.next_block()? {
        batch_bytes += block.len();
        batch.push(block);
        if batch_bytes >= IMPORT_BATCH {
            session.put_blocks(&batch)?;
            batch.clear();
            batch_bytes = 0;
        }
    }
    session.put_blocks(&batch)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(bucket: &Bucket) -> Cid {
        let a = bucket.put(Codec::RAW, vec![1u8; 5000]).expect("put");
        let b = bucket.put(Codec::RAW, &b"b"[..]).expect("put");
        let inner = Ipld::List(vec![Ipld::Link(a), Ipld::Link(b)]).encode();
        let inner = bucket.put(Codec::DAG_CBOR, inner).expect("put");
        let root = Ipld::List(vec![Ipld::Link(inner), Ipld::Link(a)]).encode();
        bucket.put(Codec::DAG_CBOR, root).expect("put")
    }

    #[test]
    fn round_trip_between_buckets() {
        let from = Bucket::in_memory();
        let root = sample(&from);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.car");
        let out = export_car(&from, &root, File::create(&path).expect("create")).expect("export");
        assert_eq!(out.blocks, 4);

        let to = Bucket::in_memory();
        let session = to.session();
        let back = import_car(&session, &path).expect("import");
        assert_eq!(back.roots, vec![root]);
        assert_eq!(back.blocks, 4);
        let again = tempfile::NamedTempFile::new().expect("tmp");
        export_car(&to, &root, again.reopen().expect("reopen")).expect("export");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            std::fs::read(again.path()).expect("read")
        );
    }

    #[test]
    fn bad_files_store_nothing() {
        let from = Bucket::in_memory();
        let root = sample(&from);
        let mut good = Vec::new();
        export_car(&from, &root, &mut good).expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        for (name, bytes) in [
            ("truncated", good[..good.len() - 3].to_vec()),
            ("garbage", b"this is not a car file at all".to_vec()),
            ("empty", Vec::new()),
            ("flipped", flipped),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let to = Bucket::in_memory();
            let err = import_car(&to.session(), &path).expect_err(name);
            assert!(matches!(err, DagError::Car { .. }), "{name}: {err}");
            assert_eq!(to.stats().expect("stats")[0].blocks, 0, "{name}");
        }
    }
}
