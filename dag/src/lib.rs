//! `hydra-dag`: the block layer of hydra.
//!
//! CIDs (CIDv1, BLAKE3-256), blocks, DAG-CBOR, the [`Volume`] storage seam
//! and its backends (in memory; the embedded SQLite-index + pack-file
//! store), decorators for verification and caching, [`Bucket`]s with refs,
//! the changelog and garbage collection, and CAR import/export.
//!
//! ```
//! use hydra_dag::{Bucket, Codec, RefName, RefNote};
//!
//! let bucket = Bucket::in_memory();
//! let cid = bucket.put(Codec::RAW, &b"hello"[..])?;
//! assert_eq!(bucket.require(&cid)?.as_ref(), b"hello");
//! let name = RefName::new("fs/demo")?;
//! bucket.cas_ref(&name, None, Some(&cid), &RefNote::default())?;
//! assert_eq!(bucket.get_ref(&name)?, Some(cid));
//! # Ok::<(), hydra_dag::DagError>(())
//! ```

mod block;
mod bucket;
mod cache;
pub mod car;
pub mod cbor;
mod cid;
mod digest;
mod durable;
mod error;
mod fsck;
mod gc;
mod identity;
pub mod local;
mod memory;
mod redis_volume;
mod refs;
mod store;
mod sync;
mod transform;
pub mod varint;
mod verify;
mod volume;
pub mod zeros;

pub use block::{Block, MAX_BLOCK_SIZE};
pub use bucket::{Bucket, BucketPolicy, ChunkingPolicy, IoStats, WriteSession};
pub use cache::{CacheStats, CachedVolume};
pub use cbor::Ipld;
pub use cid::{BLAKE3_CODE, Cid, Codec, DIGEST_LEN};
pub use error::{DagError, DagResult};
pub use fsck::{BadCopy, FsckReport};
pub use gc::{GcOptions, GcReport};
pub use identity::{IDENTITY_FILE, Identity, Signature, Verdict, entry_payload};
pub use local::LocalVolume;
pub use memory::MemoryVolume;
pub use redis_volume::RedisVolume;
pub use refs::{LogEntry, RefName, RefNote, now_ns};
pub use store::{
    BucketSpec, OpenMode, STORE_FORMAT, Store, StoreConfig, StoreOptions, VolumeContext,
    VolumeFactory, VolumeRegistry, VolumeSpec,
};
pub use sync::{SyncReport, sync};
pub use transform::{EncryptionSpec, Secret, TransformVolume, Transforms};
pub use verify::VerifiedVolume;
pub use volume::{BlockInfo, CompactStats, Volume, VolumeStats};
