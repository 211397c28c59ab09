//! `hydra stats`.

use anyhow::Result;

use super::{Context, output};

/// Prints the counters of the default bucket's volumes.
pub fn run(cx: &Context) -> Result<()> {
    let store = cx.open_read()?;
    let bucket = store.bucket();
    let stats = bucket.stats()?;
    if cx.json {
        return output::json(&serde_json::json!({ "bucket": bucket.name(), "volumes": stats }));
    }
    for (volume, s) in bucket.volumes().iter().zip(stats) {
        println!(
            "{} ({}): {} blocks, {} of data, {} on disk, {} refs, {} changelog entries",
            bucket.name(),
            volume.name(),
            s.blocks,
            output::bytes(s.block_bytes),
            output::bytes(s.stored_bytes),
            s.refs,
            s.log_entries
        );
    }
    Ok(())
}
