//! `hydra-chunker`: content-defined chunking and blob DAGs.
//!
//! Files are cut with FastCDC (2020) into chunks hashed with BLAKE3 and
//! stored as raw blocks; a content-defined tree of (CID, length) links
//! makes reads at any offset cost O(depth). Small content stays inline.
//! Edits reuse every chunk they do not touch.
//!
//! ```
//! use hydra_chunker::{BlobEditor, BlobReader, ChunkParams, put_bytes};
//! use hydra_dag::Bucket;
//!
//! let bucket = Bucket::in_memory();
//! let session = bucket.session();
//! let data = vec![7u8; 300_000];
//! let blob = put_bytes(&session, ChunkParams::default(), &data)?;
//! let mut reader = BlobReader::new(bucket.clone(), blob.clone());
//! assert_eq!(reader.read_at(1000, 10)?, vec![7u8; 10]);
//! let edited = BlobEditor::new(session, ChunkParams::default()).write_at(&blob, 5, b"hi")?;
//! assert_eq!(BlobReader::new(bucket, edited).read_at(4, 4)?, vec![7, b'h', b'i', 7]);
//! # Ok::<(), hydra_chunker::ChunkError>(())
//! ```

mod blob;
mod cut;
mod edit;
mod error;
mod holes;
mod nodes;
mod params;
mod pool;
mod reader;
mod rechunk;
mod recut;
pub mod tree;
mod walk;
mod writer;

pub use blob::{Blob, BlobStats, INLINE_MAX};
pub use edit::BlobEditor;
pub use error::{ChunkError, ChunkResult};
pub use nodes::NodeCache;
pub use params::ChunkParams;
pub use reader::BlobReader;
pub use rechunk::{Prior, chunk_changed};
pub use writer::{BlobWriter, chunk_blocks, put_bytes, put_reader, put_shared};

/// Frees the write buffers kept for reuse that no write has taken for a
/// while (2 s); returns how many.
pub fn release_idle_buffers() -> usize {
    pool::release_idle(pool::IDLE_FOR)
}

/// `len` pseudo-random bytes (xorshift from `seed`), for unit tests.
#[cfg(test)]
fn test_noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
