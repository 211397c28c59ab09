//! CARs the trustless-gateway way: which blocks a request names, so a
//! client can verify what it gets against the CID it asked for.

use hydra_dag::car::{CarScope, CarWriter};
use hydra_dag::{Bucket, Cid, Codec};
use hydra_fs::node::Stored;
use hydra_fs::{FsError, FsResult, blob_blocks, entry_tree_blocks, prove_path};

/// How much of what a request names goes into its CAR (`dag-scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The block it names alone.
    Block,
    /// A whole file, or a directory's own entries.
    Entity,
    /// Everything below it.
    All,
}

impl Scope {
    /// Reads a `dag-scope` value.
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "block" => Some(Scope::Block),
            "entity" => Some(Scope::Entity),
            "all" => Some(Scope::All),
            _ => None,
        }
    }

    /// The value as a request names it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Block => "block",
            Scope::Entity => "entity",
            Scope::All => "all",
        }
    }
}

/// `entity-bytes=from:to`: an inclusive byte range of a file, either end
/// counted from the end when negative, `to` open when `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityBytes {
    from: i64,
    to: Option<i64>,
}

impl EntityBytes {
    /// Reads an `entity-bytes` value.
    pub fn parse(text: &str) -> Option<EntityBytes> {
        let (from, to) = text.split_once(':')?;
        let from = from.parse().ok()?;
        let to = match to {
            "*" => None,
            n => Some(n.parse().ok()?),
        };
        Some(EntityBytes { from, to })
    }

    /// The range as offsets `start..end` in a file of `size` bytes.
    fn range(self, size: u64) -> (u64, u64) {
        let at = |n: i64| {
            if n < 0 {
                size.saturating_sub(n.unsigned_abs())
            } else {
                (n as u64).min(size)
            }
        };
        let start = at(self.from);
        let end = match self.to {
            None => size,
            Some(to) if to < 0 => at(to).saturating_add(1).min(size),
            Some(to) => (to as u64).saturating_add(1).min(size),
        };
        (start, end.max(start))
    }
}

/// What goes into a CAR: these blocks in order, then a DAG walk.
#[derive(Debug)]
pub struct Plan {
    blocks: Vec<Cid>,
    dag: Option<(Cid, CarScope)>,
}

/// The blocks a request for `cid` and `path` names: for a filesystem
/// root, those proving the path and then the target's per `scope`; for
/// any other block (which takes no path), it or its whole DAG.
pub fn plan(
    bucket: &Bucket,
    cid: &Cid,
    path: &[u8],
    scope: Scope,
    bytes: Option<EntityBytes>,
) -> FsResult<Plan> {
    let bare = path.iter().all(|&b| b == b'/');
    if bare && scope == Scope::Block {
        return Ok(Plan {
            blocks: Vec::new(),
            dag: Some((*cid, CarScope::Block)),
        });
    }
    let proof = if cid.codec() == Codec::DAG_CBOR {
        match prove_path(bucket, cid, path) {
            Ok(proof) => Some(proof),
            // Not a filesystem root: a DAG that takes no path.
            Err(FsError::Corrupt { cid: c, .. }) if c == *cid => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let Some(proof) = proof else {
        if !bare {
            return Err(FsError::NotFound);
        }
        return Ok(Plan {
            blocks: Vec::new(),
            dag: Some((*cid, CarScope::All)),
        });
    };
    let mut blocks = proof.blocks;
    let mut dag = None;
    match proof.target.content {
        Stored::File(blob) => {
            let (start, end) = match (scope, bytes) {
                (Scope::Block, _) => (0, 0),
                (_, Some(range)) => range.range(blob.size()),
                _ => (0, blob.size()),
            };
            match (scope, blob.root()) {
                (Scope::Block, Some(root)) => blocks.push(*root),
                _ => blocks.extend(blob_blocks(bucket, &blob, start, end)?),
            }
        }
        Stored::Dir(Some(list)) => match scope {
            Scope::Block => blocks.push(list),
            Scope::Entity => blocks.extend(entry_tree_blocks(bucket, &list)?),
            Scope::All => dag = Some((list, CarScope::All)),
        },
        Stored::Dir(None) | Stored::Symlink(_) | Stored::Special => {}
    }
    Ok(Plan { blocks, dag })
}

/// Writes the CAR of `plan`, rooted at `root`.
pub fn write(
    bucket: &Bucket,
    root: &Cid,
    plan: &Plan,
    out: impl std::io::Write,
) -> hydra_dag::DagResult<()> {
    let mut car = CarWriter::new(out, &[*root])?;
    for cid in &plan.blocks {
        car.block(bucket, cid)?;
    }
    if let Some((cid, scope)) = &plan.dag {
        car.dag(bucket, cid, *scope)?;
    }
    car.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_bytes_follow_the_trustless_gateway_forms() {
        let r = |t: &str, size| EntityBytes::parse(t).map(|e| e.range(size));
        assert_eq!(r("0:99", 1000), Some((0, 100)));
        assert_eq!(r("100:*", 1000), Some((100, 1000)));
        assert_eq!(r("-100:*", 1000), Some((900, 1000)));
        assert_eq!(r("0:-1", 1000), Some((0, 1000)));
        assert_eq!(r("0:-101", 1000), Some((0, 900)));
        assert_eq!(r("5:99999", 10), Some((5, 10)));
        assert_eq!(r("50:60", 10), Some((10, 10)));
        assert_eq!(r("-5000:*", 10), Some((0, 10)));
        for bad in ["", "1", "a:b", "1:x", ":5"] {
            assert_eq!(EntityBytes::parse(bad), None, "{bad}");
        }
    }
}
