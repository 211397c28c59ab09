//! `hydra kv`: the key/value view from the command line.

use hydra_tests::TestStore;

#[test]
fn kv_commands_round_trip() {
    let s = TestStore::new();
    s.ok(&["kv", "t", "put", "apple", "red"]);
    s.ok(&["kv", "t", "put", "avocado", "green"]);
    s.ok(&["kv", "t", "put", "banana", "yellow"]);
    assert_eq!(s.ok(&["kv", "t", "get", "apple"]), "red\n");
    assert_eq!(
        s.ok(&["kv", "t", "scan"]),
        "apple\tred\navocado\tgreen\nbanana\tyellow\n"
    );
    assert_eq!(
        s.ok(&["kv", "t", "scan", "--prefix", "a", "--reverse"]),
        "avocado\tgreen\napple\tred\n"
    );
    assert_eq!(s.ok(&["kv", "t", "scan", "--limit", "1"]), "apple\tred\n");
    s.ok(&["kv", "t", "put", "apple", "green"]);
    s.ok(&["kv", "t", "del", "banana"]);
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "kv", "t", "log"])).expect("json");
    let ids: Vec<u64> = log
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 5);
    let (first, last) = (ids[4].to_string(), ids[0].to_string());
    // Time travel and diff between commits.
    assert_eq!(s.ok(&["kv", "t", "scan", "--at", &first]), "apple\tred\n");
    assert_eq!(
        s.ok(&["kv", "t", "diff", &ids[2].to_string(), &last]),
        "M\tapple\tgreen\nD\tbanana\n"
    );
    // Export, then import into another store: the same root.
    let exported = s.ok(&["kv", "t", "export"]);
    assert_eq!(
        exported,
        "{\"key\":\"apple\",\"value\":\"green\"}\n{\"key\":\"avocado\",\"value\":\"green\"}\n"
    );
    let file = s.scratch("pairs.jsonl");
    std::fs::write(&file, &exported).expect("write");
    let other = TestStore::new();
    other.ok(&["kv", "copy", "import", file.to_str().expect("utf-8")]);
    let root = |st: &TestStore, name: &str| {
        st.ok(&["ref", "get", &format!("kv/{name}")])
            .trim()
            .to_string()
    };
    assert_eq!(
        root(&other, "copy"),
        root(&s, "t"),
        "same contents, same root"
    );
}

#[test]
fn concurrent_kv_writers_lose_no_update() {
    // Four processes at a time, each committing its own keys and all of
    // them bumping one shared key: every write lands, in some order.
    let s = TestStore::new();
    s.ok(&["kv", "t", "put", "seed", "0"]);
    std::thread::scope(|scope| {
        for w in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..10 {
                    s.ok(&["kv", "t", "put", &format!("w{w}-{i}"), &format!("{w}.{i}")]);
                    s.ok(&["kv", "t", "put", "last", &format!("w{w}-{i}")]);
                }
            });
        }
    });
    let scan = s.ok(&["kv", "t", "scan", "--prefix", "w"]);
    let mut want: Vec<String> = (0..4)
        .flat_map(|w| (0..10).map(move |i| format!("w{w}-{i}\t{w}.{i}")))
        .collect();
    want.sort();
    assert_eq!(scan.lines().collect::<Vec<_>>(), want);
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "kv", "t", "log", "--limit", "1000"]))
            .expect("json");
    assert_eq!(log.as_array().expect("array").len(), 81);
    // Each writer's final act set the shared key, so it holds one
    // writer's final value.
    let last = s.ok(&["kv", "t", "get", "last"]);
    assert!((0..4).any(|w| last == format!("w{w}-9\n")), "{last}");
}

#[test]
fn kv_bad_input_changes_nothing() {
    let s = TestStore::new();
    s.ok(&["kv", "t", "put", "k", "v"]);
    let before = s.ok(&["ref", "get", "kv/t"]);
    let file = s.scratch("bad.jsonl");
    std::fs::write(
        &file,
        "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n{\"key\":\"c\"}\n",
    )
    .expect("write");
    let err = s.fails(&["kv", "t", "import", file.to_str().expect("utf-8")]);
    assert!(err.contains("line 3"), "{err}");
    std::fs::write(&file, "{\"key\":\"a\",\"value\":\"1\"}\nnot json\n").expect("write");
    let err = s.fails(&["kv", "t", "import", file.to_str().expect("utf-8")]);
    assert!(err.contains("line 2"), "{err}");
    let long = "k".repeat(5000);
    let err = s.fails(&["kv", "t", "put", &long, "v"]);
    assert!(err.contains("4096"), "{err}");
    std::fs::write(&file, format!("{{\"key\":\"{long}\",\"value\":\"1\"}}\n")).expect("write");
    let err = s.fails(&["kv", "t", "import", file.to_str().expect("utf-8")]);
    assert!(err.contains("line 1"), "{err}");
    s.fails(&["kv", "t", "get", "absent"]);
    s.fails(&["kv", "t", "del", "absent"]);
    s.fails(&["kv", "t", "scan", "--at", "999"]);
    assert_eq!(s.ok(&["ref", "get", "kv/t"]), before, "nothing committed");
    assert_eq!(s.ok(&["kv", "t", "scan"]), "k\tv\n");
}

#[test]
fn graph_commands_round_trip() {
    let s = TestStore::new();
    s.ok(&["graph", "g", "add", "<urn:a>", "<urn:knows>", "<urn:b>"]);
    s.ok(&[
        "graph",
        "g",
        "add",
        "<urn:b>",
        "<urn:knows>",
        "<urn:c>",
        "<urn:g1>",
    ]);
    s.ok(&["graph", "g", "add", "<urn:a>", "<urn:name>", "\"Alice\"@en"]);
    let knows = s.ok(&["graph", "g", "match", "?", "<urn:knows>"]);
    assert_eq!(
        knows,
        "<urn:a> <urn:knows> <urn:b> .\n<urn:b> <urn:knows> <urn:c> <urn:g1> .\n"
    );
    assert_eq!(
        s.ok(&["graph", "g", "match", "?", "?", "?", "<urn:g1>"]),
        "<urn:b> <urn:knows> <urn:c> <urn:g1> .\n"
    );
    assert_eq!(
        s.ok(&["graph", "g", "path", "<urn:a>", "<urn:c>"]),
        "<urn:a> <urn:knows> <urn:b> .\n<urn:b> <urn:knows> <urn:c> <urn:g1> .\n"
    );
    s.fails(&[
        "graph",
        "g",
        "path",
        "<urn:a>",
        "<urn:c>",
        "--max-depth",
        "1",
    ]);
    // Export and import elsewhere: the same quads, the same root.
    let exported = s.ok(&["graph", "g", "export"]);
    assert_eq!(exported.lines().count(), 3);
    let file = s.scratch("g.nq");
    std::fs::write(&file, &exported).expect("write");
    let other = TestStore::new();
    other.ok(&["graph", "copy", "import", file.to_str().expect("utf-8")]);
    assert_eq!(
        other.ok(&["ref", "get", "graph/copy"]),
        s.ok(&["ref", "get", "graph/g"])
    );
    s.ok(&["graph", "g", "del", "<urn:a>", "<urn:name>", "\"Alice\"@en"]);
    assert_eq!(s.ok(&["graph", "g", "export"]).lines().count(), 2);
    // History: four commits; the last one deleted a quad.
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "graph", "g", "log"])).expect("json");
    let ids: Vec<String> = log
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        s.ok(&["graph", "g", "diff", &ids[1], &ids[0]]),
        "D\t<urn:a> <urn:name> \"Alice\"@en .\n"
    );
    assert_eq!(
        s.ok(&["graph", "g", "diff", &ids[3], &ids[2]]),
        "A\t<urn:b> <urn:knows> <urn:c> <urn:g1> .\n"
    );
}

#[test]
fn graph_bad_input_changes_nothing() {
    let s = TestStore::new();
    s.ok(&["graph", "g", "add", "<urn:a>", "<urn:p>", "<urn:b>"]);
    let before = s.ok(&["ref", "get", "graph/g"]);
    let file = s.scratch("bad.nq");
    std::fs::write(&file, "<urn:x> <urn:p> <urn:y> .\n\n<urn:y> <urn:p> .\n").expect("write");
    let err = s.fails(&["graph", "g", "import", file.to_str().expect("utf-8")]);
    assert!(err.contains("line 3"), "{err}");
    s.fails(&["graph", "g", "add", "not-a-term", "<urn:p>", "<urn:b>"]);
    s.fails(&[
        "graph",
        "g",
        "add",
        "\"literal subject\"",
        "<urn:p>",
        "<urn:b>",
    ]);
    s.fails(&["graph", "g", "del", "<urn:zz>", "<urn:p>", "<urn:b>"]);
    assert_eq!(
        s.ok(&["ref", "get", "graph/g"]),
        before,
        "nothing committed"
    );
}
