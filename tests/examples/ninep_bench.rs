//! One 9P2000.L client, for benchmarking servers side by side (hydra and
//! diod): `ninep_bench ADDR ANAME write|read|meta [MIB|FILES] [MSIZE]`.
//!
//! write: creates `bench.dat` and writes MIB MiB of pseudo-random bytes;
//! read: reads `bench.dat` back; meta: creates, stats and removes FILES
//! empty files (walk + Tremove: diod has no Tunlinkat). One request in flight at a time, as diodcat does. Prints
//! `SECONDS RATE` (MB/s, or operations/s for meta).

use std::time::Instant;

use hydra_mountd::ninep::wire::{IOHDR, Tmsg};
use hydra_tests::ninep::{Client, O_RDONLY};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: ninep_bench ADDR ANAME write|read|meta [MIB|FILES] [MSIZE]");
        std::process::exit(2);
    }
    let n: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let msize: u32 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let mut c = Client::connect(&args[1], msize).expect("connect");
    let uid = rustix_uid();
    let (root, _) = c.attach(&args[2], uid).expect("attach");
    let start = Instant::now();
    let rate = match args[3].as_str() {
        "write" => {
            let (f, _) = c.walk(root, "").expect("clone");
            if let Ok((old, _)) = c.walk(root, "bench.dat") {
                c.ok(&Tmsg::Remove { fid: old });
            }
            c.create(f, "bench.dat", 0o644).expect("create");
            let chunk = c.msize as usize - IOHDR;
            let total = n << 20;
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let mut buf = vec![0u8; chunk];
            let mut offset = 0u64;
            while offset < total {
                let len = chunk.min((total - offset) as usize);
                for word in buf[..len].chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
                }
                offset += u64::from(c.write_from(f, offset, &buf[..len]));
            }
            c.ok(&Tmsg::Fsync {
                fid: f,
                datasync: 0,
            });
            c.clunk(f);
            total as f64 / 1e6
        }
        "read" => {
            let (f, _) = c.walk(root, "bench.dat").expect("walk");
            c.ok(&Tmsg::Lopen {
                fid: f,
                flags: O_RDONLY,
            });
            let mut buf = Vec::new();
            let mut offset = 0u64;
            loop {
                match c.read_into(f, offset, &mut buf) {
                    0 => break,
                    n => offset += n as u64,
                }
            }
            offset as f64 / 1e6
        }
        "meta" => {
            let (d, _) = c.walk(root, "").expect("clone");
            let _ = c.rpc(&Tmsg::Mkdir {
                dfid: d,
                name: b"meta".to_vec(),
                mode: 0o755,
                gid: 0,
            });
            let (dir, _) = c.walk(root, "meta").expect("walk");
            for i in 0..n {
                let (f, _) = c.walk(dir, "").expect("clone");
                c.create(f, &format!("f{i}"), 0o644).expect("create");
                c.clunk(f);
            }
            for i in 0..n {
                let (f, _) = c.walk(dir, &format!("f{i}")).expect("walk");
                c.ok(&Tmsg::Getattr {
                    fid: f,
                    mask: 0x7ff,
                });
                c.clunk(f);
            }
            for i in 0..n {
                let (f, _) = c.walk(dir, &format!("f{i}")).expect("walk");
                c.ok(&Tmsg::Remove { fid: f });
            }
            (3 * n) as f64
        }
        other => panic!("unknown operation {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{secs:.3} {:.1}", rate / secs);
}

fn rustix_uid() -> u32 {
    // The effective uid, as diod expects the attaching user to be.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(0)
}
