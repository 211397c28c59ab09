//! A small synchronous 9P2000.L client for protocol-level tests, on the
//! server's own codec (the kernel client and diod's tools check the codec
//! against independent implementations).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use hydra_mountd::ninep::wire::{self, NOFID, Qid, Rmsg, Tmsg};

/// A message's debug form, cut short (writes carry megabytes).
fn short(m: &impl std::fmt::Debug) -> String {
    let mut s = format!("{m:?}");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// One connection.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    next_tag: u16,
    next_fid: u32,
    /// The negotiated msize.
    pub msize: u32,
}

/// `O_RDONLY` etc. for Tlopen and Tlcreate.
pub const O_RDONLY: u32 = 0;
/// Write only.
pub const O_WRONLY: u32 = 1;
/// Read and write.
pub const O_RDWR: u32 = 2;

impl Client {
    /// Connects and negotiates `msize`.
    pub fn connect(addr: &str, msize: u32) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            next_tag: 1,
            next_fid: 1,
            msize,
        };
        match c.rpc(&Tmsg::Version {
            msize,
            version: b"9P2000.L".to_vec(),
        }) {
            Rmsg::Version { msize, version } => {
                assert_eq!(version, b"9P2000.L");
                c.msize = msize;
            }
            other => panic!("Tversion answered {other:?}"),
        }
        Ok(c)
    }

    /// A fresh fid number.
    pub fn fid(&mut self) -> u32 {
        self.next_fid += 1;
        self.next_fid
    }

    /// Sends a request without waiting; returns its tag.
    pub fn send(&mut self, msg: &Tmsg) -> u16 {
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1) % 0xfff0;
        self.send_raw(&wire::encode_t(tag, msg));
        tag
    }

    /// Writes raw bytes to the socket.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one reply frame; `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<(u16, Rmsg)> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let n = u32::from_le_bytes(size) as usize;
        let mut frame = vec![0u8; n];
        frame[..4].copy_from_slice(&size);
        self.stream.read_exact(&mut frame[4..]).ok()?;
        Some(wire::decode_r(&frame).expect("reply decodes"))
    }

    /// Sends a request and waits for its reply.
    pub fn rpc(&mut self, msg: &Tmsg) -> Rmsg {
        let tag = self.send(msg);
        let (got, reply) = self.recv().expect("connection closed");
        assert_eq!(got, tag, "reply to another tag");
        reply
    }

    /// Sends a request that must succeed.
    pub fn ok(&mut self, msg: &Tmsg) -> Rmsg {
        match self.rpc(msg) {
            Rmsg::Lerror(e) => panic!("{} failed with errno {e}", short(msg)),
            r => r,
        }
    }

    /// Sends a request that must fail; returns the errno.
    pub fn err(&mut self, msg: &Tmsg) -> i32 {
        match self.rpc(msg) {
            Rmsg::Lerror(e) => e as i32,
            r => panic!("{} should fail, got {}", short(msg), short(&r)),
        }
    }

    /// Attaches a new fid to `aname` as uid `uid`.
    pub fn attach(&mut self, aname: &str, uid: u32) -> Result<(u32, Qid), i32> {
        let fid = self.fid();
        match self.rpc(&Tmsg::Attach {
            fid,
            afid: NOFID,
            uname: Vec::new(),
            aname: aname.as_bytes().to_vec(),
            n_uname: uid,
        }) {
            Rmsg::Attach(q) => Ok((fid, q)),
            Rmsg::Lerror(e) => Err(e as i32),
            r => panic!("Tattach answered {r:?}"),
        }
    }

    /// Walks `path` (slash-separated) from `fid` to a new fid.
    pub fn walk(&mut self, fid: u32, path: &str) -> Result<(u32, Vec<Qid>), i32> {
        let newfid = self.fid();
        let names = path
            .split('/')
            .filter(|n| !n.is_empty())
            .map(|n| n.as_bytes().to_vec())
            .collect();
        match self.rpc(&Tmsg::Walk { fid, newfid, names }) {
            Rmsg::Walk(q) => Ok((newfid, q)),
            Rmsg::Lerror(e) => Err(e as i32),
            r => panic!("Twalk answered {r:?}"),
        }
    }

    /// Creates `name` in directory fid `dir` (which becomes the open file).
    pub fn create(&mut self, dir: u32, name: &str, mode: u32) -> Result<Qid, i32> {
        match self.rpc(&Tmsg::Lcreate {
            fid: dir,
            name: name.as_bytes().to_vec(),
            flags: O_RDWR,
            mode,
            gid: 0,
        }) {
            Rmsg::Lcreate(q, _) => Ok(q),
            Rmsg::Lerror(e) => Err(e as i32),
            r => panic!("Tlcreate answered {r:?}"),
        }
    }

    /// Writes all of `data` at `offset` in chunks that fit msize.
    pub fn write_all(&mut self, fid: u32, mut offset: u64, data: &[u8]) {
        let max = self.msize as usize - wire::IOHDR;
        for chunk in data.chunks(max) {
            match self.ok(&Tmsg::Write {
                fid,
                offset,
                data: Bytes::copy_from_slice(chunk),
            }) {
                Rmsg::Write(n) => assert_eq!(n as usize, chunk.len()),
                r => panic!("Twrite answered {r:?}"),
            }
            offset += chunk.len() as u64;
        }
    }

    /// One Tread whose data lands in `buf` (reused: no allocation or
    /// decoding copy per read, so a benchmark measures the server).
    /// Returns the bytes read; panics on an error reply.
    pub fn read_into(&mut self, fid: u32, offset: u64, buf: &mut Vec<u8>) -> usize {
        let count = self.msize - wire::IOHDR as u32;
        let tag = self.send(&Tmsg::Read { fid, offset, count });
        let mut head = [0u8; 7];
        self.stream.read_exact(&mut head).expect("reply");
        let size = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        assert_eq!(u16::from_le_bytes([head[5], head[6]]), tag);
        if head[4] != 117 {
            let mut rest = vec![0u8; size - 7];
            self.stream.read_exact(&mut rest).expect("reply");
            panic!("Tread answered type {} {rest:?}", head[4]);
        }
        let mut n = [0u8; 4];
        self.stream.read_exact(&mut n).expect("reply");
        let n = u32::from_le_bytes(n) as usize;
        buf.resize(n.max(buf.len()), 0);
        self.stream.read_exact(&mut buf[..n]).expect("reply");
        n
    }

    /// One Twrite sent straight from `data` (no frame copy); returns the
    /// count the server wrote.
    pub fn write_from(&mut self, fid: u32, offset: u64, data: &[u8]) -> u32 {
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1) % 0xfff0;
        let mut head = Vec::with_capacity(23);
        head.extend_from_slice(&((23 + data.len()) as u32).to_le_bytes());
        head.push(118);
        head.extend_from_slice(&tag.to_le_bytes());
        head.extend_from_slice(&fid.to_le_bytes());
        head.extend_from_slice(&offset.to_le_bytes());
        head.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.stream.write_all(&head).expect("send");
        self.stream.write_all(data).expect("send");
        match self.recv().expect("reply") {
            (t, Rmsg::Write(n)) if t == tag => n,
            (_, r) => panic!("Twrite answered {}", short(&r)),
        }
    }

    /// Reads everything from `offset` to the end.
    pub fn read_all(&mut self, fid: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let count = self.msize - wire::IOHDR as u32;
            match self.ok(&Tmsg::Read {
                fid,
                offset: out.len() as u64,
                count,
            }) {
                Rmsg::Read(d) if d.is_empty() => return out,
                Rmsg::Read(d) => out.extend_from_slice(&d),
                r => panic!("Tread answered {r:?}"),
            }
        }
    }

    /// Every entry name of an open directory fid, paging with `count`.
    pub fn list(&mut self, fid: u32, count: u32) -> Vec<String> {
        let mut names = Vec::new();
        let mut offset = 0;
        loop {
            let Rmsg::Readdir(data) = self.ok(&Tmsg::Readdir { fid, offset, count }) else {
                panic!("Treaddir");
            };
            let entries = wire::parse_dirents(&data).expect("dirents");
            let Some(last) = entries.last() else {
                return names;
            };
            offset = last.offset;
            names.extend(
                entries
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.name).into_owned()),
            );
        }
    }

    /// Clunks a fid.
    pub fn clunk(&mut self, fid: u32) {
        self.ok(&Tmsg::Clunk { fid });
    }
}
