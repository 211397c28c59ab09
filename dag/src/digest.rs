//! BLAKE3 digests that do not hash runs of zeros: a block that is mostly
//! zeros (a write into a sparse file, a disk image) costs what its other
//! bytes do.
//!
//! BLAKE3 hashes 1 KiB chunks into a binary tree, and a subtree's chaining
//! value depends only on its bytes and its offset. So each aligned subtree
//! of [`PIECE`] bytes or a power of two times that, all zeros, within the
//! largest block has one chaining value, computed once. A block with such
//! pieces is hashed by walking its tree: those subtrees come from the
//! table, the rest is hashed as usual. The digest is BLAKE3's own (a
//! proptest compares it with `blake3::hash`).

use std::sync::OnceLock;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};
use blake3::{CHUNK_LEN, Hasher};

use crate::zeros::zero_prefix;

/// The smallest zero subtree taken from the table: 16 chunks, what the
/// widest SIMD hashes at once.
const PIECE: usize = 16 * CHUNK_LEN;
/// Pieces in the largest block: a power of two, at most one bit each in
/// a `u64`.
const PIECES: usize = crate::MAX_BLOCK_SIZE / PIECE;
const _: () =
    assert!(PIECES.is_power_of_two() && PIECES <= 64 && PIECES * PIECE == crate::MAX_BLOCK_SIZE);

/// The BLAKE3 digest of `data`.
pub fn blake3(data: &[u8]) -> [u8; 32] {
    let zero = zero_pieces(data);
    if zero == 0 {
        return *blake3::hash(data).as_bytes();
    }
    let left = left_subtree_len(data.len() as u64) as usize;
    let (l, r) = data.split_at(left);
    let (l, r) = (subtree(l, 0, zero), subtree(r, left, zero));
    *merge_subtrees_root(&l, &r, Mode::Hash).as_bytes()
}

/// Which whole aligned pieces of `data` are all zeros, one bit each (none
/// for data that fits in one piece or exceeds the largest block).
fn zero_pieces(data: &[u8]) -> u64 {
    if data.len() <= PIECE || data.len() > crate::MAX_BLOCK_SIZE {
        return 0;
    }
    data.chunks_exact(PIECE)
        .enumerate()
        // The first byte rules out almost every piece of other data.
        .filter(|(_, piece)| piece[0] == 0 && zero_prefix(piece) == PIECE)
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

/// The chaining value of the subtree `data` at byte `offset` of a block
/// whose zero pieces are `zero`.
fn subtree(data: &[u8], offset: usize, zero: u64) -> ChainingValue {
    let (first, n) = (offset / PIECE, data.len().div_ceil(PIECE));
    // The pieces this subtree covers, whole or in part.
    let covered = if n >= 64 {
        u64::MAX
    } else {
        ((1u64 << n) - 1) << first
    };
    if data.len().is_multiple_of(PIECE) && n.is_power_of_two() && zero & covered == covered {
        // BLAKE3's tree aligns every power-of-two subtree to its size.
        debug_assert_eq!(first % n, 0);
        let level = n.trailing_zeros() as usize;
        return zero_table()[level][first >> level];
    }
    if data.len() <= PIECE || zero & covered == 0 {
        return Hasher::new()
            .set_input_offset(offset as u64)
            .update(data)
            .finalize_non_root();
    }
    let left = left_subtree_len(data.len() as u64) as usize;
    let (l, r) = data.split_at(left);
    let (l, r) = (subtree(l, offset, zero), subtree(r, offset + left, zero));
    merge_subtrees_non_root(&l, &r, Mode::Hash)
}

/// Chaining values of the zero subtrees: level `k` holds those of
/// `PIECE << k` bytes, by offset over that size.
fn zero_table() -> &'static [Vec<ChainingValue>] {
    static TABLE: OnceLock<Vec<Vec<ChainingValue>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let zeros = [0u8; PIECE];
        let pieces = (0..PIECES)
            .map(|i| {
                Hasher::new()
                    .set_input_offset((i * PIECE) as u64)
                    .update(&zeros)
                    .finalize_non_root()
            })
            .collect();
        let mut levels: Vec<Vec<ChainingValue>> = vec![pieces];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let up = last
                .chunks_exact(2)
                .map(|pair| merge_subtrees_non_root(&pair[0], &pair[1], Mode::Hash))
                .collect();
            levels.push(up);
        }
        levels
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `len` bytes of BLAKE3's extendable output for `seed`.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut out = vec![0u8; len];
        Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    #[test]
    fn blocks_of_zeros_and_edges_hash_as_blake3() {
        for len in [
            0,
            1,
            PIECE - 1,
            PIECE,
            PIECE + 1,
            2 * PIECE,
            3 * PIECE + 5,
            256 << 10,
            (256 << 10) + 1,
            crate::MAX_BLOCK_SIZE - 1,
            crate::MAX_BLOCK_SIZE,
        ] {
            let zeros = vec![0u8; len];
            assert_eq!(
                blake3(&zeros),
                *blake3::hash(&zeros).as_bytes(),
                "{len} zeros"
            );
            let mut one = zeros.clone();
            if let Some(b) = one.get_mut(len / 2) {
                *b = 1;
            }
            assert_eq!(
                blake3(&one),
                *blake3::hash(&one).as_bytes(),
                "{len}, one byte set"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Any layout of zeros and other bytes, any length up to the
        /// largest block: the digest is BLAKE3's.
        #[test]
        fn any_layout_hashes_as_blake3(
            runs in proptest::collection::vec((any::<bool>(), 1usize..80_000), 1..30),
            cut in 0usize..=crate::MAX_BLOCK_SIZE,
            seed in any::<u64>(),
        ) {
            let data: Vec<u8> = runs
                .iter()
                .enumerate()
                .flat_map(|(k, &(zeros, len))| match zeros {
                    true => vec![0; len],
                    false => noise(len, seed ^ k as u64),
                })
                .take(cut)
                .collect();
            prop_assert_eq!(blake3(&data), *blake3::hash(&data).as_bytes());
        }
    }
}
