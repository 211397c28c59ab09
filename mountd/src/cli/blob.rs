//! `hydra blob put|cat|stat`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use hydra_chunker::{Blob, BlobReader, BlobWriter, ChunkParams};
use hydra_dag::{Cid, Codec, RefName, RefNote};

use super::{Context, output};

/// Subcommands of `hydra blob`.
#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Chunk and store a file (or stdin, `-`); prints the root CID last.
    Put {
        /// The file, or `-` for stdin.
        file: PathBuf,
        /// Point this ref at the blob so GC keeps it.
        #[arg(long = "ref", value_name = "NAME")]
        ref_name: Option<RefName>,
    },
    /// Write a blob's bytes (or a range of them) to stdout.
    Cat {
        /// The blob's root.
        cid: Cid,
        /// Start at this byte.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// At most this many bytes (default: to the end).
        #[arg(long)]
        len: Option<u64>,
    },
    /// Show a blob's size, chunks, distinct bytes, tree nodes and depth.
    Stat {
        /// The blob's root.
        cid: Cid,
    },
}

/// Runs a `hydra blob` subcommand.
pub fn run(cx: &Context, cmd: BlobCommand) -> Result<()> {
    match cmd {
        BlobCommand::Put { file, ref_name } => put(cx, &file, ref_name),
        BlobCommand::Cat { cid, offset, len } => cat(cx, cid, offset, len),
        BlobCommand::Stat { cid } => {
            let store = cx.open_read()?;
            let stats = BlobReader::open(store.bucket().clone(), cid)?.stats()?;
            if cx.json {
                return output::json(&stats);
            }
            println!("size:          {} bytes", stats.logical_bytes);
            println!("chunks:        {}", stats.chunks);
            println!(
                "unique chunks: {} ({})",
                stats.unique_chunks,
                output::bytes(stats.unique_bytes)
            );
            println!("tree nodes:    {} (depth {})", stats.nodes, stats.depth);
            Ok(())
        }
    }
}

fn put(cx: &Context, file: &PathBuf, ref_name: Option<RefName>) -> Result<()> {
    let (input, len): (Box<dyn Read>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let store = cx.open_write()?;
    let bucket = store.bucket();
    let params = ChunkParams::from_policy(&bucket.policy().chunking)?;
    let session = bucket.session();
    let mut writer = BlobWriter::new(session.clone(), params);
    let mut progress = output::Progress::new(input, len);
    writer.write_from(&mut progress)?;
    progress.finish();
    let (blob, stats) = writer.finish()?;
    // Inline content has no block of its own; on its own it is one raw chunk.
    let root = match &blob {
        Blob::Inline(data) => session.put(Codec::RAW, data.clone())?,
        Blob::Stored { root, .. } => *root,
    };
    if let Some(name) = &ref_name {
        let note = RefNote::by_current_user(format!("blob put {}", file.display()));
        bucket.set_ref(name, Some(&root), &note)?;
    }
    if cx.json {
        return output::json(&serde_json::json!({ "cid": root, "stats": stats }));
    }
    if let Blob::Stored { .. } = blob {
        println!(
            "{} in {} chunks ({} distinct)",
            output::bytes(stats.logical_bytes),
            stats.chunks,
            output::bytes(stats.unique_bytes)
        );
    }
    println!("{root}");
    Ok(())
}

fn cat(cx: &Context, cid: Cid, offset: u64, len: Option<u64>) -> Result<()> {
    let store = cx.open_read()?;
    let mut reader = BlobReader::open(store.bucket().clone(), cid)?;
    let size = reader.size();
    if offset > size {
        anyhow::bail!("offset {offset} is beyond the end of the {size}-byte blob");
    }
    let end = len.map_or(size, |n| offset.saturating_add(n).min(size));
    let mut out = std::io::stdout().lock();
    let mut pos = offset;
    while pos < end {
        let piece = (end - pos).min(4 << 20) as usize;
        let data = reader.read_at(pos, piece)?;
        out.write_all(&data)?;
        pos += data.len() as u64;
    }
    out.flush()?;
    Ok(())
}
