//! `hydra-git`: git repositories stored in the block DAG.
//!
//! [`import`] copies every object and ref of a real repository into the
//! store (`git/<name>`, one commit once every object is stored; again,
//! only what is new); [`export`] writes a bare repository with the same
//! ids back; [`Repo`] reads history, trees and files; [`checkout`] writes
//! a revision straight into a filesystem of the store; [`remote::serve`]
//! is the remote helper behind `git clone hydra::NAME`.
//!
//! ```
//! use hydra_dag::Bucket;
//! use hydra_git::Repo;
//!
//! let bucket = Bucket::in_memory();
//! let repo = Repo::open(&bucket, "empty")?;
//! assert!(repo.refs().is_empty());
//! assert!(repo.resolve("HEAD").is_err());
//! # Ok::<(), hydra_git::GitError>(())
//! ```

mod checkout;
mod error;
mod export;
mod import;
pub mod object;
mod pack;
pub mod remote;
mod repo;
mod rev;

pub use checkout::{CheckoutReport, Materializer, checkout, commit_root};
pub use error::{GitError, GitResult};
pub use export::{ExportReport, export};
pub use git2;
pub use import::{CopyStats, ImportReport, import, open_source, valid_ref_name};
pub use object::{Commit, ObjectKind, Oid, Signature, TreeEntry};
pub use repo::{RefTarget, Repo, StoredObject, Update, list, ref_name};
pub use rev::format_date;
