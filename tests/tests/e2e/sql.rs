//! `hydra sql`: SQLite over the store from the command line.

use std::io::Write;
use std::os::unix::fs::symlink;
use std::process::Stdio;
use std::time::Duration;

use hydra_tests::TestStore;

fn sql(s: &TestStore, args: &[&str]) -> String {
    s.ok(&[&["sql"], args].concat())
}

fn commits(s: &TestStore, db: &str) -> usize {
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "sql", db, "log"])).expect("json");
    log.as_array().expect("array").len()
}

#[test]
fn queries_scripts_formats_and_versions() {
    let s = TestStore::new();
    sql(
        &s,
        &[
            "db",
            "CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x,y'), (2, NULL);",
        ],
    );
    assert_eq!(
        sql(&s, &["db", "SELECT * FROM t ORDER BY a"]),
        "1,\"x,y\"\n2,\n"
    );
    assert_eq!(
        sql(
            &s,
            &["db", "SELECT a, b FROM t ORDER BY a", "--format", "table"]
        ),
        "a  b\n-  ----\n1  x,y\n2  NULL\n"
    );
    assert_eq!(
        sql(
            &s,
            &["db", "SELECT a, b FROM t ORDER BY a", "--format", "json"]
        ),
        "[{\"a\":1,\"b\":\"x,y\"},{\"a\":2,\"b\":null}]\n"
    );
    // A script on stdin, statements over several lines: one commit.
    let mut child = s
        .cmd()
        .args(["sql", "db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"INSERT INTO t\n  VALUES (3, 'z');\nUPDATE t SET b = 'w'\n WHERE a = 2;\nSELECT COUNT(*) FROM t;\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
    assert_eq!(commits(&s, "db"), 2);
    // The first version, read-only.
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "sql", "db", "log"])).expect("json");
    let first = log[1]["id"].as_u64().expect("id").to_string();
    assert_eq!(
        sql(&s, &["db", "SELECT COUNT(*) FROM t", "--at", &first]),
        "2\n"
    );
    let err = s.fails(&[
        "sql",
        "db",
        "INSERT INTO t VALUES (9, 'no')",
        "--at",
        &first,
    ]);
    assert!(err.contains("readonly"), "{err}");
    assert_eq!(commits(&s, "db"), 2);
}

#[test]
fn a_failing_statement_exits_non_zero_and_changes_nothing() {
    let s = TestStore::new();
    sql(
        &s,
        &["db", "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1);"],
    );
    for (bad, message) in [
        (
            "INSERT INTO t VALUES (2); SELECT * FROM nosuch",
            "no such table: nosuch",
        ),
        (
            "INSERT INTO t VALUES (3); INSERT INTO t VALUES (1)",
            "UNIQUE constraint failed",
        ),
        ("DELETE FROM t; SELEC 1", "syntax error"),
    ] {
        let out = s.run(&["sql", "db", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert_eq!(sql(&s, &["db", "SELECT x FROM t"]), "1\n", "{bad}");
    }
    assert_eq!(commits(&s, "db"), 1);
}

#[test]
fn a_killed_transaction_leaves_the_last_commit_intact() {
    let s = TestStore::new();
    sql(
        &s,
        &[
            "db",
            "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
        ],
    );
    let before = commits(&s, "db");
    // A transaction that runs for a long while, killed in the middle.
    let mut child = s
        .cmd()
        .args([
            "sql",
            "db",
            "CREATE TABLE big(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000000) INSERT INTO big SELECT randomblob(200) FROM n;",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(child.try_wait().expect("poll").is_none(), "still running");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_eq!(sql(&s, &["db", "PRAGMA integrity_check"]), "ok\n");
    assert_eq!(
        sql(&s, &["db", "SELECT group_concat(x) FROM t"]),
        "\"1,2,3\"\n"
    );
    let err = s.fails(&["sql", "db", "SELECT * FROM big"]);
    assert!(err.contains("no such table"), "{err}");
    assert_eq!(commits(&s, "db"), before);
}

#[test]
fn files_kv_and_quads_are_tables() {
    let s = TestStore::new();
    let dir = s.scratch("home");
    std::fs::create_dir_all(dir.join("docs")).expect("mkdir");
    std::fs::write(dir.join("docs/big.bin"), vec![7u8; 3_000_000]).expect("write");
    std::fs::write(dir.join("small.txt"), b"hello").expect("write");
    std::fs::hard_link(dir.join("small.txt"), dir.join("docs/also.txt")).expect("link");
    symlink("small.txt", dir.join("link")).expect("symlink");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    s.ok(&[
        "import",
        "dir",
        "--fs",
        "home",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        sql(
            &s,
            &[
                "db",
                "SELECT path, size FROM hydra_files('home') WHERE size > 1e6 ORDER BY size DESC"
            ]
        ),
        "/docs/big.bin,3000000\n"
    );
    assert_eq!(
        sql(
            &s,
            &[
                "db",
                "SELECT path, kind, size FROM hydra_files('home') ORDER BY path"
            ]
        ),
        "/,dir,0\n/docs,dir,0\n/docs/also.txt,file,5\n/docs/big.bin,file,3000000\n/link,symlink,9\n/pipe,fifo,0\n/small.txt,file,5\n"
    );
    assert_eq!(
        sql(
            &s,
            &[
                "db",
                "SELECT mode & 511, cid IS NOT NULL FROM hydra_files('home') WHERE path = '/docs/big.bin'"
            ]
        ),
        format!(
            "{},1\n",
            std::fs::metadata(dir.join("docs/big.bin"))
                .map(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o777
                })
                .expect("stat")
        )
    );
    s.ok(&["kv", "k", "put", "apple", "red"]);
    s.ok(&["kv", "k", "put", "pear", "green"]);
    s.ok(&[
        "graph",
        "g",
        "add",
        "<http://a>",
        "<http://knows>",
        "<http://b>",
    ]);
    assert_eq!(
        sql(
            &s,
            &[
                "db",
                "SELECT key || '=' || value FROM hydra_kv('k') ORDER BY key"
            ]
        ),
        "apple=red\npear=green\n"
    );
    assert_eq!(
        sql(&s, &["db", "SELECT s, o FROM hydra_quads('g')"]),
        "<http://a>,<http://b>\n"
    );
    let err = s.fails(&["sql", "db", "SELECT * FROM hydra_files('nosuch')"]);
    assert!(err.contains("no filesystem nosuch"), "{err}");
    let err = s.fails(&["sql", "db", "SELECT * FROM hydra_files"]);
    assert!(err.contains("needs the name"), "{err}");
}

#[test]
fn the_shell_takes_statements_over_several_lines() {
    let s = TestStore::new();
    sql(&s, &["db", "CREATE TABLE t(x); INSERT INTO t VALUES (40);"]);
    // `script` gives the shell a terminal.
    let command = format!(
        "{} --store {} sql db",
        hydra_tests::hydra_bin().display(),
        s.path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils) runs");
    let mut stdin = child.stdin.take().expect("stdin");
    // Typed a line at a time, as a person would (the line editor switches
    // the terminal's modes between lines).
    std::thread::sleep(Duration::from_millis(500));
    for line in [
        "SELECT x +",
        " 2 AS answer",
        " FROM t;",
        "INSERT INTO t VALUES (1);",
        ".quit",
    ] {
        stdin
            .write_all(format!("{line}\r").as_bytes())
            .expect("write");
        stdin.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("answer") && text.contains("42"), "{text}");
    assert_eq!(sql(&s, &["db", "SELECT COUNT(*) FROM t"]), "2\n");
    assert!(s.path().join("sql_history").exists());
}
