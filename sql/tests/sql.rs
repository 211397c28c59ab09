//! The SQL view: SQLite over the block DAG, its versions, and the
//! functions over files, key/value stores and graphs.

use hydra_dag::Bucket;
use hydra_sql::rusqlite::types::Value;
use hydra_sql::{Database, ResultSet, SqlError};

fn query(db: &Database, sql: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    db.run_script(sql, &mut |r: ResultSet| out = r.rows)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    out
}

fn int(v: i64) -> Value {
    Value::Integer(v)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

#[test]
fn all_of_sqlite_works_and_persists() {
    let bucket = Bucket::in_memory();
    {
        let db = Database::open(&bucket, "shop").expect("open");
        query(
            &db,
            "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL, tags TEXT);
             CREATE INDEX item_price ON item(price);
             CREATE TABLE sale(item INTEGER REFERENCES item(id), qty INTEGER);
             CREATE TABLE audit(msg TEXT);
             CREATE TRIGGER sold AFTER INSERT ON sale
               BEGIN INSERT INTO audit VALUES ('sold ' || NEW.qty); END;
             INSERT INTO item VALUES (1, 'pen', 1.5, '[\"office\"]'),
                                     (2, 'ink', 7.25, '[\"office\",\"refill\"]'),
                                     (3, 'cup', 4.0, '[]');
             INSERT INTO sale VALUES (1, 10), (2, 3), (1, 5);",
        );
        // Joins, aggregates, an index, window functions, CTEs, JSON.
        assert_eq!(
            query(
                &db,
                "SELECT name, SUM(qty) FROM item JOIN sale ON sale.item = item.id
                 GROUP BY name ORDER BY name"
            ),
            vec![vec![text("ink"), int(3)], vec![text("pen"), int(15)]]
        );
        assert_eq!(
            query(
                &db,
                "SELECT name, RANK() OVER (ORDER BY price DESC) FROM item ORDER BY price"
            ),
            vec![
                vec![text("pen"), int(3)],
                vec![text("cup"), int(2)],
                vec![text("ink"), int(1)]
            ]
        );
        assert_eq!(
            query(
                &db,
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
                 SELECT SUM(x) FROM n"
            ),
            vec![vec![int(5050)]]
        );
        assert_eq!(
            query(
                &db,
                "SELECT name FROM item, json_each(item.tags) WHERE json_each.value = 'refill'"
            ),
            vec![vec![text("ink")]]
        );
        assert_eq!(query(&db, "SELECT COUNT(*) FROM audit"), vec![vec![int(3)]]);
        let plan = query(&db, "EXPLAIN QUERY PLAN SELECT * FROM item WHERE price > 5");
        assert!(format!("{plan:?}").contains("item_price"), "{plan:?}");
    }
    // A new connection (as after a restart) sees every commit.
    let db = Database::open(&bucket, "shop").expect("reopen");
    assert_eq!(query(&db, "PRAGMA integrity_check"), vec![vec![text("ok")]]);
    assert_eq!(query(&db, "SELECT COUNT(*) FROM sale"), vec![vec![int(3)]]);
}

#[test]
fn every_version_opens_read_only() {
    let bucket = Bucket::in_memory();
    let db = Database::open(&bucket, "t").expect("open");
    query(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
    query(&db, "INSERT INTO t VALUES (2)");
    let log = hydra_sql::log(&bucket, "t", 10).expect("log");
    assert_eq!(log.len(), 2, "one commit per script");
    let first = Database::open_at(&bucket, log[1].new).expect("open at");
    assert_eq!(query(&first, "SELECT x FROM t"), vec![vec![int(1)]]);
    let err = first
        .run_script("INSERT INTO t VALUES (3)", &mut |_| {})
        .expect_err("read-only");
    assert!(err.to_string().contains("readonly"), "{err}");
    // The live database moved on; the old version did not.
    query(&db, "DELETE FROM t");
    assert_eq!(query(&first, "SELECT COUNT(*) FROM t"), vec![vec![int(1)]]);
}

#[test]
fn a_failing_script_leaves_the_database_as_it_was() {
    let bucket = Bucket::in_memory();
    let db = Database::open(&bucket, "t").expect("open");
    query(&db, "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1)");
    let before = bucket
        .get_ref(&hydra_sql::ref_name("t").expect("name"))
        .expect("ref");
    for bad in [
        "INSERT INTO t VALUES (2); INSERT INTO nosuch VALUES (3)",
        "INSERT INTO t VALUES (5); INSERT INTO t VALUES (1)",
        "UPDATE t SET x = 9; SELEC 1",
    ] {
        let err = db.run_script(bad, &mut |_| {}).expect_err(bad);
        assert!(matches!(err, SqlError::Sqlite(_)), "{err}");
        assert_eq!(query(&db, "SELECT x FROM t"), vec![vec![int(1)]], "{bad}");
    }
    let after = bucket
        .get_ref(&hydra_sql::ref_name("t").expect("name"))
        .expect("ref");
    assert_eq!(before, after, "no commit");
    // A script that runs its own transactions keeps what it committed.
    let err = db
        .run_script(
            "INSERT INTO t VALUES (2); BEGIN; INSERT INTO t VALUES (3); INSERT INTO t VALUES (1); COMMIT",
            &mut |_| {},
        )
        .expect_err("unique");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    assert_eq!(
        query(&db, "SELECT x FROM t ORDER BY x"),
        vec![vec![int(1)], vec![int(2)]]
    );
}

#[test]
fn readers_keep_their_snapshot_and_writers_take_turns() {
    let bucket = Bucket::in_memory();
    let a = Database::open(&bucket, "t").expect("open");
    let b = Database::open(&bucket, "t").expect("open");
    query(&a, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
    // b reads inside a transaction while a commits twice.
    query(&b, "BEGIN");
    assert_eq!(query(&b, "SELECT COUNT(*) FROM t"), vec![vec![int(1)]]);
    query(&a, "INSERT INTO t VALUES (2)");
    query(&a, "INSERT INTO t VALUES (3)");
    assert_eq!(query(&b, "SELECT COUNT(*) FROM t"), vec![vec![int(1)]]);
    // Its snapshot is stale: it may not write on it.
    let err = b
        .run_script("INSERT INTO t VALUES (9)", &mut |_| {})
        .expect_err("stale");
    assert!(err.to_string().contains("locked"), "{err}");
    // (the failed script rolled its transaction back)
    assert!(b.conn().is_autocommit());
    assert_eq!(query(&b, "SELECT COUNT(*) FROM t"), vec![vec![int(3)]]);
    // One writer at a time: while a holds a write transaction, b waits
    // and then fails; after a commits, b writes.
    a.conn()
        .busy_timeout(std::time::Duration::ZERO)
        .expect("timeout");
    b.conn()
        .busy_timeout(std::time::Duration::from_millis(100))
        .expect("timeout");
    query(&a, "BEGIN IMMEDIATE; INSERT INTO t VALUES (4)");
    let err = b
        .run_script("INSERT INTO t VALUES (5)", &mut |_| {})
        .expect_err("busy");
    assert!(err.to_string().contains("locked"), "{err}");
    query(&a, "COMMIT");
    query(&b, "INSERT INTO t VALUES (5)");
    assert_eq!(
        query(
            &a,
            "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)"
        ),
        vec![vec![text("1,2,3,4,5")]]
    );
}

#[test]
fn small_updates_to_a_large_database_store_little() {
    let bucket = Bucket::in_memory();
    let db = Database::open(&bucket, "big").expect("open");
    query(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO t SELECT i, randomblob(1000) FROM n;",
    );
    let bytes = || bucket.stats().expect("stats")[0].block_bytes;
    let before = bytes();
    for i in 0..100 {
        query(
            &db,
            &format!(
                "UPDATE t SET pad = zeroblob(1000) WHERE id = {}",
                i * 997 + 1
            ),
        );
    }
    let added = bytes() - before;
    // 100 MiB of rows; a hundred one-row updates add a few pages each.
    eprintln!("100 updates added {added} bytes");
    assert!(added < 5 << 20, "{added} bytes for 100 updates");
    assert_eq!(query(&db, "PRAGMA integrity_check"), vec![vec![text("ok")]]);
}
