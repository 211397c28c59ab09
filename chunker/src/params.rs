//! Chunking parameters and the content-defined splitter.

use hydra_dag::ChunkingPolicy;

use crate::cut::Cutter;
use crate::error::{ChunkError, ChunkResult};

/// Validated FastCDC bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    min: u32,
    avg: u32,
    max: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        let p = ChunkingPolicy::default();
        ChunkParams {
            min: p.min_size,
            avg: p.avg_size,
            max: p.max_size,
        }
    }
}

impl ChunkParams {
    /// Checks bounds against what FastCDC 2020 and the 1 MiB block limit allow.
    pub fn new(min: u32, avg: u32, max: u32) -> ChunkResult<ChunkParams> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MIN, MINIMUM_MIN};
        let bad = |why: &str| Err(ChunkError::Params(format!("{min}/{avg}/{max}: {why}")));
        if !(min < avg && avg < max) {
            return bad("need min < avg < max");
        }
        if min < MINIMUM_MIN || avg < AVERAGE_MIN || max < MAXIMUM_MIN || avg > AVERAGE_MAX {
            return bad("outside FastCDC's ranges");
        }
        if max as usize > hydra_dag::MAX_BLOCK_SIZE {
            return bad("max exceeds the 1 MiB block limit");
        }
        Ok(ChunkParams { min, avg, max })
    }

    /// The bounds a bucket's policy asks for.
    pub fn from_policy(policy: &ChunkingPolicy) -> ChunkResult<ChunkParams> {
        ChunkParams::new(policy.min_size, policy.avg_size, policy.max_size)
    }

    /// The largest chunk.
    pub fn max(&self) -> usize {
        self.max as usize
    }

    /// Cut points in `data`: `(offset, len)` of each whole chunk, and the
    /// offset where the uncut rest begins.
    ///
    /// Unless `eof`, a tail shorter than `max` stays uncut: more input could
    /// move its cut point. Cutting a stream in pieces therefore gives the
    /// same chunks as cutting it whole.
    pub fn split(&self, data: &[u8], eof: bool, out: &mut Vec<(usize, usize)>) -> usize {
        if data.is_empty() {
            return 0;
        }
        let cutter = Cutter::new(self.min, self.avg, self.max);
        let mut start = 0;
        while start < data.len() {
            let remaining = data.len() - start;
            if !eof && remaining < self.max as usize {
                break;
            }
            let len = cutter.next(&data[start..]);
            out.push((start, len));
            start += len;
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        crate::test_noise(len, 0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn piecewise_equals_whole() {
        let p = ChunkParams::default();
        let data = noise(3 << 20);
        let mut whole = Vec::new();
        p.split(&data, true, &mut whole);
        let mut pieces = Vec::new();
        let mut base = 0;
        let mut buf = Vec::new();
        for piece in data.chunks(300_001) {
            buf.extend_from_slice(piece);
            let mut cuts = Vec::new();
            let rest = p.split(&buf, false, &mut cuts);
            pieces.extend(cuts.iter().map(|(o, l)| (o + base, *l)));
            buf.drain(..rest);
            base += rest;
        }
        let mut cuts = Vec::new();
        p.split(&buf, true, &mut cuts);
        pieces.extend(cuts.iter().map(|(o, l)| (o + base, *l)));
        assert_eq!(pieces, whole);
        assert!(whole.iter().all(|(_, l)| *l <= p.max()));
        assert_eq!(whole.iter().map(|(_, l)| l).sum::<usize>(), data.len());
    }

    #[test]
    fn rejects_bad_bounds() {
        assert!(ChunkParams::new(64 * 1024, 16 * 1024, 256 * 1024).is_err());
        assert!(ChunkParams::new(16 * 1024, 64 * 1024, 2 << 20).is_err());
        assert!(ChunkParams::new(16, 64, 256).is_err());
    }
}
