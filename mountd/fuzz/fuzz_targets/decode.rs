//! Arbitrary bytes as a request frame and as a reply frame.
//!
//! - `decode_t` and `decode_r` never panic (and, run with
//!   `-malloc_limit_mb`, never allocate far beyond the frame).
//! - A request that decodes re-encodes to exactly the input bytes, and the
//!   re-encoding decodes to the same tag and message.
//! - A reply that decodes re-encodes to the input bytes, except Rgetattr:
//!   the decoder drops btime, gen and data_version and the encoder writes
//!   them as zero, so there the re-encoding must equal the input with those
//!   32 bytes zeroed (and decode to the same reply).

#![no_main]

use bytes::Bytes;
use hydra_mountd_fuzz::wire::{Rmsg, decode_r, decode_t, encode_r, encode_t};
use libfuzzer_sys::fuzz_target;

/// Where Rgetattr's btime, gen and data_version lie: after the header (7),
/// valid (8), qid (13), mode, uid, gid (12), nlink, rdev, size, blksize,
/// blocks (40) and atime, mtime, ctime (48).
const RGETATTR_IGNORED: std::ops::Range<usize> = 128..160;

fuzz_target!(|data: &[u8]| {
    if let Ok((tag, msg)) = decode_t(Bytes::copy_from_slice(data)) {
        let again = encode_t(tag, &msg);
        assert_eq!(
            again.as_slice(),
            data,
            "request re-encodes differently: {msg:?}"
        );
        let back = decode_t(Bytes::from(again)).expect("re-encoded request decodes");
        assert_eq!(back, (tag, msg));
    }

    if let Ok((tag, msg)) = decode_r(data) {
        let again = encode_r(tag, &msg);
        if let Rmsg::Getattr(_) = msg {
            let mut expect = data.to_vec();
            expect[RGETATTR_IGNORED].fill(0);
            assert_eq!(again, expect, "Rgetattr re-encodes differently: {msg:?}");
        } else {
            assert_eq!(
                again.as_slice(),
                data,
                "reply re-encodes differently: {msg:?}"
            );
        }
        let back = decode_r(&again).expect("re-encoded reply decodes");
        assert_eq!(back, (tag, msg));
    }
});
