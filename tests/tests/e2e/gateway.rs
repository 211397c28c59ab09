//! `hydra gateway` over real HTTP/1.1 on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hydra_tests::{TestStore, last_line, sh};

/// A gateway process, stopped on drop.
struct Running(Child, u16);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn start(s: &TestStore, extra: &[&str]) -> Running {
    let port = free_port();
    let child = s
        .cmd()
        .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    Running(child, port)
}

/// One response: status, lower-cased headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes()).expect("send");
    conn.write_all(body).expect("send body");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).expect("hex").trim(), 16)
                    .expect("size");
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[], b"")
}

#[test]
fn files_blocks_and_key_values_over_http() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    sh(
        "mkdir -p src/docs && seq 1 100000 > src/numbers.txt && echo '{\"a\":1}' > src/docs/x.json \
         && python3 -c 'import random, sys; random.seed(7); sys.stdout.buffer.write(random.randbytes(3000000))' > src/big.bin \
         && echo old > src/v.txt",
        &work,
    );
    s.ok(&[
        "import",
        "dir",
        work.join("src").to_str().expect("utf-8"),
        "--fs",
        "site",
    ]);
    let first_commit = s.ok(&["--json", "ref", "log", "fs/site"]);
    let first: serde_json::Value = serde_json::from_str(&first_commit).expect("json");
    let first_id = first[0]["id"].as_u64().expect("id").to_string();
    s.ok(&[
        "fs",
        "put",
        "site",
        work.join("src/numbers.txt").to_str().expect("utf-8"),
        "/v.txt",
    ]);
    s.ok(&["kv", "cfg", "put", "colour", "blue"]);
    let root = last_line(&s.ok(&["ref", "get", "fs/site"])).to_string();
    let token = "an-access-token-of-some-length";
    let token_file = s.scratch("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    let numbers = std::fs::read(work.join("src/numbers.txt")).expect("read");
    let big = std::fs::read(work.join("src/big.bin")).expect("read");

    let gw = start(&s, &["--token-file", token_file.to_str().expect("utf-8")]);
    let p = gw.1;
    assert_eq!(get(p, "/healthz").body, b"ok\n");

    // Files, with types, validators and ranges.
    let r = get(p, "/fs/site/numbers.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, numbers.as_slice()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let etag = r.header("etag").expect("etag").to_string();
    assert!(
        etag.starts_with("\"bafkr4") || etag.starts_with("\"bafyr4"),
        "{etag}"
    );
    assert_eq!(
        get(p, "/fs/site/docs/x.json").header("content-type"),
        Some("application/json")
    );
    assert_eq!(
        request(
            p,
            "GET",
            "/fs/site/numbers.txt",
            &[("If-None-Match", &etag)],
            b""
        )
        .status,
        304
    );
    let r = request(
        p,
        "GET",
        "/fs/site/big.bin",
        &[("Range", "bytes=1000-1999")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[1000..2000]);
    assert_eq!(
        r.header("content-range"),
        Some(&*format!("bytes 1000-1999/{}", big.len()))
    );
    let r = request(p, "GET", "/fs/site/big.bin", &[("Range", "bytes=-10")], b"");
    assert_eq!((r.status, r.body.as_slice()), (206, &big[big.len() - 10..]));
    let r = request(
        p,
        "GET",
        "/fs/site/big.bin",
        &[("Range", "bytes=9999999-")],
        b"",
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(&*format!("bytes */{}", big.len()))
    );
    let r = request(
        p,
        "GET",
        "/fs/site/big.bin",
        &[("Range", "bytes=0-1,5-6")],
        b"",
    );
    assert_eq!(
        (r.status, r.body.len()),
        (200, big.len()),
        "several ranges: the whole"
    );
    // A past version.
    let r = get(p, &format!("/fs/site/v.txt?at={first_id}"));
    assert_eq!(r.body, b"old\n");
    assert_eq!(get(p, "/fs/site/v.txt").body, numbers);

    // Listings: JSON, or HTML for a browser.
    let r = get(p, "/fs/site/");
    let listing: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["big.bin", "docs", "numbers.txt", "v.txt"]);
    let r = request(p, "GET", "/fs/site/docs", &[("Accept", "text/html")], b"");
    let html = String::from_utf8_lossy(&r.body);
    assert!(
        html.contains("<a href=\"/fs/site/docs/x.json\">x.json</a>"),
        "{html}"
    );

    // Paths never leave the filesystem.
    for bad in [
        "/fs/site/docs/../numbers.txt",
        "/fs/site/docs/%2e%2e/numbers.txt",
        "/fs/site/docs%2Fx.json",
        "/fs/site/x%00",
    ] {
        assert_eq!(get(p, bad).status, 400, "{bad}");
    }
    assert_eq!(
        get(p, &format!("/fs/site/{}", "a/".repeat(3000))).status,
        414
    );
    assert_eq!(get(p, "/fs/site/no/such").status, 404);
    assert_eq!(get(p, "/fs/nosuch/x").status, 404);

    // Writes need the token.
    assert_eq!(
        request(p, "PUT", "/fs/site/up/new.txt", &[], b"hello").status,
        401
    );
    let wrong = [("Authorization", "Bearer wrong-token-of-some-length")];
    assert_eq!(
        request(p, "PUT", "/fs/site/up/new.txt", &wrong, b"hello").status,
        401
    );
    let auth = format!("Bearer {token}");
    let ok = [("Authorization", auth.as_str())];
    assert_eq!(
        request(p, "PUT", "/fs/site/up/new.txt", &ok, &big).status,
        201
    );
    assert_eq!(get(p, "/fs/site/up/new.txt").body, big);
    assert_eq!(
        request(p, "DELETE", "/fs/site/up/new.txt", &ok, b"").status,
        204
    );
    assert_eq!(get(p, "/fs/site/up/new.txt").status, 404);
    // A small file served twice (the second time from the small-file
    // cache), then replaced: the new bytes, ranges and tags are served.
    for body in [&b"first version"[..], b"second, longer version"] {
        assert_eq!(
            request(p, "PUT", "/fs/site/up/small.txt", &ok, body).status,
            201
        );
        for _ in 0..2 {
            let r = get(p, "/fs/site/up/small.txt");
            assert_eq!(r.body, body);
            let tag = r.header("etag").expect("etag").to_string();
            let again = request(
                p,
                "GET",
                "/fs/site/up/small.txt",
                &[("If-None-Match", &tag)],
                b"",
            );
            assert_eq!(again.status, 304);
            let part = request(
                p,
                "GET",
                "/fs/site/up/small.txt",
                &[("Range", "bytes=-7")],
                b"",
            );
            assert_eq!(
                (part.status, &part.body[..]),
                (206, &body[body.len() - 7..])
            );
        }
    }

    // Blocks and DAGs by CID.
    let r = get(p, &format!("/ipfs/{root}?format=raw"));
    assert_eq!(r.header("content-type"), Some("application/vnd.ipld.raw"));
    let r = request(
        p,
        "GET",
        &format!("/ipfs/{root}"),
        &[("Accept", "application/vnd.ipld.car")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.ipld.car; version=1; order=dfs; dups=n")
    );
    assert_eq!(r.header("x-ipfs-roots"), Some(root.as_str()));
    let all = car_blocks(&r.body);
    assert!(all > 1, "{all} blocks");
    let car = s.scratch("site.car");
    std::fs::write(&car, &r.body).expect("write car");
    // Trustless-gateway parameters: the root block alone, by query or by
    // the Accept header's parameters; what is not served is refused.
    let one = get(p, &format!("/ipfs/{root}?format=car&dag-scope=block"));
    assert_eq!((one.status, car_blocks(&one.body)), (200, 1));
    let same = get(
        p,
        &format!("/ipfs/{root}?format=car&dag-scope=all&car-dups=n&car-order=dfs"),
    );
    assert_eq!(car_blocks(&same.body), all);
    let accepted = request(
        p,
        "GET",
        &format!("/ipfs/{root}?dag-scope=block"),
        &[(
            "Accept",
            "application/vnd.ipld.car; version=1; order=dfs; dups=n",
        )],
        b"",
    );
    assert_eq!(car_blocks(&accepted.body), 1);
    for bad in [
        "format=car&car-version=2",
        "format=car&dag-scope=most",
        "format=car&car-dups=y",
        "format=car&entity-bytes=ten",
    ] {
        assert_eq!(get(p, &format!("/ipfs/{root}?{bad}")).status, 400, "{bad}");
    }
    // A path's CAR proves it: the blocks from the root to the file, then
    // the file's (or the part entity-bytes names); a store holding only
    // those blocks reads the file back.
    let entity = get(
        p,
        &format!("/ipfs/{root}/big.bin?format=car&dag-scope=entity"),
    );
    let head = get(
        p,
        &format!("/ipfs/{root}/big.bin?format=car&entity-bytes=0:99"),
    );
    let tail = get(
        p,
        &format!("/ipfs/{root}/big.bin?format=car&entity-bytes=-100:*"),
    );
    let just = get(
        p,
        &format!("/ipfs/{root}/big.bin?format=car&dag-scope=block"),
    );
    let whole = car_blocks(&entity.body);
    assert!(whole > 10, "{whole}");
    // The path's blocks, the file's tree nodes down to the range, and its
    // leaves (two where the range crosses a cut): a few, not the file.
    for part in [&head, &tail, &just] {
        let n = car_blocks(&part.body);
        assert!((3..=7).contains(&n) && n * 4 < whole, "{n} of {whole}");
    }
    for (path, want) in [("/big.bin", &big), ("/numbers.txt", &numbers)] {
        let r = get(p, &format!("/ipfs/{root}{path}?format=car"));
        assert_eq!(r.status, 200, "{path}");
        let file = s.scratch("proof.car");
        std::fs::write(&file, &r.body).expect("write");
        let fresh = TestStore::new();
        fresh.ok(&["init"]);
        fresh.ok(&[
            "import",
            "car",
            file.to_str().expect("utf-8"),
            "--ref",
            "fs/proof",
        ]);
        let out = fresh.run(&["fs", "cat", "proof", path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&out.stdout, want, "{path}");
    }
    assert_eq!(
        get(p, &format!("/ipfs/{root}/no/such?format=car")).status,
        404
    );
    let elsewhere = TestStore::new();
    let bytes = elsewhere.scratch("bytes");
    std::fs::write(&bytes, b"stored only elsewhere").expect("write");
    let absent = elsewhere
        .ok(&["block", "put", bytes.to_str().expect("utf-8")])
        .trim()
        .to_string();
    assert_eq!(get(p, &format!("/ipfs/{absent}?format=car")).status, 404);
    let content = etag.trim_matches('"');
    assert_eq!(get(p, &format!("/ipfs/{content}?format=car")).status, 200);
    assert_eq!(get(p, &format!("/ipfs/{content}/x?format=car")).status, 404);
    assert_eq!(
        get(p, &format!("/ipfs/{root}/docs/x.json")).body,
        b"{\"a\":1}\n"
    );
    assert_eq!(get(p, "/ipfs/not-a-cid?format=raw").status, 400);

    // Key/value stores.
    assert_eq!(get(p, "/kv/cfg/colour").body, b"blue");
    assert_eq!(request(p, "PUT", "/kv/cfg/size", &ok, b"large").status, 204);
    let all: serde_json::Value =
        serde_json::from_slice(&get(p, "/kv/cfg?prefix=").body).expect("json");
    assert_eq!(all.as_array().expect("rows").len(), 2);
    let some: serde_json::Value =
        serde_json::from_slice(&get(p, "/kv/cfg?prefix=si").body).expect("json");
    assert_eq!(some[0]["value"], "large");
    assert_eq!(request(p, "DELETE", "/kv/cfg/size", &ok, b"").status, 204);
    assert_eq!(get(p, "/kv/cfg/size").status, 404);
    assert_eq!(request(p, "PUT", "/kv/cfg/x", &[], b"y").status, 401);

    // SQL: read-only without the token, writes with it.
    let create = request(
        p,
        "POST",
        "/sql/db",
        &ok,
        b"CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 'x'), (2, NULL);",
    );
    assert_eq!(
        create.status,
        200,
        "{}",
        String::from_utf8_lossy(&create.body)
    );
    let q = request(p, "POST", "/sql/db", &[], b"SELECT a, b FROM t ORDER BY a");
    let rows: serde_json::Value = serde_json::from_slice(&q.body).expect("json");
    assert_eq!(
        rows[0]["rows"],
        serde_json::json!([{"a": 1, "b": "x"}, {"a": 2, "b": null}])
    );
    let refused = request(p, "POST", "/sql/db", &[], b"INSERT INTO t VALUES (3, 'y')");
    assert_eq!(refused.status, 400);
    let bad = request(p, "POST", "/sql/db", &ok, b"SELECT nope FROM t");
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("no such column"));

    // Ref updates as Server-Sent Events, resumable by Last-Event-ID.
    let watcher = std::thread::spawn(move || {
        let mut conn = TcpStream::connect(("127.0.0.1", p)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        conn.write_all(b"GET /events?ref=fs/* HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("gateway PUT /up/event.txt") {
            let n = conn.read(&mut buf).expect("read events");
            assert!(n > 0, "the event stream ended");
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(request(p, "PUT", "/kv/cfg/ignored", &ok, b"1").status, 204);
    assert_eq!(
        request(p, "PUT", "/fs/site/up/event.txt", &ok, b"e").status,
        201
    );
    let stream = watcher.join().expect("watcher");
    assert!(
        stream.contains("event: ref") && stream.contains("\"ref\":\"fs/site\""),
        "{stream}"
    );
    assert!(!stream.contains("kv/cfg"), "filtered by pattern: {stream}");
    let id: u64 = stream
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("an event id");
    // Resuming from before that event replays it.
    let replay = std::thread::spawn(move || {
        let mut conn = TcpStream::connect(("127.0.0.1", p)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let req = format!(
            "GET /events?ref=fs/site HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {}\r\n\r\n",
            id - 1
        );
        conn.write_all(req.as_bytes()).expect("send");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(&format!("id: {id}")) {
            let n = conn.read(&mut buf).expect("read events");
            assert!(n > 0, "the event stream ended");
            seen.extend_from_slice(&buf[..n]);
        }
    });
    replay.join().expect("replayed");
    let metrics = String::from_utf8_lossy(&get(p, "/metrics").body).into_owned();
    assert!(
        metrics.contains("hydra_gateway_requests_total{endpoint=\"fs\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("hydra_store_blocks "), "{metrics}");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("hydra_block_reads_total") > 0.0);
    assert!(value("hydra_block_writes_total") > 0.0);
    assert!(value("hydra_block_cache_hits_total") > 0.0);
    assert!((0.0..=1.0).contains(&value("hydra_block_cache_hit_ratio")));
    assert!(
        value("hydra_gateway_commit_seconds_count") >= 4.0,
        "PUT, DELETE, kv puts"
    );

    // A client that reads a little of a large file and vanishes leaves
    // the gateway serving.
    {
        let mut conn = TcpStream::connect(("127.0.0.1", p)).expect("connect");
        conn.write_all(b"GET /fs/site/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut some = [0u8; 1000];
        let _ = conn.read(&mut some);
    }
    assert_eq!(get(p, "/healthz").status, 200);
    drop(gw);

    // The CAR holds the whole DAG: another store imports it and serves it.
    let other = TestStore::new();
    other.ok(&[
        "import",
        "car",
        car.to_str().expect("utf-8"),
        "--ref",
        "fs/copy",
    ]);
    assert_eq!(
        other.ok(&["fs", "cat", "copy", "/docs/x.json"]),
        "{\"a\":1}\n"
    );

    // A read-only gateway refuses writes even with the token.
    let ro = start(
        &s,
        &[
            "--read-only",
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(request(ro.1, "PUT", "/fs/site/z", &ok, b"z").status, 403);
    assert_eq!(get(ro.1, "/fs/site/docs/x.json").status, 200);
}

#[test]
fn ref_watch_prints_updates_as_they_happen() {
    let s = TestStore::new();
    s.ok(&["kv", "a", "put", "k", "0"]);
    let mut watch = s
        .cmd()
        .args(["ref", "watch", "kv/*", "-n", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    std::thread::sleep(Duration::from_millis(800));
    s.ok(&["graph", "g", "add", "<urn:a>", "<urn:b>", "<urn:c>"]);
    s.ok(&["kv", "a", "put", "k", "1"]);
    s.ok(&["kv", "b", "put", "k", "2"]);
    let mut out = String::new();
    watch
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(watch.wait().expect("wait").success());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains(" kv/a ") && lines[1].contains(" kv/b "),
        "{out}"
    );
    assert!(!out.contains("graph/g"));
}

/// Runs headless Chromium (the Debian package) with `args`; returns stdout.
fn chromium(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1024,768",
        ])
        .args(args)
        .output()
        .expect("run chromium (the test command installs the Debian package chromium)");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_browser_shows_a_listing_and_a_file() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    sh(
        "mkdir -p src/notes && echo 'hello from hydra' > src/notes/hello.txt && seq 1 50 > src/notes/n.txt",
        &work,
    );
    s.ok(&[
        "import",
        "dir",
        work.join("src").to_str().expect("utf-8"),
        "--fs",
        "web",
    ]);
    let gw = start(&s, &["--read-only"]);
    let listing = format!("http://127.0.0.1:{}/fs/web/notes", gw.1);

    // The listing as the browser builds it: a link per entry.
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom", &listing])).into_owned();
    assert!(dom.contains("<h1>Index of /notes</h1>"), "{dom}");
    assert!(
        dom.contains("<a href=\"/fs/web/notes/hello.txt\">hello.txt</a>"),
        "{dom}"
    );
    // A file the browser fetches shows its bytes.
    let file = format!("http://127.0.0.1:{}/fs/web/notes/hello.txt", gw.1);
    let shown = String::from_utf8_lossy(&chromium(&["--dump-dom", &file])).into_owned();
    assert!(shown.contains("hello from hydra"), "{shown}");

    // A screenshot of the listing, kept beside the build as an artifact.
    let artifacts = hydra_tests::hydra_bin()
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("mkdir artifacts");
    let shot = artifacts.join("gateway-listing.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[&format!("--screenshot={}", shot.display()), &listing]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
}

/// The number of blocks in a CAR v1 body.
fn car_blocks(car: &[u8]) -> usize {
    let varint = |at: &mut usize| {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = car[*at];
            *at += 1;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    };
    let mut at = 0;
    let header = varint(&mut at);
    at += header;
    let mut blocks = 0;
    while at < car.len() {
        let len = varint(&mut at);
        at += len;
        blocks += 1;
    }
    assert_eq!(at, car.len(), "a truncated CAR");
    blocks
}

/// Reads one counter of a Prometheus text exposition.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}")) as u64
}

#[test]
fn a_mount_serves_the_gateway_and_counts_fuse_and_9p_requests() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    std::fs::create_dir_all(&point).expect("mkdir");
    let (port, ninep) = (free_port(), free_port());
    let token = s.scratch("token");
    std::fs::write(&token, "a-token-of-enough-length\n").expect("token");
    s.ok(&[
        "mount",
        "home",
        point.to_str().expect("utf-8"),
        "--gateway",
        &format!("127.0.0.1:{port}"),
        "--gateway-token-file",
        token.to_str().expect("utf-8"),
        "--serve-9p",
        &format!("tcp:127.0.0.1:{ninep}"),
        "--refresh-interval",
        "0.2",
    ]);
    let _mounted = hydra_tests::Unmount(&s, point.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    hydra_tests::eventually("status names the gateway", || {
        s.ok(&["status"])
            .contains(&format!("http 127.0.0.1:{port}"))
    });
    // What is written through the mount is served once committed.
    sh(
        "echo 'through fuse' > f.txt && sync f.txt && cat f.txt > /dev/null",
        &point,
    );
    let reply = get(port, "/fs/home/f.txt");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"through fuse\n");
    // The kernel keeps a file's pages from one open to the next: a second
    // read costs the daemon no read request.
    let reads = || {
        let text = String::from_utf8(get(port, "/metrics").body).expect("utf-8");
        metric(&text, "hydra_fuse_ops_total{op=\"read\"}")
    };
    let before = reads();
    sh("cat f.txt > /dev/null", &point);
    assert_eq!(
        reads(),
        before,
        "a cached file was read from the daemon again"
    );
    // Names and attributes stay cached past a second (every change that
    // does not come through the mount is invalidated explicitly): a stat a
    // while later costs the daemon no lookup and no getattr.
    let asks = || {
        let text = String::from_utf8(get(port, "/metrics").body).expect("utf-8");
        metric(&text, "hydra_fuse_ops_total{op=\"lookup\"}")
            + metric(&text, "hydra_fuse_ops_total{op=\"getattr\"}")
    };
    sh("stat f.txt > /dev/null", &point);
    let before = asks();
    std::thread::sleep(Duration::from_millis(1500));
    sh("stat f.txt > /dev/null", &point);
    assert_eq!(asks(), before, "a cached name or attribute was asked again");
    // A PUT through the gateway reaches the mount (its next refresh), and
    // its listing, which the kernel keeps from one `ls` to the next.
    let listing = || hydra_tests::names_in(&point);
    assert_eq!(listing(), ["f.txt"]);
    let auth = ("Authorization", "Bearer a-token-of-enough-length");
    assert_eq!(
        request(
            port,
            "PUT",
            "/fs/home/from-http.txt",
            &[auth],
            b"over http\n"
        )
        .status,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read(point.join("from-http.txt")).unwrap_or_default() != b"over http\n" {
        assert!(
            Instant::now() < deadline,
            "the mount did not follow the gateway's commit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(listing(), ["f.txt", "from-http.txt"]);
    // A PUT over a file whose pages the kernel holds, same length: the
    // followed commit drops them.
    assert_eq!(
        request(port, "PUT", "/fs/home/f.txt", &[auth], b"over the web\n").status,
        201
    );
    hydra_tests::eventually("the mount shows the new bytes", || {
        std::fs::read(point.join("f.txt")).unwrap_or_default() == b"over the web\n"
    });
    // A longer one: the cached size is dropped too.
    assert_eq!(
        request(
            port,
            "PUT",
            "/fs/home/f.txt",
            &[auth],
            b"over the web, longer\n"
        )
        .status,
        201
    );
    hydra_tests::eventually("the mount shows the new size", || {
        std::fs::metadata(point.join("f.txt")).map(|m| m.len()).ok() == Some(21)
            && std::fs::read(point.join("f.txt")).unwrap_or_default() == b"over the web, longer\n"
    });
    // One 9P session: version, attach, walk, clunk.
    let mut c =
        hydra_tests::ninep::Client::connect(&format!("127.0.0.1:{ninep}"), 65536).expect("9p");
    c.attach("home", 0).expect("attach");

    let text = String::from_utf8(get(port, "/metrics").body).expect("utf-8");
    assert!(
        metric(&text, "hydra_fuse_ops_total{op=\"write\"}") >= 1,
        "{text}"
    );
    assert!(
        metric(&text, "hydra_fuse_ops_total{op=\"fsync\"}") >= 1,
        "{text}"
    );
    assert!(
        metric(&text, "hydra_fuse_ops_total{op=\"lookup\"}") >= 1,
        "{text}"
    );
    // Listings come with attributes (READDIRPLUS), saving a LOOKUP a name.
    assert!(
        metric(&text, "hydra_fuse_ops_total{op=\"readdirplus\"}") >= 1,
        "{text}"
    );
    assert!(
        metric(&text, "hydra_9p_ops_total{op=\"attach\"}") >= 1,
        "{text}"
    );
    assert!(metric(&text, "hydra_block_writes_total") >= 1, "{text}");
    // A taken port fails a mount with one line, creating nothing.
    let t = TestStore::new();
    let other = t.scratch("mnt");
    std::fs::create_dir_all(&other).expect("mkdir");
    let err = t.fails(&[
        "mount",
        "home",
        other.to_str().expect("utf-8"),
        "--foreground",
        "--gateway",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(err.contains("cannot listen"), "{err}");
    assert!(!t.path().exists());
}
