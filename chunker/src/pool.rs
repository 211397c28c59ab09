//! Segment buffers kept for reuse by every writer in the process.
//!
//! A writer fills a segment of several megabytes, hands it to its threads
//! and starts the next. A fresh buffer that large is mapped by the
//! allocator, faulted in and zeroed by the kernel page by page, and unmapped
//! when freed: a fifth of a large write's CPU time. Segments whose last
//! chunk has been stored come back here instead, up to a bound.

use std::sync::Mutex;

use bytes::Bytes;

/// Idle buffers kept at most (each a segment, about 4.5 MiB): enough for
/// the segments one stored batch frees at once.
const KEPT: usize = 4;

static IDLE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer of at least `capacity` bytes, reused when one is idle.
pub fn take(capacity: usize) -> Vec<u8> {
    let reused = {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        let fits = idle.iter().rposition(|b| b.capacity() >= capacity);
        fits.map(|i| idle.swap_remove(i))
    };
    match reused {
        Some(mut buffer) => {
            buffer.clear();
            buffer
        }
        None => Vec::with_capacity(capacity),
    }
}

/// `buffer` as shared bytes that return it to the pool once all are dropped.
pub fn share(buffer: Vec<u8>) -> Bytes {
    Bytes::from_owner(Returned(buffer))
}

/// A buffer that goes back to the pool when dropped.
struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEPT {
            idle.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_buffer_comes_back_once_every_slice_is_dropped() {
        let mut buffer = take(3 << 20);
        buffer.extend_from_slice(&[7u8; 1000]);
        let address = buffer.as_ptr() as usize;
        let bytes = share(buffer);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        // Other tests may take buffers meanwhile; ours is among the idle.
        let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        assert!(idle.iter().any(|b| b.as_ptr() as usize == address));
    }

    #[test]
    fn a_reused_buffer_is_empty_and_big_enough() {
        drop(share(vec![1u8; 5 << 20]));
        let buffer = take(5 << 20);
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= 5 << 20);
    }
}
