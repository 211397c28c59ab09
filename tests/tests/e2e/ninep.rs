//! The 9P2000.L server driven at the protocol level, by diod's tools, and
//! beside a FUSE mount of the same daemon.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hydra_mountd::ninep::wire::{self, Rmsg, SetattrArgs, Tmsg, lock, setattr};
use hydra_tests::ninep::{Client, O_RDONLY, O_RDWR, O_WRONLY};
use hydra_tests::{TestStore, sh};

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A `hydra serve` (or `mount --serve-9p`) daemon, stopped on drop.
pub struct Served<'a> {
    store: &'a TestStore,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    target: String,
    mountpoint: Option<PathBuf>,
}

impl<'a> Served<'a> {
    /// `hydra serve FS --listen tcp:127.0.0.1:PORT EXTRA…`.
    pub fn serve(store: &'a TestStore, fs: &str, extra: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let listen = format!("tcp:{addr}");
        let mut args = vec!["serve", fs, "--listen", &listen];
        args.extend_from_slice(extra);
        store.ok(&args);
        Served {
            store,
            addr,
            target: listen,
            mountpoint: None,
        }
    }

    /// `hydra mount FS POINT --serve-9p tcp:127.0.0.1:PORT`.
    pub fn mount(store: &'a TestStore, fs: &str, point: &Path) -> Self {
        std::fs::create_dir_all(point).expect("mkdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let listen = format!("tcp:{addr}");
        store.ok(&[
            "mount",
            fs,
            point.to_str().expect("utf-8"),
            "--serve-9p",
            &listen,
        ]);
        Served {
            store,
            addr,
            target: point.to_string_lossy().into_owned(),
            mountpoint: Some(point.to_path_buf()),
        }
    }

    /// A connected, negotiated client.
    pub fn client(&self) -> Client {
        Client::connect(&self.addr, 1 << 20).expect("connect")
    }

    /// What the daemon reports of its 9P server.
    pub fn stats(&self) -> serde_json::Value {
        let status: serde_json::Value =
            serde_json::from_str(&self.store.ok(&["--json", "status"])).expect("json");
        status[0]["ninep"].clone()
    }

    /// Waits until the daemon's report satisfies `f` (it refreshes twice a second).
    pub fn wait_stats(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.stats();
            if f(&s) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Commits and stops.
    pub fn stop(mut self) {
        let target = std::mem::take(&mut self.target);
        self.store.ok(&["umount", &target]);
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        if !self.target.is_empty() {
            let _ = self.store.run(&["umount", &self.target]);
            if let Some(p) = &self.mountpoint {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

fn names(path: &str) -> Vec<Vec<u8>> {
    path.split('/')
        .filter(|n| !n.is_empty())
        .map(|n| n.as_bytes().to_vec())
        .collect()
}

#[test]
fn version_auth_attach_and_walks_stay_inside() {
    let s = TestStore::new();
    let srv = Served::serve(&s, "p", &[]);
    let mut c = Client::connect(&srv.addr, 4 << 20).expect("connect");
    assert_eq!(c.msize, 1 << 20, "msize capped at 1 MiB");
    // Another version is refused by name.
    match c.rpc(&Tmsg::Version {
        msize: 8192,
        version: b"9P2000".to_vec(),
    }) {
        Rmsg::Version { version, .. } => assert_eq!(version, b"unknown"),
        r => panic!("{r:?}"),
    }
    let mut c = srv.client();
    assert_eq!(
        c.err(&Tmsg::Auth {
            afid: 1,
            uname: b"root".to_vec(),
            aname: Vec::new(),
            n_uname: 0,
        }),
        libc::ENOENT,
        "no authentication"
    );
    assert_eq!(c.attach("other-fs", 0), Err(libc::ENOENT));
    assert_eq!(c.attach("p@999", 0), Err(libc::ENOENT));
    let (root, rq) = c.attach("", 0).expect("empty aname");
    let (_, named) = c.attach("p", 0).expect("by name");
    assert_eq!(rq, named);
    // ".." at the root stays at the root, however often.
    let (_, up) = c.walk(root, "../../..").expect("walk up");
    assert_eq!(up.last().map(|q| q.path), Some(rq.path));
    assert_eq!(c.walk(root, "etc/passwd"), Err(libc::ENOENT));
    // A walk that fails part way answers the qids it got, and no fid.
    let (d, _) = c.walk(root, "").expect("clone");
    c.ok(&Tmsg::Mkdir {
        dfid: d,
        name: b"a".to_vec(),
        mode: 0o755,
        gid: 0,
    });
    let newfid = c.fid();
    match c.ok(&Tmsg::Walk {
        fid: root,
        newfid,
        names: names("a/missing/x"),
    }) {
        Rmsg::Walk(q) => assert_eq!(q.len(), 1),
        r => panic!("{r:?}"),
    }
    assert_eq!(c.err(&Tmsg::Clunk { fid: newfid }), libc::EBADF);
    // Seventeen names is over the limit: an error, not a crash.
    let mut frame = wire::encode_t(
        77,
        &Tmsg::Walk {
            fid: root,
            newfid: 999,
            names: vec![b"a".to_vec(); 16],
        },
    );
    frame[15..17].copy_from_slice(&17u16.to_le_bytes());
    c.send_raw(&frame);
    assert_eq!(c.recv(), Some((77, Rmsg::Lerror(libc::EINVAL as u32))));
    srv.stop();
}

#[test]
fn every_operation_through_the_protocol() {
    let s = TestStore::new();
    // One inode kept in memory: everything clean and closed unloads
    // between requests, and fids must still name what they named.
    let srv = Served::serve(&s, "ops", &["--max-inodes", "1", "--commit-interval", "1"]);
    let mut c = srv.client();
    let (root, _) = c.attach("ops", 0).expect("attach");
    // Create, write past msize, read back, getattr.
    let (f, _) = c.walk(root, "").expect("clone");
    c.create(f, "data", 0o640).expect("create");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    c.write_all(f, 0, &data);
    c.ok(&Tmsg::Fsync {
        fid: f,
        datasync: 0,
    });
    c.clunk(f);
    let (f, _) = c.walk(root, "data").expect("walk");
    c.ok(&Tmsg::Lopen {
        fid: f,
        flags: O_RDONLY,
    });
    assert_eq!(c.read_all(f), data);
    let Rmsg::Getattr(st) = c.ok(&Tmsg::Getattr {
        fid: f,
        mask: 0x7ff,
    }) else {
        panic!()
    };
    assert_eq!((st.size, st.mode & 0o7777, st.nlink), (3_000_000, 0o640, 1));
    // Setattr: truncate, chmod, times.
    c.ok(&Tmsg::Setattr {
        fid: f,
        set: SetattrArgs {
            valid: setattr::SIZE
                | setattr::MODE
                | setattr::MTIME
                | setattr::MTIME_SET
                | setattr::ATIME,
            mode: 0o600,
            size: 10,
            mtime_sec: 1_000_000_000,
            mtime_nsec: 5,
            ..SetattrArgs::default()
        },
    });
    let Rmsg::Getattr(st) = c.ok(&Tmsg::Getattr {
        fid: f,
        mask: 0x7ff,
    }) else {
        panic!()
    };
    assert_eq!(
        (st.size, st.mode & 0o7777, st.mtime),
        (10, 0o600, (1_000_000_000, 5))
    );
    c.clunk(f);
    // Directories, symlinks, device nodes, hard links.
    let (d, _) = c.walk(root, "").expect("clone");
    c.ok(&Tmsg::Mkdir {
        dfid: d,
        name: b"dir".to_vec(),
        mode: 0o755,
        gid: 0,
    });
    c.ok(&Tmsg::Symlink {
        fid: d,
        name: b"sym".to_vec(),
        target: b"data".to_vec(),
        gid: 0,
    });
    c.ok(&Tmsg::Mknod {
        dfid: d,
        name: b"fifo".to_vec(),
        mode: libc::S_IFIFO | 0o644,
        major: 0,
        minor: 0,
        gid: 0,
    });
    c.ok(&Tmsg::Mknod {
        dfid: d,
        name: b"null".to_vec(),
        mode: libc::S_IFCHR | 0o666,
        major: 1,
        minor: 3,
        gid: 0,
    });
    let (data_fid, _) = c.walk(root, "data").expect("walk");
    c.ok(&Tmsg::Link {
        dfid: d,
        fid: data_fid,
        name: b"hard".to_vec(),
    });
    let Rmsg::Getattr(st) = c.ok(&Tmsg::Getattr {
        fid: data_fid,
        mask: 0x7ff,
    }) else {
        panic!()
    };
    assert_eq!(st.nlink, 2);
    let (sym, _) = c.walk(root, "sym").expect("walk");
    assert_eq!(
        c.ok(&Tmsg::Readlink { fid: sym }),
        Rmsg::Readlink(b"data".to_vec())
    );
    let (null, _) = c.walk(root, "null").expect("walk");
    let Rmsg::Getattr(st) = c.ok(&Tmsg::Getattr {
        fid: null,
        mask: 0x7ff,
    }) else {
        panic!()
    };
    assert_eq!(
        (st.mode & libc::S_IFMT, st.rdev),
        (libc::S_IFCHR, libc::makedev(1, 3))
    );
    // Many entries, read with a small count: every name exactly once.
    let (many, _) = c.walk(root, "dir").expect("walk");
    for i in 0..300 {
        let (f, _) = c.walk(many, "").expect("clone");
        c.create(f, &format!("file-{i:03}"), 0o644).expect("create");
        c.clunk(f);
    }
    let (ls, _) = c.walk(root, "dir").expect("walk");
    c.ok(&Tmsg::Lopen {
        fid: ls,
        flags: O_RDONLY,
    });
    let listed = c.list(ls, 500);
    assert_eq!(listed.len(), 302, "300 files, . and ..");
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 302, "no name twice");
    c.clunk(ls);
    // Rename (by fid and by name), unlinkat of a file and a directory, remove.
    c.ok(&Tmsg::Renameat {
        olddir: d,
        oldname: b"hard".to_vec(),
        newdir: many,
        newname: b"moved".to_vec(),
    });
    let (moved, _) = c.walk(root, "dir/moved").expect("renamed");
    c.ok(&Tmsg::Rename {
        fid: moved,
        dfid: d,
        name: b"back".to_vec(),
    });
    c.walk(root, "back").expect("renamed back");
    c.ok(&Tmsg::Unlinkat {
        dfid: d,
        name: b"back".to_vec(),
        flags: 0,
    });
    assert_eq!(
        c.err(&Tmsg::Unlinkat {
            dfid: d,
            name: b"dir".to_vec(),
            flags: 0x200,
        }),
        libc::ENOTEMPTY
    );
    let (fifo, _) = c.walk(root, "fifo").expect("walk");
    c.ok(&Tmsg::Remove { fid: fifo });
    assert_eq!(c.walk(root, "fifo"), Err(libc::ENOENT));
    // Extended attributes: create, read, list, remove.
    let (x, _) = c.walk(root, "data").expect("walk");
    c.ok(&Tmsg::Xattrcreate {
        fid: x,
        name: b"user.color".to_vec(),
        size: 4,
        flags: 0,
    });
    c.write_all(x, 0, b"blue");
    c.clunk(x);
    let xr = c.fid();
    assert_eq!(
        c.ok(&Tmsg::Xattrwalk {
            fid: data_fid,
            newfid: xr,
            name: b"user.color".to_vec(),
        }),
        Rmsg::Xattrwalk(4)
    );
    assert_eq!(c.read_all(xr), b"blue");
    c.clunk(xr);
    let xl = c.fid();
    c.ok(&Tmsg::Xattrwalk {
        fid: data_fid,
        newfid: xl,
        name: Vec::new(),
    });
    assert_eq!(c.read_all(xl), b"user.color\0");
    c.clunk(xl);
    let (x, _) = c.walk(root, "data").expect("walk");
    c.ok(&Tmsg::Xattrcreate {
        fid: x,
        name: b"user.color".to_vec(),
        size: 0,
        flags: 2, // XATTR_REPLACE: how Linux sends removexattr
    });
    c.clunk(x);
    let gone = c.fid();
    assert_eq!(
        c.err(&Tmsg::Xattrwalk {
            fid: data_fid,
            newfid: gone,
            name: b"user.color".to_vec(),
        }),
        libc::ENODATA
    );
    let (x, _) = c.walk(root, "data").expect("walk");
    assert_eq!(
        c.err(&Tmsg::Xattrcreate {
            fid: x,
            name: b"user.big".to_vec(),
            size: 1 << 20,
            flags: 0,
        }),
        libc::E2BIG
    );
    // statfs.
    let Rmsg::Statfs(sf) = c.ok(&Tmsg::Statfs { fid: root }) else {
        panic!()
    };
    assert_eq!((sf.kind, sf.namelen), (0x0102_1997, 255));
    // Permissions follow the attaching user: uid 4242 cannot write root's 0755 root.
    let (user_root, _) = c.attach("ops", 4242).expect("attach as a user");
    let (u, _) = c.walk(user_root, "").expect("clone");
    assert_eq!(c.create(u, "nope", 0o644), Err(libc::EACCES));
    let (ud, _) = c.walk(user_root, "data").expect("walk");
    assert_eq!(
        c.err(&Tmsg::Lopen {
            fid: ud,
            flags: O_RDONLY,
        }),
        libc::EACCES,
        "mode 0600, owned by root"
    );
    // What was walked to and closed did leave memory on the way.
    hydra_tests::eventually("the server unloaded inodes", || {
        let status: serde_json::Value =
            serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
        status[0]["unloads"].as_u64().expect("unloads") > 0
    });
    srv.stop();
    // Committed on stop: the CLI sees the result.
    assert_eq!(s.ok(&["fs", "cat", "ops", "/data"]).as_bytes(), &data[..10]);
}

#[test]
fn locks_conflict_across_connections_and_go_with_them() {
    let s = TestStore::new();
    let srv = Served::serve(&s, "l", &[]);
    let mut a = srv.client();
    let mut b = srv.client();
    let (ra, _) = a.attach("l", 0).expect("attach");
    let (fa, _) = a.walk(ra, "").expect("clone");
    a.create(fa, "f", 0o644).expect("create");
    let (rb, _) = b.attach("l", 0).expect("attach");
    let (fb, _) = b.walk(rb, "f").expect("walk");
    b.ok(&Tmsg::Lopen {
        fid: fb,
        flags: O_RDWR,
    });
    let req = |kind, start, length, proc_id| wire::Flock {
        kind,
        flags: 0,
        start,
        length,
        proc_id,
        client_id: b"host".to_vec(),
    };
    assert_eq!(
        a.ok(&Tmsg::Lock {
            fid: fa,
            lock: req(lock::WRLCK, 0, 100, 1),
        }),
        Rmsg::Lock(lock::SUCCESS)
    );
    assert_eq!(
        b.ok(&Tmsg::Lock {
            fid: fb,
            lock: req(lock::RDLCK, 50, 10, 2),
        }),
        Rmsg::Lock(lock::BLOCKED)
    );
    match b.ok(&Tmsg::Getlock {
        fid: fb,
        lock: req(lock::RDLCK, 0, 0, 2),
    }) {
        Rmsg::Getlock(l) => assert_eq!(
            (l.kind, l.start, l.length, l.proc_id),
            (lock::WRLCK, 0, 100, 1)
        ),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        b.ok(&Tmsg::Lock {
            fid: fb,
            lock: req(lock::WRLCK, 100, 0, 2),
        }),
        Rmsg::Lock(lock::SUCCESS),
        "beyond the held range"
    );
    srv.wait_stats("two locks", |s| s["locks"] == 2);
    // A client that vanishes mid-write leaves no fid, lock or request behind.
    let half = wire::encode_t(
        9,
        &Tmsg::Write {
            fid: fa,
            offset: 0,
            data: Bytes::from(vec![7u8; 200_000]),
        },
    );
    a.send_raw(&half[..100_000]);
    drop(a);
    srv.wait_stats("the first client's state released", |s| {
        s["locks"] == 1 && s["connections"] == 1
    });
    assert_eq!(
        b.ok(&Tmsg::Lock {
            fid: fb,
            lock: req(lock::WRLCK, 0, 100, 2),
        }),
        Rmsg::Lock(lock::SUCCESS),
        "the dead client's lock is gone"
    );
    let held_by_b = srv.stats()["fids"].as_u64().expect("fids");
    assert_eq!(held_by_b, 2, "only the live client's fids remain");
    drop(b);
    srv.wait_stats("everything released", |s| {
        s["locks"] == 0 && s["fids"] == 0 && s["connections"] == 0
    });
    srv.stop();
}

#[test]
fn concurrent_tags_flush_and_bad_frames() {
    let s = TestStore::new();
    let srv = Served::serve(&s, "c", &[]);
    let mut c = srv.client();
    let (root, _) = c.attach("c", 0).expect("attach");
    let (f, _) = c.walk(root, "").expect("clone");
    c.create(f, "big", 0o644).expect("create");
    let data = vec![0x5au8; 8 << 20];
    c.write_all(f, 0, &data);
    // 32 reads in flight on one connection, answered in any order.
    let mut tags = std::collections::HashMap::new();
    for i in 0..32u64 {
        let t = c.send(&Tmsg::Read {
            fid: f,
            offset: i * 262_144,
            count: 262_144,
        });
        tags.insert(t, i);
    }
    // A flush of a request that is done or unknown is answered at once.
    let flush = c.send(&Tmsg::Flush { oldtag: 0x7777 });
    let mut flushed = false;
    while !tags.is_empty() || !flushed {
        let (tag, r) = c.recv().expect("reply");
        if tag == flush {
            assert_eq!(r, Rmsg::Flush);
            flushed = true;
            continue;
        }
        assert!(tags.remove(&tag).is_some(), "a reply to each tag once");
        let Rmsg::Read(d) = r else { panic!("{r:?}") };
        assert_eq!(d.len(), 262_144);
    }
    // A frame whose body does not decode is an error; the connection lives.
    let mut bad = wire::encode_t(5, &Tmsg::Clunk { fid: 1 });
    bad.push(0);
    bad[0] += 1;
    c.send_raw(&bad);
    assert_eq!(c.recv(), Some((5, Rmsg::Lerror(libc::EINVAL as u32))));
    // An unknown message type (9P2000's Topen) is unsupported.
    c.send_raw(&[11, 0, 0, 0, 112, 6, 0, 1, 0, 0, 0]);
    assert_eq!(c.recv(), Some((6, Rmsg::Lerror(libc::EOPNOTSUPP as u32))));
    c.ok(&Tmsg::Getattr {
        fid: root,
        mask: 0x7ff,
    });
    // A frame larger than msize closes the connection.
    let mut huge = Vec::new();
    huge.extend_from_slice(&((2u32 << 20) + 100).to_le_bytes());
    huge.extend_from_slice(&[118, 1, 0]);
    c.send_raw(&huge);
    assert_eq!(c.recv(), None, "closed");
    // The server still serves others.
    let mut d = srv.client();
    d.attach("c", 0).expect("attach");
    srv.stop();
}

#[test]
fn read_only_export_refuses_every_change() {
    let s = TestStore::new();
    let srv = Served::serve(&s, "ro", &[]);
    let mut c = srv.client();
    let (root, _) = c.attach("ro", 0).expect("attach");
    let (f, _) = c.walk(root, "").expect("clone");
    c.create(f, "file", 0o644).expect("create");
    c.write_all(f, 0, b"content");
    c.clunk(f);
    drop(c);
    srv.stop();
    let srv = Served::serve(&s, "ro", &["--read-only"]);
    let mut c = srv.client();
    let (root, _) = c.attach("ro", 0).expect("attach");
    let (f, _) = c.walk(root, "file").expect("walk");
    let erofs = libc::EROFS;
    assert_eq!(
        c.err(&Tmsg::Lopen {
            fid: f,
            flags: O_WRONLY,
        }),
        erofs
    );
    let (d, _) = c.walk(root, "").expect("clone");
    assert_eq!(c.create(d, "new", 0o644), Err(erofs));
    for msg in [
        Tmsg::Mkdir {
            dfid: root,
            name: b"d".to_vec(),
            mode: 0o755,
            gid: 0,
        },
        Tmsg::Symlink {
            fid: root,
            name: b"s".to_vec(),
            target: b"file".to_vec(),
            gid: 0,
        },
        Tmsg::Mknod {
            dfid: root,
            name: b"p".to_vec(),
            mode: libc::S_IFIFO | 0o644,
            major: 0,
            minor: 0,
            gid: 0,
        },
        Tmsg::Link {
            dfid: root,
            fid: f,
            name: b"l".to_vec(),
        },
        Tmsg::Renameat {
            olddir: root,
            oldname: b"file".to_vec(),
            newdir: root,
            newname: b"other".to_vec(),
        },
        Tmsg::Unlinkat {
            dfid: root,
            name: b"file".to_vec(),
            flags: 0,
        },
        Tmsg::Setattr {
            fid: f,
            set: SetattrArgs {
                valid: setattr::SIZE,
                ..SetattrArgs::default()
            },
        },
        Tmsg::Xattrcreate {
            fid: f,
            name: b"user.x".to_vec(),
            size: 1,
            flags: 0,
        },
    ] {
        assert_eq!(c.err(&msg), erofs, "{msg:?}");
    }
    let (f2, _) = c.walk(root, "file").expect("walk");
    c.ok(&Tmsg::Lopen {
        fid: f2,
        flags: O_RDONLY,
    });
    assert_eq!(c.read_all(f2), b"content");
    srv.stop();
}

#[test]
fn allow_list_and_connection_limit() {
    let s = TestStore::new();
    // Listening on every address, admitting only a range loopback is not in.
    let port = free_port();
    let listen = format!("tcp:0.0.0.0:{port}");
    s.ok(&["serve", "a", "--listen", &listen, "--allow", "10.99.0.0/16"]);
    let mut refused = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = refused.write_all(&wire::encode_t(
        wire::NOTAG,
        &Tmsg::Version {
            msize: 8192,
            version: b"9P2000.L".to_vec(),
        },
    ));
    let mut buf = [0u8; 16];
    assert_eq!(refused.read(&mut buf).unwrap_or(0), 0, "closed unanswered");
    s.ok(&["umount", &listen]);
    // Four connections at most: a fifth is closed, the four keep working,
    // and a freed slot admits again.
    let srv = Served::serve(&s, "a", &["--max-connections", "4"]);
    let mut four: Vec<Client> = (0..4).map(|_| srv.client()).collect();
    srv.wait_stats("four connections", |s| s["connections"] == 4);
    let mut fifth = TcpStream::connect(&srv.addr).expect("connect");
    fifth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = fifth.write_all(&wire::encode_t(
        wire::NOTAG,
        &Tmsg::Version {
            msize: 8192,
            version: b"9P2000.L".to_vec(),
        },
    ));
    assert_eq!(fifth.read(&mut buf).unwrap_or(0), 0, "over the limit");
    for c in &mut four {
        c.attach("a", 0).expect("still served");
    }
    four.pop();
    srv.wait_stats("three connections", |s| s["connections"] == 3);
    let mut again = srv.client();
    again.attach("a", 0).expect("a freed slot admits");
    srv.stop();
}

#[test]
fn fuse_and_9p_see_each_others_writes_at_once() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let srv = Served::mount(&s, "both", &point);
    std::fs::write(point.join("from-fuse"), b"written through FUSE").expect("write");
    let mut c = srv.client();
    let (root, _) = c.attach("both", 0).expect("attach");
    let (f, _) = c.walk(root, "from-fuse").expect("visible over 9P");
    c.ok(&Tmsg::Lopen {
        fid: f,
        flags: O_RDONLY,
    });
    assert_eq!(c.read_all(f), b"written through FUSE");
    // FUSE has the file's attributes cached; a 9P write must still show.
    assert_eq!(
        std::fs::read(point.join("from-fuse")).expect("read"),
        b"written through FUSE"
    );
    let (w, _) = c.walk(root, "from-fuse").expect("walk");
    c.ok(&Tmsg::Lopen {
        fid: w,
        flags: O_WRONLY,
    });
    c.write_all(w, 20, b", then appended over 9P");
    assert_eq!(
        std::fs::read_to_string(point.join("from-fuse")).expect("read"),
        "written through FUSE, then appended over 9P"
    );
    // Bytes the kernel holds, changed in place (same size, same second):
    // its cached pages must go.
    c.write_all(w, 0, b"WRITTEN");
    c.clunk(w);
    assert_eq!(
        std::fs::read_to_string(point.join("from-fuse")).expect("read"),
        "WRITTEN through FUSE, then appended over 9P"
    );
    // Opened with O_TRUNC over 9P and closed: empty through FUSE at once.
    let (t, _) = c.walk(root, "from-fuse").expect("walk");
    c.ok(&Tmsg::Lopen {
        fid: t,
        flags: O_WRONLY | libc::O_TRUNC as u32,
    });
    c.clunk(t);
    assert_eq!(
        std::fs::read(point.join("from-fuse")).expect("read"),
        b"",
        "FUSE still shows what 9P truncated"
    );
    // FUSE lists the root (and the kernel keeps the listing); names 9P
    // adds and renames show in the next listing at once.
    let listing = || hydra_tests::names_in(&point);
    assert_eq!(listing(), ["from-fuse"]);
    let (d, _) = c.walk(root, "").expect("clone");
    c.create(d, "from-9p", 0o644).expect("create");
    c.write_all(d, 0, b"9p");
    c.clunk(d);
    assert_eq!(
        listing(),
        ["from-9p", "from-fuse"],
        "FUSE listed a stale root"
    );
    assert_eq!(std::fs::read(point.join("from-9p")).expect("read"), b"9p");
    // A rename over 9P is seen by FUSE at once (its entry cache dropped).
    assert!(point.join("from-9p").exists());
    c.ok(&Tmsg::Renameat {
        olddir: root,
        oldname: b"from-9p".to_vec(),
        newdir: root,
        newname: b"renamed".to_vec(),
    });
    assert!(!point.join("from-9p").exists());
    assert_eq!(std::fs::read(point.join("renamed")).expect("read"), b"9p");
    assert_eq!(listing(), ["from-fuse", "renamed"]);
    // Link counts FUSE holds follow 9P's links, unlinks and renames over a
    // name at once.
    use std::os::unix::fs::MetadataExt;
    let nlink = |name: &str| std::fs::metadata(point.join(name)).expect("stat").nlink();
    assert_eq!(nlink("renamed"), 1);
    let (target, _) = c.walk(root, "renamed").expect("walk");
    c.ok(&Tmsg::Link {
        dfid: root,
        fid: target,
        name: b"second".to_vec(),
    });
    assert_eq!(nlink("renamed"), 2, "FUSE missed a 9P link");
    c.ok(&Tmsg::Unlinkat {
        dfid: root,
        name: b"second".to_vec(),
        flags: 0,
    });
    assert_eq!(nlink("renamed"), 1, "FUSE missed a 9P unlink");
    c.ok(&Tmsg::Link {
        dfid: root,
        fid: target,
        name: b"third".to_vec(),
    });
    assert_eq!(nlink("third"), 2);
    c.clunk(target);
    std::fs::write(point.join("other"), b"other").expect("write");
    c.ok(&Tmsg::Renameat {
        olddir: root,
        oldname: b"other".to_vec(),
        newdir: root,
        newname: b"third".to_vec(),
    });
    assert_eq!(nlink("renamed"), 1, "FUSE missed a rename over a link");
    assert_eq!(std::fs::read(point.join("third")).expect("read"), b"other");
    let status = s.ok(&["status"]);
    assert!(status.contains("9p tcp:"), "{status}");
    drop(c);
    srv.stop();
}

#[test]
fn diod_tools_list_and_read() {
    for tool in ["diodls", "diodcat"] {
        assert!(
            Command::new(tool).arg("--help").output().is_ok(),
            "{tool} missing: scripts/test.sh installs diod"
        );
    }
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let srv = Served::mount(&s, "d", &point);
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    sh(
        &format!(
            "mkdir -p {p}/sub && echo hello > {p}/sub/hello.txt && head -c 5000000 /dev/urandom > {p}/big",
            p = point.display()
        ),
        &work,
    );
    let ls = Command::new("diodls")
        .args(["-s", &srv.addr, "-a", "d", "-l", "/sub"])
        .output()
        .expect("diodls");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(text.contains("hello.txt") && text.contains(" 6 "), "{text}");
    for msize in ["65536", "1048576"] {
        let cat = Command::new("diodcat")
            .args(["-s", &srv.addr, "-a", "d", "-m", msize, "/big"])
            .output()
            .expect("diodcat");
        assert!(cat.status.success());
        assert_eq!(cat.stdout, std::fs::read(point.join("big")).expect("read"));
    }
    srv.stop();
}

#[test]
fn unix_socket_and_snapshot_attach() {
    use std::os::unix::net::UnixStream;
    let s = TestStore::new();
    let sock = s.scratch("9p.sock");
    let listen = format!("unix:{}", sock.display());
    let tcp = format!("tcp:127.0.0.1:{}", free_port());
    s.ok(&["serve", "u", "--listen", &listen, "--listen", &tcp]);
    // A version handshake over the unix socket.
    let mut u = UnixStream::connect(&sock).expect("connect to the unix socket");
    u.write_all(&wire::encode_t(
        wire::NOTAG,
        &Tmsg::Version {
            msize: 65536,
            version: b"9P2000.L".to_vec(),
        },
    ))
    .expect("send");
    let mut head = [0u8; 4];
    u.read_exact(&mut head).expect("reply");
    let mut frame = head.to_vec();
    frame.resize(u32::from_le_bytes(head) as usize, 0);
    u.read_exact(&mut frame[4..]).expect("reply");
    assert_eq!(
        wire::decode_r(&frame).expect("decodes").1,
        Rmsg::Version {
            msize: 65536,
            version: b"9P2000.L".to_vec()
        }
    );
    drop(u);
    // Write a file over TCP, stop (commit), note the snapshot id.
    let addr = tcp.trim_start_matches("tcp:").to_string();
    let mut c = Client::connect(&addr, 1 << 20).expect("connect");
    let (root, _) = c.attach("u", 0).expect("attach");
    let (f, _) = c.walk(root, "").expect("clone");
    c.create(f, "kept", 0o644).expect("create");
    c.write_all(f, 0, b"first version");
    c.clunk(f);
    drop(c);
    s.ok(&["umount", &tcp]);
    assert!(!sock.exists(), "the socket file goes with the server");
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "fs", "log", "u"])).expect("json");
    let id = log[0]["id"].as_u64().expect("changelog id");
    let srv = Served::serve(&s, "u", &[]);
    let mut c = srv.client();
    let (root, _) = c.attach("u", 0).expect("attach");
    c.ok(&Tmsg::Unlinkat {
        dfid: root,
        name: b"kept".to_vec(),
        flags: 0,
    });
    // The snapshot still has the file, and refuses changes.
    let (snap, _) = c
        .attach(&format!("u@{id}"), 0)
        .expect("attach the snapshot");
    let (f, _) = c.walk(snap, "kept").expect("in the snapshot");
    c.ok(&Tmsg::Lopen {
        fid: f,
        flags: O_RDONLY,
    });
    assert_eq!(c.read_all(f), b"first version");
    assert_eq!(
        c.err(&Tmsg::Mkdir {
            dfid: snap,
            name: b"x".to_vec(),
            mode: 0o755,
            gid: 0,
        }),
        libc::EROFS
    );
    assert_eq!(
        c.walk(root, "kept"),
        Err(libc::ENOENT),
        "gone from the live fs"
    );
    srv.stop();
}
