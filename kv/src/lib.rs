//! `hydra-kv`: ordered maps on the block DAG (prolly trees), the
//! key/value view that names them with refs `kv/<name>`, and the graph
//! view of RDF quads (`graph/<name>`).
//!
//! ```
//! use hydra_dag::Bucket;
//! use hydra_kv::Kv;
//!
//! let kv = Kv::open(Bucket::in_memory(), "demo")?;
//! let mut txn = kv.begin()?;
//! txn.put(b"greeting", b"hello")?;
//! txn.commit("first")?;
//! assert_eq!(kv.tree()?.get(b"greeting")?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), hydra_kv::KvError>(())
//! ```

mod cache;
mod diff;
mod error;
pub mod graph;
mod map;
pub mod node;
mod tree;

pub use diff::{Change, Conflict, diff, diff_each, merge};
pub use error::{KvError, KvResult};
pub use map::{Kv, Txn};
pub use node::Item;
pub use tree::{Edit, MAX_KEY, NODE_CACHE, Tree, build, check_key, prefix_end};
