//! Compaction: the live blocks of packs that are mostly dead bytes move to
//! the pack being filled, and the old packs go.

use super::index::{self, Location};
use super::pack::{HEADER_LEN, PackId, record_header_len};
use super::{LocalVolume, Writer};
use crate::block::Block;
use crate::error::{DagError, DagResult};
use crate::volume::CompactStats;

/// Compaction copies live blocks in batches of about this many bytes.
const COMPACT_BATCH: u64 = 64 << 20;

impl LocalVolume {
    /// Rewrites every pack whose live bytes are under `min_live` of it.
    pub(super) fn compact_packs(&self, w: &mut Writer, min_live: f64) -> DagResult<CompactStats> {
        let mut stats = CompactStats::default();
        for (pack, size) in index::packs(&w.conn)? {
            if (pack == w.pack && size == HEADER_LEN) || w.in_flight.contains_key(&pack) {
                continue;
            }
            let live: u64 = index::blocks_in_pack(&w.conn, pack)?
                .iter()
                .map(|(cid, _, len)| len + record_header_len(cid))
                .sum();
            if (live as f64) < min_live * (size - HEADER_LEN).max(1) as f64 {
                if pack == w.pack {
                    // The live blocks move to a fresh pack like any other's.
                    w.rotate(&self.packs)?;
                }
                self.compact_pack(w, pack, &mut stats)?;
                stats.bytes_reclaimed += size.saturating_sub(live);
            }
        }
        Ok(stats)
    }

    /// Copies the live blocks of `pack` to the pack being filled and
    /// removes it.
    fn compact_pack(
        &self,
        w: &mut Writer,
        pack: PackId,
        stats: &mut CompactStats,
    ) -> DagResult<()> {
        let live = index::blocks_in_pack(&w.conn, pack)?;
        let mut batch: Vec<Block> = Vec::new();
        let mut batch_bytes = 0;
        let mut flush = |w: &mut Writer, batch: &mut Vec<Block>| -> DagResult<()> {
            if batch.is_empty() {
                return Ok(());
            }
            w.rotate_if_full(&self.packs)?;
            let refs: Vec<&Block> = batch.iter().collect();
            let locations = w.append(&self.packs, &refs)?;
            let end = w.next;
            let tx = w.conn.transaction()?;
            for (block, loc) in batch.iter().zip(&locations) {
                if let Location::Packed { pack, offset, .. } = loc {
                    tx.prepare_cached("UPDATE blocks SET pack = ?1, offset = ?2 WHERE cid = ?3")?
                        .execute(rusqlite::params![pack.0, offset, block.cid().to_bytes()])?;
                }
            }
            index::set_pack_size(&tx, w.pack, end)?;
            tx.commit()?;
            stats.bytes_copied += batch.iter().map(|b| b.len() as u64).sum::<u64>();
            batch.clear();
            Ok(())
        };
        for (cid, offset, len) in live {
            let data = self
                .packs
                .read(pack, offset, len as usize)?
                .ok_or_else(|| DagError::CorruptPack {
                    path: self.packs.path(pack),
                    offset,
                    reason: "pack vanished during compaction".into(),
                })?;
            batch_bytes += len;
            batch.push(Block::trusted(cid, data));
            if batch_bytes >= COMPACT_BATCH {
                flush(w, &mut batch)?;
                batch_bytes = 0;
            }
        }
        flush(w, &mut batch)?;
        let tx = w.conn.transaction()?;
        tx.execute("DELETE FROM packs WHERE id = ?1", [pack.0])?;
        tx.commit()?;
        self.ahead.clear();
        self.packs.remove(pack)?;
        stats.packs_rewritten += 1;
        Ok(())
    }
}
