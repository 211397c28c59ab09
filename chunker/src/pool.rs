//! Segment buffers kept for reuse by every writer in the process.
//!
//! A writer fills a segment of several megabytes, hands it to its threads
//! and starts the next. A fresh buffer that large is mapped by the
//! allocator, faulted in and zeroed by the kernel page by page, and unmapped
//! when freed: a fifth of a large write's CPU time. Segments whose last
//! chunk has been stored come back here instead, up to a bound, and are
//! freed once nothing has taken them for [`IDLE_FOR`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Idle buffers kept at most (each a segment, about 4.5 MiB). The storing
/// threads finish their batches of four segments together, so up to ten
/// come back at once; with 4 kept, between 50 and 100 of a 1 GiB write's
/// 256 segments were fresh allocations.
const KEPT: usize = 12;
/// How long an idle buffer is kept for the next write.
pub const IDLE_FOR: Duration = Duration::from_secs(2);

/// Idle buffers and when each came back.
static IDLE: Mutex<Vec<(Vec<u8>, Instant)>> = Mutex::new(Vec::new());

fn idle() -> std::sync::MutexGuard<'static, Vec<(Vec<u8>, Instant)>> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// An empty buffer of at least `capacity` bytes, reused when one is idle.
pub fn take(capacity: usize) -> Vec<u8> {
    let reused = {
        let mut idle = idle();
        let fits = idle.iter().rposition(|(b, _)| b.capacity() >= capacity);
        fits.map(|i| idle.swap_remove(i).0)
    };
    match reused {
        Some(mut buffer) => {
            buffer.clear();
            buffer
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Frees the buffers idle for longer than `age`; returns how many.
pub fn release_idle(age: Duration) -> usize {
    let mut idle = idle();
    let before = idle.len();
    idle.retain(|(_, since)| since.elapsed() <= age);
    before - idle.len()
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
        let mut idle = idle();
        if idle.len() < KEPT {
            idle.push((buffer, Instant::now()));
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
        assert!(idle().iter().any(|(b, _)| b.as_ptr() as usize == address));
    }

    #[test]
    fn idle_buffers_are_freed_after_a_while() {
        let buffer = vec![1u8; 1 << 20];
        let address = buffer.as_ptr() as usize;
        drop(share(buffer));
        let ours = || idle().iter().any(|(b, _)| b.as_ptr() as usize == address);
        release_idle(Duration::from_secs(60));
        assert!(ours(), "kept while fresh");
        std::thread::sleep(Duration::from_millis(20));
        assert!(release_idle(Duration::from_millis(10)) >= 1);
        assert!(!ours(), "freed once idle");
    }

    #[test]
    fn a_reused_buffer_is_empty_and_big_enough() {
        drop(share(vec![1u8; 5 << 20]));
        let buffer = take(5 << 20);
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= 5 << 20);
    }
}
