//! Integration tests of blob writing, reading and editing.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use hydra_chunker::{
    Blob, BlobEditor, BlobReader, BlobWriter, ChunkError, ChunkParams, NodeCache, put_bytes,
    put_reader,
};
use hydra_dag::{
    Bucket, BucketPolicy, CachedVolume, Cid, Codec, DagError, MemoryVolume, VerifiedVolume, Volume,
    WriteSession,
};
use proptest::prelude::*;

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Small chunks, so modest inputs make deep trees.
fn small() -> ChunkParams {
    ChunkParams::new(1024, 4096, 16384).expect("params")
}

fn memory_bucket() -> (Bucket, Arc<MemoryVolume>) {
    let mem = Arc::new(MemoryVolume::new());
    let verified: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(mem.clone()));
    let bucket = Bucket::new("t", BucketPolicy::default(), vec![verified]).expect("bucket");
    (bucket, mem)
}

fn read_all(bucket: &Bucket, blob: &Blob) -> Vec<u8> {
    let mut out = Vec::new();
    BlobReader::new(bucket.clone(), blob.clone())
        .read_to_end(&mut out)
        .expect("read");
    out
}

#[test]
fn sizes_round_trip() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let p = ChunkParams::default();
    for len in [
        0,
        1,
        1024,
        1025,
        15_000,
        16 * 1024,
        300_000,
        5 << 20,
        (9 << 20) + 7,
    ] {
        let data = noise(len, len as u64);
        let blob = put_bytes(&session, p, &data).expect("put");
        assert_eq!(blob.size(), len as u64);
        assert_eq!(
            matches!(blob, Blob::Inline(_)),
            len <= 1024,
            "inline iff ≤ 1 KiB ({len})"
        );
        if (1025..16 * 1024).contains(&len) {
            assert_eq!(
                blob.root().map(Cid::codec),
                Some(Codec::RAW),
                "one chunk is its own root"
            );
        }
        assert_eq!(read_all(&bucket, &blob), data, "{len}");
    }
}

#[test]
fn streaming_equals_one_shot_and_io_traits_work() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let data = noise(7 << 20, 3);
    let one = put_bytes(&session, small(), &data).expect("put");
    let mut w = BlobWriter::new(session.clone(), small());
    for piece in data.chunks(12_345) {
        std::io::Write::write_all(&mut w, piece).expect("write");
    }
    let (streamed, stats) = w.finish().expect("finish");
    assert_eq!(one, streamed, "same content, same root");
    assert_eq!(stats.logical_bytes, data.len() as u64);
    let (from_reader, _) = put_reader(&session, small(), &data[..]).expect("put_reader");
    assert_eq!(one, from_reader);

    let mut r = BlobReader::new(bucket.clone(), one.clone());
    r.seek(SeekFrom::Start(5_000_000)).expect("seek");
    let mut buf = vec![0u8; 100_000];
    r.read_exact(&mut buf).expect("read");
    assert_eq!(buf, &data[5_000_000..5_100_000]);
    r.seek(SeekFrom::End(-10)).expect("seek");
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).expect("read");
    assert_eq!(tail, &data[data.len() - 10..]);
    assert!(r.seek(SeekFrom::Current(-100_000_000)).is_err());
}

#[test]
fn read_at_any_offset() {
    let (bucket, _) = memory_bucket();
    let data = noise(3 << 20, 4);
    let blob = put_bytes(&bucket.session(), small(), &data).expect("put");
    let mut r = BlobReader::new(bucket, blob);
    let stats = r.stats().expect("stats");
    assert!(stats.depth >= 2, "small chunks give a deep tree: {stats:?}");
    for (off, len) in [
        (0, 1),
        (1, 4096),
        (4095, 2),
        (1 << 20, 70_000),
        ((3 << 20) - 5, 100),
    ] {
        let got = r.read_at(off as u64, len).expect("read_at");
        let end = (off + len).min(data.len());
        assert_eq!(got, &data[off..end], "{off}+{len}");
    }
    assert!(r.read_at(data.len() as u64, 10).expect("at end").is_empty());
    assert!(matches!(
        r.read_at(data.len() as u64 + 1, 1),
        Err(ChunkError::OutOfRange { .. })
    ));
}

#[test]
fn dedup_statistics() {
    let (bucket, _) = memory_bucket();
    let part = noise(2 << 20, 5);
    let mut data = part.clone();
    data.extend_from_slice(&part);
    let mut w = BlobWriter::new(bucket.session(), ChunkParams::default());
    w.write_bytes(&data).expect("write");
    let (blob, stats) = w.finish().expect("finish");
    assert_eq!(stats.logical_bytes, 4 << 20);
    assert!(
        stats.unique_bytes < (2 << 20) + 300_000,
        "repeat dedups: {stats:?}"
    );
    let walked = BlobReader::new(bucket, blob).stats().expect("stats");
    assert_eq!(walked.chunks, stats.chunks);
    assert_eq!(walked.unique_bytes, stats.unique_bytes);
}

#[test]
fn one_byte_edit_in_256_mib_stores_few_blocks() {
    let (bucket, mem) = memory_bucket();
    let session = bucket.session();
    let p = ChunkParams::default();
    let data = noise(256 << 20, 6);
    let blob = put_bytes(&session, p, &data).expect("put");
    let before = mem.stats().expect("stats");
    let editor = BlobEditor::new(session.clone(), p);
    let edited = editor.write_at(&blob, 128 << 20, b"X").expect("edit");
    let after = mem.stats().expect("stats");
    let new_blocks = after.blocks - before.blocks;
    let new_bytes = after.block_bytes - before.block_bytes;
    assert!(new_blocks <= 8, "{new_blocks} new blocks");
    assert!(
        new_bytes <= 3 * 256 * 1024 + 64 * 1024,
        "{new_bytes} new bytes"
    );
    let mut expected = data;
    expected[128 << 20] = b'X';
    let fresh = put_bytes(&session, p, &expected).expect("put");
    assert_eq!(
        edited, fresh,
        "an edit gives the same root as writing afresh"
    );
    let mut r = BlobReader::new(bucket, edited);
    assert_eq!(
        r.read_at((128 << 20) - 2, 5).expect("read"),
        &expected[(128 << 20) - 2..(128 << 20) + 3]
    );
}

#[test]
fn a_collecting_editor_stores_nothing_until_its_caller_does() {
    let (bucket, mem) = memory_bucket();
    let session = bucket.session();
    let p = ChunkParams::default();
    let data = noise(8 << 20, 8);
    let blob = put_bytes(&session, p, &data).expect("put");
    let before = mem.stats().expect("stats");
    let writes: [(u64, &[u8]); 3] = [(10, b"abc"), (3 << 20, b"defg"), ((8 << 20) - 1, b"h")];
    let editor = BlobEditor::collecting(session.clone(), p);
    let edited = editor.write_many(&blob, &writes).expect("edit");
    assert_eq!(mem.stats().expect("stats").blocks, before.blocks, "stored");
    let blocks = editor.take_blocks();
    assert!(
        !blocks.is_empty() && blocks.len() <= 12,
        "{} blocks",
        blocks.len()
    );
    assert!(editor.take_blocks().is_empty(), "taken twice");
    // With the blocks kept stored, the edit reads back.
    session.put_blocks(&blocks).expect("store");
    let mut expected = data;
    for (at, bytes) in writes {
        expected[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }
    let mut r = BlobReader::new(bucket, edited.clone());
    assert_eq!(r.read_at(0, 8 << 20).expect("read"), expected);
    let stored = BlobEditor::new(session.clone(), p)
        .write_many(&blob, &writes)
        .expect("edit");
    assert_eq!(edited, stored, "collected and stored edits differ");
}

#[test]
fn edits_read_only_the_chunks_they_cut_again() {
    // Warming blocks ahead suits a sequential reader, not an edit, which
    // reads up to where the cuts fall in step again and no further: the
    // chunk written into, and tree nodes (77 reads when a short tail was
    // not cut until a maximum chunk had gathered, 52 when the next chunk
    // was read for the byte after the cut). The chunk each write starts
    // in is warmed ahead too, and both reads count: 53 in all, 34 without.
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let p = ChunkParams::default();
    let data = noise(64 << 20, 11);
    let blob = put_bytes(&session, p, &data).expect("put");
    let chunks = BlobReader::new(bucket.clone(), blob.clone())
        .stats()
        .expect("stats")
        .chunks;
    let page = [7u8; 4096];
    let writes: Vec<(u64, &[u8])> = (0..20u64)
        .map(|k| (k * (3 << 20) + 12_345, &page[..]))
        .collect();
    let before = bucket.io_stats().reads;
    let edited = BlobEditor::new(session.clone(), p)
        .write_many(&blob, &writes)
        .expect("edit");
    let reads = bucket.io_stats().reads - before;
    assert!(
        reads <= 20 * 3,
        "{reads} blocks read for 20 writes into {chunks} chunks"
    );
    let mut expected = data;
    for &(at, bytes) in &writes {
        expected[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }
    assert_eq!(edited, put_bytes(&session, p, &expected).expect("put"));
}

#[test]
fn kept_nodes_spare_the_next_edits_their_tree_reads_and_change_nothing() {
    // A database's commits edit the same file again and again, each
    // walking the nodes the last one made: kept decoded, they are read
    // once. The blobs are those of editors keeping nothing.
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let p = small();
    let data = noise(8 << 20, 12);
    let mut plain = put_bytes(&session, p, &data).expect("put");
    let mut kept = plain.clone();
    let cache = NodeCache::new(8 << 20);
    let page = [9u8; 4096];
    let (mut reads_plain, mut reads_kept) = (0, 0);
    for round in 0..6u64 {
        let writes: Vec<(u64, &[u8])> = (0..4u64)
            .map(|k| (k * (2 << 20) + round * 40_961, &page[..]))
            .collect();
        let before = bucket.io_stats().reads;
        plain = BlobEditor::new(session.clone(), p)
            .write_many(&plain, &writes)
            .expect("edit");
        let middle = bucket.io_stats().reads;
        kept = BlobEditor::new(session.clone(), p)
            .with_nodes(cache.clone())
            .write_many(&kept, &writes)
            .expect("edit keeping nodes");
        let after = bucket.io_stats().reads;
        assert_eq!(kept, plain, "round {round}");
        if round > 0 {
            reads_plain += middle - before;
            reads_kept += after - middle;
        }
    }
    assert!(!cache.is_empty());
    // About 65 against 145 (chunks warmed ahead count twice or once,
    // as the race goes); the nodes are the difference.
    assert!(
        reads_kept + 40 < reads_plain,
        "{reads_kept} blocks read keeping nodes, {reads_plain} without"
    );
    // A reader given the cache reads the blob as one without it does.
    let mut out = Vec::new();
    BlobReader::new(bucket.clone(), kept.clone())
        .with_nodes(cache)
        .read_to_end(&mut out)
        .expect("read");
    assert_eq!(out, read_all(&bucket, &plain));
}

#[test]
fn append_and_truncate() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let editor = BlobEditor::new(session.clone(), small());
    let data = noise(1 << 20, 7);
    let blob = put_bytes(&session, small(), &data).expect("put");
    let more = noise(300_000, 8);
    let appended = editor.append(&blob, &more).expect("append");
    let mut expected = data.clone();
    expected.extend_from_slice(&more);
    assert_eq!(read_all(&bucket, &appended), expected);
    assert_eq!(
        appended,
        put_bytes(&session, small(), &expected).expect("put")
    );

    let cut = editor.truncate(&appended, 500_000).expect("truncate");
    assert_eq!(read_all(&bucket, &cut), &expected[..500_000]);
    let grown = editor.truncate(&cut, 700_000).expect("extend");
    let mut zeros = expected[..500_000].to_vec();
    zeros.resize(700_000, 0);
    assert_eq!(read_all(&bucket, &grown), zeros);
    let empty = editor.truncate(&grown, 0).expect("truncate");
    assert_eq!(empty, Blob::empty());
    let sparse = editor
        .write_at(&Blob::empty(), 3 << 20, b"end")
        .expect("sparse write");
    let mut expect_sparse = vec![0u8; 3 << 20];
    expect_sparse.extend_from_slice(b"end");
    assert_eq!(read_all(&bucket, &sparse), expect_sparse);
    let inline = editor.write_at(&Blob::empty(), 0, b"tiny").expect("inline");
    assert_eq!(inline, Blob::Inline(bytes::Bytes::from_static(b"tiny")));
}

#[test]
fn damaged_chunks_fail_only_their_range() {
    let (bucket, mem) = memory_bucket();
    let data = noise(2 << 20, 9);
    let blob = put_bytes(&bucket.session(), small(), &data).expect("put");
    let mut r = BlobReader::new(bucket.clone(), blob.clone());
    let leaves = r.leaves().expect("leaves");
    let (missing, _) = leaves[10];
    let (corrupt, _) = leaves[200];
    let start = |i: usize| leaves[..i].iter().map(|(_, n)| n).sum::<u64>();
    mem.delete_many(&[missing]).expect("delete");
    mem.corrupt(&corrupt, bytes::Bytes::from_static(b"bad bytes"));

    let mut r = BlobReader::new(bucket, blob);
    // Other ranges still read.
    let far = start(100);
    assert_eq!(
        r.read_at(far, 1000).expect("read"),
        &data[far as usize..far as usize + 1000]
    );
    match r.read_at(start(10) + 1, 10) {
        Err(ChunkError::Dag(DagError::NotFound { cid })) => assert_eq!(cid, missing),
        other => panic!("expected NotFound naming the chunk, got {other:?}"),
    }
    match r.read_at(start(200), 10) {
        Err(ChunkError::Dag(DagError::Integrity { cid })) => assert_eq!(cid, corrupt),
        other => panic!("expected an integrity error naming the chunk, got {other:?}"),
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Write(u64, Vec<u8>),
    Append(Vec<u8>),
    Truncate(u64),
}

impl Edit {
    /// Applies the edit to `blob` and to its `model`; returns the new blob.
    fn apply(&self, editor: &BlobEditor, blob: &Blob, model: &mut Vec<u8>) -> Blob {
        match self {
            Edit::Write(o, d) => {
                let at = *o as usize;
                if model.len() < at + d.len() {
                    model.resize(at + d.len(), 0);
                }
                model[at..at + d.len()].copy_from_slice(d);
                editor.write_at(blob, *o, d).expect("write_at")
            }
            Edit::Append(d) => {
                model.extend_from_slice(d);
                editor.append(blob, d).expect("append")
            }
            Edit::Truncate(n) => {
                model.resize(*n as usize, 0);
                editor.truncate(blob, *n).expect("truncate")
            }
        }
    }
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            0u64..400_000,
            proptest::collection::vec(any::<u8>(), 1..20_000)
        )
            .prop_map(|(o, d)| Edit::Write(o, d)),
        proptest::collection::vec(any::<u8>(), 1..30_000).prop_map(Edit::Append),
        (0u64..400_000).prop_map(Edit::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every edit equals writing the edited content afresh, byte and root.
    #[test]
    fn edits_match_a_model(len in 0usize..300_000, seed: u64, edits in proptest::collection::vec(edit_strategy(), 1..6)) {
        let (bucket, _) = memory_bucket();
        let session = bucket.session();
        let editor = BlobEditor::new(session.clone(), small());
        let mut model = noise(len, seed);
        let mut blob = put_bytes(&session, small(), &model).expect("put");
        for edit in edits {
            blob = edit.apply(&editor, &blob, &mut model);
            prop_assert_eq!(blob.size(), model.len() as u64);
            prop_assert_eq!(&read_all(&bucket, &blob), &model, "after {:?}", edit);
            prop_assert_eq!(&blob, &put_bytes(&session, small(), &model).expect("put"));
        }
    }
}

/// Peak resident memory of this process, from /proc.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

/// A reader of `len` pseudo-random bytes that never holds them all.
struct Noise {
    left: u64,
    x: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize & !7;
        let n = if n == 0 {
            (buf.len() as u64).min(self.left) as usize
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            let bytes = self.x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn ten_gib_streams_in_bounded_memory() {
    const LEN: u64 = 10 << 30;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = hydra_dag::StoreOptions {
        cache_bytes: 32 << 20,
        ..hydra_dag::StoreOptions::default()
    };
    let (store, _) = hydra_dag::Store::init(&dir.path().join("s"), &options).expect("store");
    let bucket = store.bucket().clone();
    let session = bucket.session();

    let mut input_hash = blake3::Hasher::new();
    struct Tee<'a, R> {
        inner: R,
        hash: &'a mut blake3::Hasher,
    }
    impl<R: Read> Read for Tee<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
    }
    let input = Tee {
        inner: Noise {
            left: LEN,
            x: 0x1234_5678_9abc_def1,
        },
        hash: &mut input_hash,
    };
    let (blob, stats) = put_reader(&session, ChunkParams::default(), input).expect("put");
    assert_eq!(blob.size(), LEN);
    assert_eq!(stats.logical_bytes, LEN);

    let mut output_hash = blake3::Hasher::new();
    let mut r = BlobReader::new(bucket, blob);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        output_hash.update(&buf[..n]);
        total += n as u64;
    }
    assert_eq!(total, LEN);
    assert_eq!(
        input_hash.finalize(),
        output_hash.finalize(),
        "10 GiB round trip"
    );
    let peak = peak_rss_bytes();
    eprintln!("peak RSS {} MiB", peak >> 20);
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn shared_bytes_give_the_same_blob_without_copying() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    for len in [0, 10, 1024, 1025, 200_000, (9 << 20) + 3] {
        let data = noise(len, 11 + len as u64);
        let copied = put_bytes(&session, ChunkParams::default(), &data).expect("put");
        let (shared, stats) = hydra_chunker::put_shared(
            &session,
            ChunkParams::default(),
            bytes::Bytes::from(data.clone()),
        )
        .expect("put");
        assert_eq!(copied, shared, "{len}");
        assert_eq!(stats.logical_bytes, len as u64);
        assert_eq!(read_all(&bucket, &shared), data);
    }
}

#[test]
fn a_resumed_writer_gives_the_fresh_blob() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let data = noise(6 << 20, 21);
    for split in [0usize, 100, 70_000, 3 << 20] {
        let first = put_bytes(&session, small(), &data[..split]).expect("put");
        let mut w = BlobWriter::resume(session.clone(), small(), &first).expect("resume");
        w.write_bytes(&data[split..]).expect("write");
        let (resumed, stats) = w.finish().expect("finish");
        assert_eq!(stats.logical_bytes, data.len() as u64);
        assert_eq!(
            resumed,
            put_bytes(&session, small(), &data).expect("put"),
            "split at {split}"
        );
    }
}

#[test]
fn sequential_reads_warm_ahead_only_when_asked() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let data = noise(1 << 20, 9);
    let blob = put_bytes(&session, small(), &data).expect("put");
    let reads = || bucket.io_stats().reads;
    let read_two = |on: bool| {
        let mut reader = BlobReader::new(bucket.clone(), blob.clone());
        reader.set_read_ahead(on);
        assert_eq!(reader.read_at(0, 65536).expect("read"), &data[..65536]);
        assert_eq!(
            reader.read_at(65536, 65536).expect("read"),
            &data[65536..131072]
        );
        reader
    };
    // Off: the blocks of the two reads and nothing more, now or later.
    let before = reads();
    let reader = read_two(false);
    let after = reads();
    assert!(after > before);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(reads(), after, "a reader without read-ahead fetched more");
    drop(reader);
    // On: a background thread fetches the chunks after the second read too.
    let before = reads();
    let _reader = read_two(true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reads() - before <= after - before {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was read ahead"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn large_blobs_without_read_ahead_stream_past_the_cache() {
    let mem = Arc::new(MemoryVolume::new());
    let verified: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(mem.clone()));
    let cached: Arc<dyn Volume> = Arc::new(CachedVolume::new(verified, 64 << 20));
    let bucket = Bucket::new("t", BucketPolicy::default(), vec![cached]).expect("bucket");
    let params = ChunkParams::default();
    let read_in_mib = |blob: &Blob, data: &[u8]| {
        let mut reader = BlobReader::new(bucket.clone(), blob.clone());
        reader.set_read_ahead(false);
        // One buffer for every read, as the FUSE front end keeps it.
        let mut out = Vec::new();
        for offset in (0..data.len()).step_by(1 << 20) {
            let n = reader
                .read_at_over(offset as u64, 1 << 20, &mut out)
                .expect("read");
            let end = (offset + (1 << 20)).min(data.len());
            assert!(out[..n] == data[offset..end], "bytes at {offset} differ");
        }
    };
    // 8 MiB: every chunk read stays cached.
    let small_data = noise(8 << 20, 21);
    let small_blob = put_bytes(&bucket.session(), params, &small_data).expect("put");
    let before = bucket.cache_stats().bytes;
    read_in_mib(&small_blob, &small_data);
    assert!(
        bucket.cache_stats().bytes - before >= 7 << 20,
        "a small blob's chunks were not cached"
    );
    // 24 MiB: whole chunks bypass the cache; only the chunks cut by a
    // request's ends and the tree nodes stay.
    let data = noise(24 << 20, 22);
    let blob = put_bytes(&bucket.session(), params, &data).expect("put");
    let before = bucket.cache_stats().bytes;
    read_in_mib(&blob, &data);
    let grew = bucket.cache_stats().bytes - before;
    assert!(
        grew < 8 << 20,
        "a large stream filled the cache by {grew} bytes"
    );

    // A damaged or missing whole chunk is still an error naming it.
    let mut r = BlobReader::new(bucket.clone(), blob.clone());
    let leaves = r.leaves().expect("leaves");
    let start = |i: usize| leaves[..i].iter().map(|(_, n)| n).sum::<u64>();
    // Chunks inside one of the reads above, so none is cached.
    let uncached = |from: usize| {
        (from..leaves.len())
            .find(|&i| start(i) >> 20 == (start(i + 1) - 1) >> 20 && start(i) % (1 << 20) > 10)
            .expect("a chunk inside a MiB")
    };
    let (c, m) = (uncached(100), uncached(200));
    let ((corrupt, corrupt_len), (missing, missing_len)) = (leaves[c], leaves[m]);
    // Same length, other bytes: only verification can tell.
    mem.corrupt(&corrupt, noise(corrupt_len as usize, 99).into());
    mem.delete_many(&[missing]).expect("delete");
    let mut r = BlobReader::new(bucket.clone(), blob);
    r.set_read_ahead(false);
    let mut out = Vec::new();
    match r.read_at_into(start(c) - 10, corrupt_len as usize + 20, &mut out) {
        Err(ChunkError::Dag(DagError::Integrity { cid })) => assert_eq!(cid, corrupt),
        other => panic!("expected an integrity error naming the chunk, got {other:?}"),
    }
    match r.read_at_into(start(m) - 10, missing_len as usize + 20, &mut out) {
        Err(ChunkError::Dag(DagError::NotFound { cid })) => assert_eq!(cid, missing),
        other => panic!("expected NotFound naming the chunk, got {other:?}"),
    }
}

#[test]
fn reads_over_a_reused_buffer_write_only_their_bytes() {
    let (bucket, _) = memory_bucket();
    let data = noise(300_000, 5);
    let blob = put_bytes(&bucket.session(), small(), &data).expect("put");
    let mut r = BlobReader::new(bucket, blob);
    let mut buf = vec![0xEE; 500_000];
    let n = r.read_at_over(1000, 200_000, &mut buf).expect("read");
    assert_eq!(n, 200_000);
    assert!(buf[..n] == data[1000..201_000], "bytes differ");
    assert_eq!(buf.len(), 500_000, "the buffer changed length");
    assert!(
        buf[n..].iter().all(|&b| b == 0xEE),
        "bytes past the read changed"
    );
    // Past the end of the blob: fewer bytes, and a short buffer grows.
    let mut short = vec![1; 10];
    let n = r.read_at_over(250_000, 100_000, &mut short).expect("read");
    assert_eq!(n, 50_000);
    assert!(short == data[250_000..], "tail differs");
    // Appending after what a buffer holds.
    let mut appended = b"head".to_vec();
    r.read_at_into(0, 100, &mut appended).expect("read");
    assert!(appended[..4] == *b"head" && appended[4..] == data[..100]);
}

/// The smallest chunks FastCDC allows: a few megabytes make a tree three
/// or four levels deep.
fn tiny() -> ChunkParams {
    ChunkParams::new(64, 256, 1024).expect("params")
}

/// A memory bucket, a write session on it and an editor of tiny chunks.
fn tiny_editor() -> (Bucket, Arc<MemoryVolume>, WriteSession, BlobEditor) {
    let (bucket, mem) = memory_bucket();
    let session = bucket.session();
    let editor = BlobEditor::new(session.clone(), tiny());
    (bucket, mem, session, editor)
}

/// A blob of noise in tiny chunks, with what made it and where it is cut.
struct TinyBlob {
    bucket: Bucket,
    session: WriteSession,
    editor: BlobEditor,
    data: Vec<u8>,
    blob: Blob,
    /// `(offset, len)` of each chunk.
    cuts: Vec<(usize, usize)>,
}

/// `len` bytes of noise from `seed`, stored in tiny chunks.
fn tiny_blob(len: usize, seed: u64) -> TinyBlob {
    let (bucket, _, session, editor) = tiny_editor();
    let data = noise(len, seed);
    let blob = put_bytes(&session, tiny(), &data).expect("put");
    let mut cuts = Vec::new();
    tiny().split(&data, true, &mut cuts);
    TinyBlob {
        bucket,
        session,
        editor,
        data,
        blob,
        cuts,
    }
}

#[test]
fn edits_of_deep_trees_give_the_fresh_blob() {
    let (bucket, _, session, editor) = tiny_editor();
    let mut model = noise(12 << 20, 31);
    let mut blob = put_bytes(&session, tiny(), &model).expect("put");
    let depth = BlobReader::new(bucket.clone(), blob.clone())
        .stats()
        .expect("stats")
        .depth;
    assert!(depth >= 3, "depth {depth}");
    let len = model.len() as u64;
    let edits: Vec<Edit> = vec![
        Edit::Write(0, b"head".to_vec()),
        Edit::Write(len / 2, noise(3000, 32)),
        Edit::Write(len / 3, vec![0; 70_000]),
        Edit::Write(len - 10, noise(5000, 33)),
        Edit::Append(noise(40_000, 34)),
        Edit::Truncate(len - 100_000),
        Edit::Truncate(len + (3 << 20)),
        Edit::Write(len + (5 << 20), b"far past the end".to_vec()),
        Edit::Write(len + (1 << 20), b"into the zeros".to_vec()),
        Edit::Truncate(len / 4 + 17),
    ];
    for edit in edits {
        blob = edit.apply(&editor, &blob, &mut model);
        let fresh = put_bytes(&session, tiny(), &model).expect("put");
        assert_eq!(blob, fresh, "after {:?}", edit_name(&edit));
    }
    assert_eq!(read_all(&bucket, &blob), model);
    // A writer resumed on a deep tree gives the fresh blob too.
    let mut w = BlobWriter::resume(session.clone(), tiny(), &blob).expect("resume");
    let more = noise(300_000, 35);
    w.write_bytes(&more).expect("write");
    model.extend_from_slice(&more);
    let (resumed, _) = w.finish().expect("finish");
    assert_eq!(resumed, put_bytes(&session, tiny(), &model).expect("put"));
}

fn edit_name(edit: &Edit) -> String {
    match edit {
        Edit::Write(o, d) => format!("write of {} bytes at {o}", d.len()),
        Edit::Append(d) => format!("append of {} bytes", d.len()),
        Edit::Truncate(n) => format!("truncate to {n}"),
    }
}

#[test]
fn zero_extensions_give_the_fresh_blob() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    for params in [tiny(), small(), ChunkParams::default()] {
        let editor = BlobEditor::new(session.clone(), params);
        for (len, grow) in [
            (0usize, 9u64 << 20),
            (10, 5 << 20),
            (5000, 3 << 20),
            (300_000, 17 << 20),
        ] {
            let data = noise(len, 40 + len as u64);
            let blob = put_bytes(&session, params, &data).expect("put");
            let grown = editor.truncate(&blob, len as u64 + grow).expect("extend");
            let mut model = data.clone();
            model.resize(len + grow as usize, 0);
            assert_eq!(
                grown,
                put_bytes(&session, params, &model).expect("put"),
                "{params:?}: {len} bytes grown by {grow}"
            );
            let far = editor
                .write_at(&blob, len as u64 + grow, b"!")
                .expect("write past the end");
            model.push(b'!');
            assert_eq!(far, put_bytes(&session, params, &model).expect("put"));
            // Bytes in the middle of the zeros shift where nodes of equal
            // links close: the old tree is reused only where it still fits.
            let mid = len as u64 + grow / 2;
            let bytes = noise(3001, 41);
            let mixed = editor
                .write_at(&far, mid, &bytes)
                .expect("write into the zeros");
            model[mid as usize..mid as usize + bytes.len()].copy_from_slice(&bytes);
            assert_eq!(mixed, put_bytes(&session, params, &model).expect("put"));
        }
    }
}

#[test]
fn a_terabyte_sparse_blob_costs_a_few_blocks() {
    let (bucket, mem) = memory_bucket();
    let session = bucket.session();
    let editor = BlobEditor::new(session.clone(), ChunkParams::default());
    let data = noise(300_000, 50);
    let blob = put_bytes(&session, ChunkParams::default(), &data).expect("put");
    let before = mem.stats().expect("stats").blocks;
    let tera = 1u64 << 40;
    let big = editor.truncate(&blob, tera).expect("extend to 1 TiB");
    assert_eq!(big.size(), tera);
    let grown_by = mem.stats().expect("stats").blocks - before;
    assert!(grown_by < 40, "{grown_by} new blocks");
    // Writes anywhere in it touch a few blocks and read back.
    let mut edited = big;
    for (i, at) in [tera / 2, 12_345_678_901, tera - 3].into_iter().enumerate() {
        let before = mem.stats().expect("stats").blocks;
        edited = editor.write_at(&edited, at, b"xyz").expect("write");
        let added = mem.stats().expect("stats").blocks - before;
        assert!(added < 40, "write {i}: {added} new blocks");
    }
    // A megabyte of data in the hole shifts where the zeros after it are
    // cut, up to the hole's end: that run is re-cut a subtree at a time.
    let before = mem.stats().expect("stats").blocks;
    let lump = noise(1 << 20, 51);
    let lump_at = tera / 4 + 12_345;
    edited = editor.write_at(&edited, lump_at, &lump).expect("write");
    let added = mem.stats().expect("stats").blocks - before;
    assert!(added < 60, "{added} new blocks for 1 MiB");
    let mut r = BlobReader::new(bucket.clone(), edited.clone());
    assert_eq!(r.read_at(lump_at, lump.len()).expect("read"), lump);
    assert_eq!(r.read_at(lump_at + (1 << 20), 3).expect("read"), [0; 3]);
    assert_eq!(r.read_at(tera / 2 - 2, 7).expect("read"), b"\0\0xyz\0\0");
    assert_eq!(r.read_at(12_345_678_900, 5).expect("read"), b"\0xyz\0");
    assert_eq!(r.read_at(tera - 4, 10).expect("read"), b"\0xyz");
    assert_eq!(r.read_at(1000, 10).expect("read"), &data[1000..1010]);
    assert_eq!(r.read_at(400_000, 4).expect("read"), [0; 4]);
    // Cut back down: the very blob the small content makes.
    let cut = editor.truncate(&edited, 200_000).expect("truncate");
    assert_eq!(
        cut,
        put_bytes(&session, ChunkParams::default(), &data[..200_000]).expect("put")
    );
}

#[test]
fn an_edit_in_step_with_a_run_of_zero_chunks_resumes_it() {
    // Data over exactly one zero chunk of a long run, cut exactly at its
    // end: the chunks after it are in step with the old ones again, but
    // the nodes of 1024 equal links they fill close elsewhere.
    let (_, mem, session, editor) = tiny_editor();
    let p = tiny();
    let mut cuts = Vec::new();
    p.split(&vec![0u8; p.max()], true, &mut cuts);
    let zero_len = cuts[0].1;
    let lump = (0..)
        .map(|seed| noise(zero_len, 60 + seed))
        .find(|lump| {
            let mut window = lump.clone();
            window.resize(4 * p.max(), 0);
            let mut cuts = Vec::new();
            p.split(&window, true, &mut cuts);
            cuts.iter().any(|&(o, l)| o + l == zero_len)
        })
        .expect("some noise is cut at its end");
    let mut model = noise(100_000, 61);
    let blob = put_bytes(&session, p, &model).expect("put");
    let grown = editor
        .truncate(&blob, 100_000 + (12 << 20))
        .expect("extend");
    model.resize(100_000 + (12 << 20), 0);
    let mut cuts = Vec::new();
    p.split(&model, true, &mut cuts);
    let (at, _) = cuts
        .iter()
        .copied()
        .find(|&(o, l)| o > 5 << 20 && l == zero_len)
        .expect("a zero chunk in the middle");
    let before = mem.stats().expect("stats").blocks;
    let edited = editor.write_at(&grown, at as u64, &lump).expect("write");
    let added = mem.stats().expect("stats").blocks - before;
    model[at..at + lump.len()].copy_from_slice(&lump);
    assert_eq!(edited, put_bytes(&session, p, &model).expect("put"));
    assert!(added < 40, "{added} new blocks");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Many writes in one pass equal writing the result afresh, over data
    /// and over runs of zeros, in trees several levels deep.
    #[test]
    fn many_writes_in_one_pass_give_the_fresh_blob(
        len in 1usize..3_000_000,
        zeros in 0u64..4_000_000,
        seed: u64,
        writes in proptest::collection::vec((any::<u64>(), 1usize..6000, any::<bool>()), 1..40),
    ) {
        let (bucket, _, session, editor) = tiny_editor();
        let mut model = noise(len, seed);
        let base = put_bytes(&session, tiny(), &model).expect("put");
        let base = editor.truncate(&base, len as u64 + zeros).expect("extend");
        model.resize(len + zeros as usize, 0);
        let size = model.len();
        // Sorted, non-overlapping ranges inside the blob.
        let mut ranges: Vec<(usize, usize)> = writes
            .iter()
            .map(|&(at, n, _)| {
                let at = (at % size as u64) as usize;
                (at, n.min(size - at))
            })
            .collect();
        ranges.sort();
        let mut kept: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, (at, n)) in ranges.into_iter().enumerate() {
            if kept.last().is_some_and(|(a, d)| a + d.len() > at) {
                continue;
            }
            let data = if writes[i].2 { vec![0; n] } else { noise(n, seed ^ i as u64) };
            kept.push((at, data));
        }
        for (at, data) in &kept {
            model[*at..at + data.len()].copy_from_slice(data);
        }
        let list: Vec<(u64, &[u8])> = kept.iter().map(|(a, d)| (*a as u64, d.as_slice())).collect();
        let blob = editor.write_many(&base, &list).expect("write_many");
        prop_assert_eq!(&blob, &put_bytes(&session, tiny(), &model).expect("put"));
        prop_assert_eq!(&read_all(&bucket, &blob), &model);
    }
}

#[test]
fn overlapping_or_outside_writes_are_refused() {
    let (bucket, _) = memory_bucket();
    let session = bucket.session();
    let editor = BlobEditor::new(session.clone(), small());
    let blob = put_bytes(&session, small(), &noise(100_000, 70)).expect("put");
    for bad in [
        vec![(10u64, &b"abcdef"[..]), (12, &b"x"[..])],
        vec![(99_999, &b"ab"[..])],
        vec![(50, &b"a"[..]), (40, &b"b"[..])],
    ] {
        match editor.write_many(&blob, &bad) {
            Err(ChunkError::OutOfRange { .. }) => {}
            other => panic!("{bad:?}: expected OutOfRange, got {other:?}"),
        }
    }
}

#[test]
fn writes_ending_just_before_a_cut_give_the_fresh_blob() {
    // Past a write, an old chunk's end is taken as a cut again without
    // reading the next chunk when the bytes deciding it are old ones: a
    // write or zeroing ending within that window of the end must still
    // find the cuts that cutting afresh finds.
    let t = tiny_blob(256 << 10, 82);
    let fresh = |model: &[u8]| put_bytes(&t.session, tiny(), model).expect("put");
    for (k, &(o, l)) in t.cuts.iter().enumerate().skip(1).step_by(5).take(30) {
        let end = o + l;
        for back in [0, 1, 2, 30, 62, 63, 64, 65, 66, 100] {
            let at = end.saturating_sub(back + 5).max(o);
            let len = (end - back).saturating_sub(at).max(1);
            let bytes = noise(len, (k * 1000 + back) as u64);
            let mut model = t.data.clone();
            model[at..at + len].copy_from_slice(&bytes);
            let written = t
                .editor
                .write_at(&t.blob, at as u64, &bytes)
                .expect("write");
            let what = format!("{len} bytes ending {back} before the cut at {end}");
            assert_eq!(written, fresh(&model), "write of {what}");
            assert_eq!(read_all(&t.bucket, &written), model, "write of {what}");
            model[at..at + len].fill(0);
            let zeroed = t
                .editor
                .zero_range(&t.blob, at as u64, len as u64)
                .expect("zero");
            assert_eq!(zeroed, fresh(&model), "zeroing of {what}");
        }
    }
}

#[test]
fn writes_at_chunk_boundaries_give_the_fresh_blob() {
    // A cut is decided by the byte after it: a write that starts exactly
    // where a chunk starts moves the cut before it too.
    let t = tiny_blob(1 << 20, 80);
    let p = tiny();
    let starts: Vec<u64> = t
        .cuts
        .iter()
        .skip(1)
        .step_by(97)
        .map(|&(o, _)| o as u64)
        .collect();
    assert!(starts.len() > 20, "{} boundaries", starts.len());
    let fresh = |model: &[u8]| put_bytes(&t.session, p, model).expect("put");
    for &at in &starts {
        let mut model = t.data.clone();
        model[at as usize] ^= 0xff;
        let one = t
            .editor
            .write_at(&t.blob, at, &model[at as usize..=at as usize])
            .expect("write");
        assert_eq!(one, fresh(&model), "one byte at boundary {at}");
    }
    // Many at once, some adjacent: one ends where the next starts.
    let mut model = t.data.clone();
    let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, &at) in starts.iter().enumerate() {
        let bytes = noise(100 + i, 81 + i as u64);
        writes.push((at, bytes.clone()));
        if i % 3 == 0 {
            writes.push((at + bytes.len() as u64, vec![7; 50]));
        }
    }
    for (at, bytes) in &writes {
        model[*at as usize..*at as usize + bytes.len()].copy_from_slice(bytes);
    }
    let list: Vec<(u64, &[u8])> = writes.iter().map(|(a, d)| (*a, d.as_slice())).collect();
    let many = t.editor.write_many(&t.blob, &list).expect("write_many");
    assert_eq!(many, fresh(&model));
    assert_eq!(read_all(&t.bucket, &many), model);
}

#[test]
fn zeroed_ranges_give_the_fresh_blob() {
    let (bucket, _, session, editor) = tiny_editor();
    let data = noise(3 << 20, 90);
    let blob = put_bytes(&session, tiny(), &data).expect("put");
    for (at, len) in [
        (0u64, 10u64),
        (5000, 2 << 20),
        (1 << 20, 100),
        (3 << 20, 5),
        ((3 << 20) - 7, 1 << 30),
    ] {
        let zeroed = editor.zero_range(&blob, at, len).expect("zero");
        let mut model = data.clone();
        let end = (at + len).min(model.len() as u64) as usize;
        model[(at as usize).min(end)..end].fill(0);
        assert_eq!(
            zeroed,
            put_bytes(&session, tiny(), &model).expect("put"),
            "{at}+{len}"
        );
        assert_eq!(read_all(&bucket, &zeroed), model);
    }
}

/// Data, a run of zeros, data: a blob to copy ranges out of.
fn copy_source(session: &WriteSession, params: ChunkParams, seed: u64) -> (Blob, Vec<u8>) {
    let mut model = noise(1_500_000, seed);
    model.resize(4_000_000, 0);
    model.extend_from_slice(&noise(1_000_000, seed + 1));
    (put_bytes(session, params, &model).expect("put"), model)
}

/// An offset of `size` bytes: any, or one byte either side of (or on) a
/// chunk boundary of `cuts` (where copies may fall in step).
fn copy_offset(pick: (bool, u64, u8), cuts: &[u64], size: u64) -> u64 {
    let (near_cut, any, side) = pick;
    if near_cut {
        let cut = cuts[(any % cuts.len() as u64) as usize];
        (cut + u64::from(side % 3)).saturating_sub(1).min(size)
    } else {
        any % (size + 1)
    }
}

fn offset_pick() -> impl Strategy<Value = (bool, u64, u8)> {
    (any::<bool>(), any::<u64>(), any::<u8>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Copying a range of one blob into another equals writing the result
    /// afresh: into empty blobs, unrelated ones and edited copies of the
    /// source (at the same offset: the cuts before the range may be the
    /// source's, the bytes not), before, across and past their end, out of
    /// data and zeros, starting and ending on and next to chunk boundaries.
    #[test]
    fn copied_ranges_give_the_fresh_blob(
        seed: u64,
        dst_kind in 0u8..3,
        dst_len in 1usize..3_000_000,
        same_offset: bool,
        shift in 0u64..100_000,
        from in offset_pick(),
        to in offset_pick(),
        edit in (any::<u64>(), 1usize..3000),
    ) {
        let (bucket, _, session, editor) = tiny_editor();
        let (src, src_model) = copy_source(&session, tiny(), seed);
        let size = src.size();
        let mut cuts = vec![0];
        for (_, len) in BlobReader::new(bucket.clone(), src.clone()).leaves().expect("leaves") {
            cuts.push(cuts.last().copied().unwrap_or(0) + len);
        }
        let mut model = match dst_kind {
            0 => Vec::new(),
            1 => noise(dst_len, seed ^ 0xd57),
            _ => {
                // The source with a few bytes changed somewhere.
                let mut m = src_model.clone();
                let at = (edit.0 % size) as usize;
                let n = edit.1.min(m.len() - at);
                m[at..at + n].copy_from_slice(&noise(n, seed ^ 0xed17));
                m
            }
        };
        let dst = put_bytes(&session, tiny(), &model).expect("put");
        let from = copy_offset(from, &cuts, size - 1);
        let to = copy_offset(to, &cuts, size).max(from + 1);
        let at = if same_offset { from } else { (from + shift) % (model.len() as u64 + 100_000) };
        let (blob, copied) = editor.copy_range(&dst, at, &src, from, to - from).expect("copy");
        prop_assert_eq!(copied, to - from);
        let (at, from, to) = (at as usize, from as usize, to as usize);
        let end = at + to - from;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[at..end].copy_from_slice(&src_model[from..to]);
        prop_assert_eq!(&read_all(&bucket, &blob), &model);
        prop_assert_eq!(&blob, &put_bytes(&session, tiny(), &model).expect("put"));
    }
}

#[test]
fn copies_of_large_blobs_reuse_their_chunks() {
    let (bucket, mem) = memory_bucket();
    let session = bucket.session();
    let p = ChunkParams::default();
    let editor = BlobEditor::new(session.clone(), p);
    let data = noise(64 << 20, 80);
    let src = put_bytes(&session, p, &data).expect("put");
    let blocks = || mem.stats().expect("stats").blocks;
    // A whole copy into an empty blob is the source itself.
    let before = blocks();
    let (whole, n) = editor
        .copy_range(&Blob::empty(), 0, &src, 0, u64::MAX)
        .expect("copy");
    assert_eq!((whole.clone(), n), (src.clone(), 64 << 20));
    assert_eq!(blocks(), before);
    // In pieces at odd offsets, as `cp` asks: the same blob again.
    let cut = (24 << 20) - 4096;
    let (first, _) = editor
        .copy_range(&Blob::empty(), 0, &src, 0, cut)
        .expect("copy");
    let (second, _) = editor
        .copy_range(&first, cut, &src, cut, u64::MAX)
        .expect("copy");
    assert_eq!(second, src);
    assert!(blocks() - before < 20, "{} new blocks", blocks() - before);
    // A range from the middle into the middle of another blob: the cuts
    // fall in step with the source's after a few chunks.
    let other = put_bytes(&session, p, &noise(40 << 20, 81)).expect("put");
    let before = blocks();
    let (mixed, n) = editor
        .copy_range(&other, 5_000_001, &src, 12_345, 30 << 20)
        .expect("copy");
    assert_eq!(n, 30 << 20);
    assert!(blocks() - before < 40, "{} new blocks", blocks() - before);
    let mut model = noise(40 << 20, 81);
    model[5_000_001..5_000_001 + (30 << 20)].copy_from_slice(&data[12_345..12_345 + (30 << 20)]);
    assert_eq!(read_all(&bucket, &mixed), model);
    assert_eq!(mixed, put_bytes(&session, p, &model).expect("put"));
    // A terabyte sparse blob copies in a few blocks, from any offset.
    let tera = editor.truncate(&src, 1 << 40).expect("extend");
    let tera = editor.write_at(&tera, 1 << 39, b"middle").expect("write");
    let before = blocks();
    let (copy, _) = editor
        .copy_range(&Blob::empty(), 0, &tera, 0, u64::MAX)
        .expect("copy");
    assert_eq!(copy, tera);
    let (shifted, n) = editor
        .copy_range(&Blob::empty(), 0, &tera, 100 << 20, u64::MAX)
        .expect("copy");
    assert_eq!(n, (1 << 40) - (100 << 20));
    assert!(blocks() - before < 60, "{} new blocks", blocks() - before);
    let mut r = BlobReader::new(bucket.clone(), shifted);
    assert_eq!(
        r.read_at((1 << 39) - (100 << 20) - 1, 8).expect("read"),
        b"\0middle\0"
    );
}

/// FastCDC tests two bytes a step, so a cut after an even count of bytes
/// needs one more byte to exist: cutting a blob a byte past a chunk
/// boundary must re-cut the chunk before it too.
#[test]
fn truncations_next_to_cuts_give_the_fresh_blob() {
    let (bucket, _, session, editor) = tiny_editor();
    let (src, model) = copy_source(&session, tiny(), 2585906747057598020);
    let mut cuts = vec![0u64];
    for (_, len) in BlobReader::new(bucket.clone(), src.clone())
        .leaves()
        .expect("leaves")
    {
        cuts.push(cuts.last().copied().unwrap_or(0) + len);
    }
    let mut bad = Vec::new();
    for &c in cuts.iter().take(400) {
        for d in [0u64, 1, 2] {
            let to = (c + d).saturating_sub(1).max(1);
            let t = editor.truncate(&src, to).expect("t");
            if t != put_bytes(&session, tiny(), &model[..to as usize]).expect("put") {
                bad.push((c, d));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} bad: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

#[test]
fn holes_are_found_and_left_out_of_the_data_bytes() {
    let (bucket, _, session, editor) = tiny_editor();
    let p = tiny();
    // Data, zeros, data, a short zero gap, data, zeros to the end.
    let mut model = noise(300_000, 90);
    model.resize(3_000_000, 0);
    model.extend_from_slice(&noise(200_000, 91));
    model.resize(3_202_000, 0);
    model.extend_from_slice(&noise(100_000, 92));
    model.resize(6_000_000, 0);
    let blob = put_bytes(&session, p, &model).expect("put");
    let mut cuts = Vec::new();
    p.split(&vec![0u8; p.max()], true, &mut cuts);
    let zero_len = cuts[0].1 as u64;
    // The truth, leaf by leaf.
    let mut holes = Vec::new();
    let mut at = 0;
    let size = blob.size();
    let leaves = BlobReader::new(bucket.clone(), blob.clone())
        .leaves()
        .expect("leaves");
    for (cid, len) in leaves {
        let zeros = Cid::hash(Codec::RAW, &vec![0u8; len as usize]);
        let last = at + len == size;
        holes.push((at, at + len, cid == zeros && (len == zero_len || last)));
        at += len;
    }
    assert!(
        holes.last().is_some_and(|h| h.2 && h.1 - h.0 < zero_len),
        "a short tail of zeros"
    );
    let in_hole = |o: u64| holes.iter().any(|&(s, e, h)| h && s <= o && o < e);
    // The first offset at or after `o` where `want` (in a hole or not) holds.
    let first = |o: u64, want: bool| {
        holes
            .iter()
            .filter(|&&(_, e, h)| h == want && e > o)
            .map(|&(s, _, _)| s.max(o))
            .next()
    };
    let mut r = BlobReader::new(bucket.clone(), blob.clone());
    let hole_bytes: u64 = holes.iter().filter(|h| h.2).map(|&(s, e, _)| e - s).sum();
    assert!(hole_bytes > 5_000_000, "{hole_bytes}");
    assert_eq!(r.data_bytes(p).expect("data"), size - hole_bytes);
    for o in (0..size + 10)
        .step_by(7919)
        .chain([0, 299_999, 300_000, 3_201_999, size - 1])
    {
        let data = first(o, false);
        assert_eq!(r.next_data(o, p).expect("data"), data, "SEEK_DATA {o}");
        let hole = first(o, true).unwrap_or(size.max(o));
        assert_eq!(r.next_hole(o, p).expect("hole"), hole, "SEEK_HOLE {o}");
        if o < size && in_hole(o) {
            assert_eq!(r.read_at(o, 1).expect("read"), [0]);
        }
    }
    // A terabyte hole is found and skipped a subtree at a time.
    let tera = 1u64 << 40;
    let big = editor.truncate(&blob, tera).expect("extend");
    let big = editor.write_at(&big, tera / 2, b"xyz").expect("write");
    let mut r = BlobReader::new(bucket.clone(), big);
    let data = r.data_bytes(p).expect("data");
    assert!(data < 1 << 20, "{data} bytes of data");
    let first_hole = r.next_hole(0, p).expect("hole");
    assert!(
        (300_000..300_000 + 2048).contains(&first_hole),
        "{first_hole}"
    );
    let middle = r.next_data(5_000_000, p).expect("data").expect("some");
    assert!((tera / 2 - 2048..=tera / 2).contains(&middle), "{middle}");
    assert!(r.next_hole(middle, p).expect("hole") < tera / 2 + 2048);
    // The last chunk, shorter, of zeros, is part of the hole at the end.
    assert_eq!(r.next_data(tera / 2 + 4096, p).expect("data"), None);
    assert_eq!(r.next_data(tera, p).expect("data"), None);
    assert_eq!(r.next_hole(tera + 5, p).expect("hole"), tera + 5);
    // Inline blobs are all data.
    let small = put_bytes(&session, p, b"tiny").expect("put");
    let mut r = BlobReader::new(bucket.clone(), small);
    assert_eq!(r.data_bytes(p).expect("data"), 4);
    assert_eq!(r.next_data(2, p).expect("data"), Some(2));
    assert_eq!(r.next_data(4, p).expect("data"), None);
    assert_eq!(r.next_hole(1, p).expect("hole"), 4);
}
