//! FastCDC 2020 cut points, the same as the `fastcdc` crate finds, with
//! runs of zeros crossed at memory speed instead of hashed byte by byte.
//!
//! The gear hash shifts one bit per byte, so after 64 zero bytes it holds a
//! fixed value whatever came before, and stays there while zeros follow.
//! At that value every test is the same and, for every average FastCDC
//! accepts, none cuts (a test checks them all), so the rest of the run
//! cannot cut either and the scan jumps to its end. Sparse files, disk
//! images and re-cuts around writes into holes are mostly such runs.

use std::sync::OnceLock;

use fastcdc::v2020::{MASKS, Normalization, get_gear_with_seed, logarithm2};
use hydra_dag::zeros::zero_prefix;

/// A gear table and its left-shifted twin.
type Gear = (Box<[u64; 256]>, Box<[u64; 256]>);

/// The gear tables FastCDC 2020 uses by default (no seed).
fn gear() -> &'static Gear {
    static GEAR: OnceLock<Gear> = OnceLock::new();
    GEAR.get_or_init(|| get_gear_with_seed(0))
}

/// The masks one stretch of a scan tests: after one byte of a pair
/// (shifted, as the left-shifted table is), and after both.
#[derive(Clone, Copy, Debug)]
struct Masks {
    one: u64,
    two: u64,
}

impl Masks {
    fn new(mask: u64) -> Masks {
        Masks {
            one: mask,
            two: mask << 1,
        }
    }
}

/// A FastCDC 2020 cutter (normalization level 1) for one set of bounds.
/// How many bytes before it (the byte after a cut point included) decide a
/// cut point, given the chunk's start: the gear hash shifts one bit a byte,
/// so a 64-bit hash holds nothing of bytes further back.
pub(crate) const WINDOW: u64 = 64;

/// Where a search for a chunk's cut point stopped for want of bytes: the
/// gear hash and the step reached (0: not begun).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scanned {
    hash: u64,
    index: usize,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    /// Tested before the average size.
    small: Masks,
    /// Tested from the average size on.
    large: Masks,
    /// The hash after 64 or more zeros.
    fixed: u64,
}

impl Cutter {
    /// The cutter for chunks of `min` to `max` bytes, `avg` on average
    /// (bounds FastCDC accepts).
    pub(crate) fn new(min: u32, avg: u32, max: u32) -> Cutter {
        let (gear, gear_ls) = gear();
        let bits = logarithm2(avg);
        let level = Normalization::Level1.bits();
        let mask_s = MASKS[(bits + level) as usize];
        let mask_l = MASKS[(bits - level) as usize];
        // Two zero bytes a step: after 32 steps nothing of the start is left.
        let mut fixed = 0u64;
        for _ in 0..32 {
            fixed = (fixed << 2).wrapping_add(gear_ls[0]).wrapping_add(gear[0]);
        }
        Cutter {
            min: min as usize,
            avg: avg as usize,
            max: max as usize,
            small: Masks::new(mask_s),
            large: Masks::new(mask_l),
            fixed,
        }
    }

    /// The length of the chunk that starts `data` (all of it when shorter
    /// than the minimum; at most the maximum).
    /// The length of the chunk that starts `data` (all of `data` when no
    /// cut point lies in it).
    #[cfg(test)]
    pub(crate) fn next(&self, data: &[u8]) -> usize {
        self.next_after(data, &mut Scanned::default())
    }

    /// As `next`, going on from where `at` says an earlier search of the
    /// same chunk's first bytes ran out of them; leaves in `at` where this
    /// one stopped when it finds no cut point, else a fresh start. The
    /// decision at a byte does not depend on how many bytes follow it
    /// (beyond the next), so the result is the same as a search from the
    /// start.
    pub(crate) fn next_after(&self, data: &[u8], at: &mut Scanned) -> usize {
        let mut remaining = data.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        let (mut hash, mut index) = match *at {
            Scanned { index: 0, .. } => (0u64, self.min / 2),
            Scanned { hash, index } => (hash, index),
        };
        for (end, masks) in [(center / 2, self.small), (remaining / 2, self.large)] {
            if let Some(cut) = self.scan(data, &mut hash, &mut index, end, masks) {
                *at = Scanned::default();
                return cut;
            }
        }
        *at = Scanned { hash, index };
        remaining
    }

    /// Tests byte pairs `index..end` under `masks`; the cut, if one is found.
    fn scan(
        &self,
        data: &[u8],
        hash: &mut u64,
        index: &mut usize,
        end: usize,
        masks: Masks,
    ) -> Option<usize> {
        // The tables as plain arrays: the loop indexes them directly.
        let tables = gear();
        let (gear, gear_ls): (&[u64; 256], &[u64; 256]) = (&tables.0, &tables.1);
        let fixed = self.fixed;
        let data = &data[..end * 2];
        let mut h = *hash;
        let mut i = *index;
        while i < end {
            // The test for zeros costs a tenth of the scan when made every
            // step: it is made every few.
            let stop = (i + 64).min(end);
            while i < stop {
                let a = i * 2;
                h = (h << 2).wrapping_add(gear_ls[data[a] as usize]);
                if h & masks.two == 0 {
                    return Some(a);
                }
                h = h.wrapping_add(gear[data[a + 1] as usize]);
                if h & masks.one == 0 {
                    return Some(a + 1);
                }
                i += 1;
            }
            if h == fixed {
                // Zeros keep the hash where it is and cannot cut: go to the
                // pair holding the next other byte.
                i += zero_prefix(&data[i * 2..]) / 2;
            }
        }
        *hash = h;
        *index = i;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_noise as noise;

    /// `fastcdc`'s own cut for the same bytes.
    fn reference(data: &[u8], min: u32, avg: u32, max: u32) -> usize {
        fastcdc::v2020::FastCDC::new(data, min, avg, max)
            .cut(0, data.len())
            .1
    }

    /// Every chunk of `data`, cut by both, is the same.
    fn same_cuts(data: &[u8], min: u32, avg: u32, max: u32) {
        let cutter = Cutter::new(min, avg, max);
        let mut at = 0;
        while at < data.len() {
            let ours = cutter.next(&data[at..]);
            assert_eq!(
                ours,
                reference(&data[at..], min, avg, max),
                "chunk at {at} of {} ({min}/{avg}/{max})",
                data.len()
            );
            at += ours;
        }
    }

    #[test]
    fn zeros_never_cut_so_every_bucket_skips_them() {
        // Every average FastCDC accepts rounds to 2^8..=2^22.
        let (gear, gear_ls) = gear();
        for bits in 8..=22 {
            let cutter = Cutter::new(64, 1 << bits, 16 << 20);
            let fixed = cutter.fixed;
            let half = (fixed << 2).wrapping_add(gear_ls[0]);
            assert_eq!(half.wrapping_add(gear[0]), fixed, "the hash stays put");
            for m in [cutter.small, cutter.large] {
                assert!(half & m.two != 0 && fixed & m.one != 0, "average 2^{bits}");
            }
        }
    }

    #[test]
    fn cuts_match_fastcdc_over_noise_and_zeros() {
        let bounds = [
            (16 << 10, 64 << 10, 256 << 10),
            (2 << 10, 8 << 10, 64 << 10),
            (64, 256, 1024),
            (4096, 16384, 65536),
        ];
        for (k, &(min, avg, max)) in bounds.iter().enumerate() {
            let max_len = max as usize;
            same_cuts(&noise(3 * max_len + 17, k as u64), min, avg, max);
            same_cuts(&vec![0u8; 5 * max_len + 3], min, avg, max);
            same_cuts(&vec![0xffu8; 2 * max_len], min, avg, max);
            // Islands of noise in zeros, at every kind of distance.
            let mut data = vec![0u8; 8 * max_len];
            let mut at = 7;
            let mut n = 1;
            while at + n < data.len() {
                data[at..at + n].copy_from_slice(&noise(n, (at + n) as u64));
                at += n + (at * 7919) % max_len;
                n = (n * 3) % 700 + 1;
            }
            same_cuts(&data, min, avg, max);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Noise and zeros laid out at random, under random valid bounds.
        #[test]
        fn cuts_match_fastcdc_for_any_layout(
            bits in 8u32..=12,
            pieces in proptest::collection::vec((proptest::bool::ANY, 1usize..3_000), 1..200),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let avg = 1u32 << bits;
            let (min, max) = (avg / 4, avg * 4);
            let mut data = Vec::new();
            for (k, &(zeros, len)) in pieces.iter().enumerate() {
                if zeros {
                    data.resize(data.len() + len, 0);
                } else {
                    data.extend(noise(len, seed ^ k as u64));
                }
            }
            same_cuts(&data, min.max(64), avg, max.max(1024));
        }
    }
}
