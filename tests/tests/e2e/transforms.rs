//! Compressed and encrypted stores from the command line.

use hydra_tests::{TestStore, sh, tree_digest};

fn with_env(s: &TestStore, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = s.cmd();
    cmd.env_remove("HYDRA_PASSPHRASE")
        .env_remove("HYDRA_KEY_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run hydra")
}

fn ok(s: &TestStore, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = with_env(s, env, args);
    assert!(
        out.status.success(),
        "hydra {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(s: &TestStore, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = with_env(s, env, args);
    assert!(!out.status.success(), "hydra {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    err
}

#[test]
fn an_encrypted_compressed_store_round_trips_and_refuses_wrong_keys() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    sh(
        "mkdir src && for i in $(seq 1 200); do seq 1 $((i * 50)) > src/text$i; done \
         && head -c 2000000 /dev/urandom > src/noise && ln -s text1 src/link \
         && tar -cf in.tar -C src .",
        &work,
    );
    let pw = [("HYDRA_PASSPHRASE", "open sesame")];
    // No key: refused before anything is created.
    let err = fails(&s, &[], &["init", "--compress", "zstd", "--encrypt"]);
    assert!(err.contains("HYDRA_PASSPHRASE"), "{err}");
    assert!(!s.path().exists());
    fails(&s, &pw, &["init", "--compress", "zstd:99"]);
    fails(&s, &pw, &["init", "--compress", "lz4"]);
    ok(&s, &pw, &["init", "--compress", "zstd", "--encrypt"]);
    let tar_in = work.join("in.tar");
    ok(
        &s,
        &pw,
        &[
            "import",
            "tar",
            tar_in.to_str().expect("utf-8"),
            "--fs",
            "f",
        ],
    );
    let tar_out = work.join("out.tar");
    ok(
        &s,
        &pw,
        &[
            "export",
            "tar",
            "--fs",
            "f",
            "-o",
            tar_out.to_str().expect("utf-8"),
        ],
    );
    sh(
        "mkdir out && tar -xf out.tar -C out && diff -r src out",
        &work,
    );

    // On disk: no file name or text, and the text compressed.
    let stored: u64 = std::fs::read_dir(s.path().join("packs"))
        .expect("packs")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum();
    let logical = std::fs::metadata(&tar_in).expect("stat").len();
    assert!(stored < logical * 3 / 4, "{stored} stored for {logical}");
    let raw = sh(
        &format!(
            "cat {}/packs/* {}/index.sqlite* | grep -c -a 'text17' || true",
            s.path().display(),
            s.path().display()
        ),
        &work,
    );
    assert_eq!(raw.trim(), "0", "a file name is visible on disk");

    // Wrong or missing key: one line, non-zero, the store as it was.
    let before = tree_digest(&s.path());
    let err = fails(
        &s,
        &[("HYDRA_PASSPHRASE", "guess")],
        &["fs", "ls", "f", "/"],
    );
    assert!(err.contains("wrong key"), "{err}");
    let err = fails(&s, &[], &["stats"]);
    assert!(err.contains("encrypted"), "{err}");
    assert_eq!(tree_digest(&s.path()), before);
    // GC with the key keeps everything the fs reaches.
    ok(&s, &pw, &["gc", "--grace", "0"]);
    ok(&s, &pw, &["fs", "cat", "f", "/text7"]);

    // A key file instead of a passphrase.
    let k = TestStore::new();
    let key = k.scratch("key");
    std::fs::write(&key, [9u8; 32]).expect("write key");
    let kf = [("HYDRA_KEY_FILE", key.to_str().expect("utf-8"))];
    ok(&k, &kf, &["init", "--encrypt"]);
    ok(&k, &kf, &["kv", "x", "put", "a", "b"]);
    assert_eq!(ok(&k, &kf, &["kv", "x", "get", "a"]), "b\n");
    std::fs::write(&key, [8u8; 32]).expect("write key");
    fails(&k, &kf, &["kv", "x", "get", "a"]);
    std::fs::write(&key, [8u8; 5]).expect("write key");
    let err = fails(&k, &kf, &["kv", "x", "get", "a"]);
    assert!(err.contains("32 or more"), "{err}");
}
