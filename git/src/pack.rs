//! Writing objects from the store into a real repository, as one pack
//! file (whole objects, zlib-compressed; git's indexer checks every id).

use std::collections::HashSet;
use std::io::Write;

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::error::{GitError, GitResult};
use crate::object::{ObjectKind, Oid, children};
use crate::repo::Repo;

/// Writes objects `oids` of `repo` into `target` as one pack.
pub fn write_pack(repo: &Repo, target: &git2::Repository, oids: &[Oid]) -> GitResult<()> {
    if oids.is_empty() {
        return Ok(());
    }
    let odb = target.odb()?;
    let mut packwriter = odb.packwriter()?;
    // The indexer takes bytes as given: hand it large pieces.
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, &mut packwriter);
    let count = u32::try_from(oids.len())
        .map_err(|_| GitError::Source("more than 4G objects for one pack".into()))?;
    let mut hasher = sha1_smol::Sha1::new();
    let io = |e| GitError::io("writing a pack", e);
    let mut emit = |bytes: &[u8], writer: &mut dyn Write| -> GitResult<()> {
        hasher.update(bytes);
        writer.write_all(bytes).map_err(io)
    };
    let mut header = b"PACK".to_vec();
    header.extend_from_slice(&2u32.to_be_bytes());
    header.extend_from_slice(&count.to_be_bytes());
    emit(&header, &mut writer)?;
    let mut buf = Vec::new();
    // One compressor for every object: its state is large to allocate.
    let mut zlib = Compress::new(Compression::fast(), true);
    for oid in oids {
        let (kind, data) = repo.read(oid)?;
        buf.clear();
        // Type and size: 3 bits of type, then the size 4 bits first and 7
        // bits per following byte, low bits first.
        let mut size = data.len() as u64;
        let mut byte = (kind.code() << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size != 0 {
            buf.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        buf.push(byte);
        deflate(&mut zlib, &data, &mut buf)?;
        emit(&buf, &mut writer)?;
    }
    let digest = hasher.digest().bytes();
    writer.write_all(&digest).map_err(io)?;
    writer.flush().map_err(io)?;
    drop(writer);
    packwriter.commit()?;
    Ok(())
}

/// Appends `data` to `out` as one zlib stream.
fn deflate(zlib: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> GitResult<()> {
    zlib.reset();
    let start = zlib.total_in();
    loop {
        out.reserve(data.len() / 2 + 64);
        let done = (zlib.total_in() - start) as usize;
        match zlib.compress_vec(&data[done..], out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(GitError::io(
                    "compressing an object",
                    std::io::Error::other(e),
                ));
            }
        }
    }
}

/// The objects reachable from `wants` that `target` lacks (an object it
/// has is taken to come with everything it names, as git assumes).
pub fn missing_in(repo: &Repo, target: &git2::Odb<'_>, wants: &[Oid]) -> GitResult<Vec<Oid>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = wants.to_vec();
    while let Some(oid) = stack.pop() {
        if !seen.insert(oid) || target.exists(oid.to_git2()) {
            continue;
        }
        let object = repo
            .object(&oid)?
            .ok_or(GitError::MissingObject { oid, context: None })?;
        if object.kind != ObjectKind::Blob {
            let data = repo.content(&object.content)?;
            for (child, _) in children(&oid, object.kind, &data)? {
                if !seen.contains(&child) {
                    stack.push(child);
                }
            }
        }
        out.push(oid);
    }
    Ok(out)
}
