//! Chunking parameters and the content-defined splitter.

use hydra_dag::ChunkingPolicy;

use crate::cut::{Cutter, Scanned};
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
    /// Unless `eof`, a tail shorter than `max` in which the cutter finds no
    /// cut point stays uncut: more input could place it. A cut point found
    /// inside the tail stands, as it depends on no byte past the one after
    /// it. Cutting a stream in pieces therefore gives the same chunks as
    /// cutting it whole.
    pub fn split(&self, data: &[u8], eof: bool, out: &mut Vec<(usize, usize)>) -> usize {
        self.split_after(data, eof, out, &mut Scanned::default())
    }

    /// As [`ChunkParams::split`], going on from where `at` says the last
    /// split of the same uncut tail stopped (see [`Scanned`]): feeding a
    /// chunk's bytes in many small pieces then scans each byte once.
    pub(crate) fn split_after(
        &self,
        data: &[u8],
        eof: bool,
        out: &mut Vec<(usize, usize)>,
        at: &mut Scanned,
    ) -> usize {
        let mut start = 0;
        while let Some(len) = self.first_chunk(&data[start..], eof, at) {
            out.push((start, len));
            start += len;
        }
        start
    }

    /// The length of the whole chunk that starts `data`, or `None` when
    /// `data` is empty or (unless `eof`) its end may still move: one step
    /// of [`ChunkParams::split_after`], for a caller that may stop early.
    pub(crate) fn first_chunk(&self, data: &[u8], eof: bool, at: &mut Scanned) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let cutter = Cutter::new(self.min, self.avg, self.max);
        let len = cutter.next_after(data, at);
        if !eof && data.len() < self.max as usize && len == data.len() {
            return None;
        }
        *at = Scanned::default();
        Some(len)
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

    /// Cuts of `data` fed to `split` in pieces of the given sizes, each
    /// split going on from where the last stopped if `resume`.
    fn cut_in_pieces(
        p: &ChunkParams,
        data: &[u8],
        sizes: &[usize],
        resume: bool,
    ) -> Vec<(usize, usize)> {
        let (mut out, mut buf, mut base, mut at) = (Vec::new(), Vec::new(), 0, 0);
        let mut scanned = Scanned::default();
        for &n in sizes.iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + n).min(data.len());
            buf.extend_from_slice(&data[at..end]);
            at = end;
            let mut cuts = Vec::new();
            if !resume {
                scanned = Scanned::default();
            }
            let rest = p.split_after(&buf, false, &mut cuts, &mut scanned);
            out.extend(cuts.iter().map(|(o, l)| (o + base, *l)));
            buf.drain(..rest);
            base += rest;
        }
        let mut cuts = Vec::new();
        p.split_after(&buf, true, &mut cuts, &mut scanned);
        out.extend(cuts.iter().map(|(o, l)| (o + base, *l)));
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Pieces shorter than a chunk, even single bytes, cut where the
        /// whole does: a cut found in a short tail stands, and a search
        /// taken up where the last ran out of bytes finds the same cut.
        #[test]
        fn small_pieces_cut_as_the_whole(
            sizes in proptest::collection::vec(1usize..3_000, 1..20),
            runs in proptest::collection::vec((proptest::bool::ANY, 1usize..4_000), 1..40),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let p = ChunkParams::new(256, 1024, 4096).expect("valid bounds");
            let mut data = Vec::new();
            for (k, &(zeros, len)) in runs.iter().enumerate() {
                if zeros {
                    data.resize(data.len() + len, 0);
                } else {
                    data.extend(crate::test_noise(len, seed ^ k as u64));
                }
            }
            let mut whole = Vec::new();
            p.split(&data, true, &mut whole);
            proptest::prop_assert_eq!(&cut_in_pieces(&p, &data, &sizes, false), &whole);
            proptest::prop_assert_eq!(&cut_in_pieces(&p, &data, &sizes, true), &whole);
        }
    }

    #[test]
    fn rejects_bad_bounds() {
        assert!(ChunkParams::new(64 * 1024, 16 * 1024, 256 * 1024).is_err());
        assert!(ChunkParams::new(16 * 1024, 64 * 1024, 2 << 20).is_err());
        assert!(ChunkParams::new(16, 64, 256).is_err());
    }
}
