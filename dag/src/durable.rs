//! Making names durable: a file renamed into place or a directory made is
//! only there after a power cut once its directory is synced.

use std::fs::File;
use std::path::Path;

use crate::error::{DagError, DagResult};

/// Makes a directory's entries durable.
pub fn sync_dir(dir: &Path) -> DagResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DagError::io(dir, e))
}

/// Renames the synced file `tmp` over `path` and makes the new name durable.
pub fn replace(tmp: &Path, path: &Path) -> DagResult<()> {
    std::fs::rename(tmp, path).map_err(|e| DagError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}
