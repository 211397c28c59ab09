//! Finding runs of zero bytes fast: sparse files and disk images are mostly
//! zeros, and both the chunker and the embedded store skip them.

/// Bytes checked at a time: OR-ing a whole block of them lets the compiler
/// use vector registers.
const BLOCK: usize = 64;

/// How many bytes at the start of `data` are zero.
pub fn zero_prefix(data: &[u8]) -> usize {
    let mut at = 0;
    for block in data.chunks_exact(BLOCK) {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            break;
        }
        at += BLOCK;
    }
    at + data[at..]
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(data.len() - at)
}

/// How many bytes at the end of `data` are zero.
pub fn zero_suffix(data: &[u8]) -> usize {
    let mut at = data.len();
    for block in data.rchunks_exact(BLOCK) {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            break;
        }
        at -= BLOCK;
    }
    data.len()
        - data[..at]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_either_end_are_counted() {
        let mut data = vec![0u8; 1000];
        assert_eq!((zero_prefix(&data), zero_suffix(&data)), (1000, 1000));
        for at in [0, 1, 63, 64, 65, 500, 935, 936, 937, 998, 999] {
            data[at] = 9;
            assert_eq!(zero_prefix(&data), at);
            assert_eq!(zero_suffix(&data), 999 - at);
            data[at] = 0;
        }
        data[10] = 1;
        data[900] = 1;
        assert_eq!((zero_prefix(&data), zero_suffix(&data)), (10, 99));
        assert_eq!((zero_prefix(&[]), zero_suffix(&[])), (0, 0));
    }
}
