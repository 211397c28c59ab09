#!/usr/bin/env python3
"""A workload to cut the power under, and the check that follows the cut.

  powercut.py write DIR LOG SEED   works in DIR until the power goes
  powercut.py check DIR LOG        every state whose fsync returned is there
  powercut.py manifest DIR OUT     names and digests of DIR's files, to OUT
  powercut.py same DIR MANIFEST    DIR still holds exactly MANIFEST

The writer creates, patches, truncates, renames (also between DIR and
DIR/d) and unlinks files, fsyncing each change (the file, or its
directories for a rename or an unlink), writes
files it never fsyncs, and adds rows to a SQLite database in DIR. LOG,
outside DIR, is the oracle: before each change a line "P <change>" is
written to it and fsynced, and after the change's fsync returns a line
"S <change>". So after a cut every change but the last one logged is
known to be durable, and the last is durable if its "S" line is there,
else it may or may not have happened (nothing in between: a rename is
atomic, a file being written may hold any bytes).
"""
import hashlib
import os
import random
import sqlite3
import sys

SMALL = 256 * 1024  # files up to this size are kept in memory to patch


def digest(data):
    return hashlib.sha256(data).hexdigest()[:32]


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(d, log_path, seed):
    rng = random.Random(seed)
    os.mkdir(d)
    os.mkdir(os.path.join(d, "d"))
    fsync_dir(d)
    fsync_dir(os.path.dirname(d))
    log = open(log_path, "a")

    def pending(line):
        log.write("P " + line + "\n")
        log.flush()
        os.fsync(log.fileno())

    def synced(line):
        log.write("S " + line + "\n")
        log.flush()

    files = {}  # name -> bytes (small) or None (big)
    db = sqlite3.connect(os.path.join(d, "db"))
    # A rollback journal's transaction commits when the journal is deleted,
    # which FULL leaves unsynced (the last transaction may come back after a
    # power cut); EXTRA syncs the directory too, so a commit is durable.
    db.execute("PRAGMA synchronous=EXTRA")
    db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    db.commit()
    rows = db.execute("SELECT count(*) FROM t").fetchone()[0]
    n = 0
    while True:
        n += 1
        op = rng.random()
        if op < 0.45 or len(files) < 3:
            name = rng.choice(["", "d/"]) + "f%d" % n
            size = rng.choice([rng.randint(0, 4096), rng.randint(4096, SMALL),
                               rng.randint(SMALL, 3 << 20), rng.randint(3 << 20, 12 << 20)])
            data = rng.randbytes(size)
            pending("create %s %s" % (name, digest(data)))
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            synced("create %s %s" % (name, digest(data)))
            files[name] = data if size <= SMALL else None
        elif op < 0.6 and any(v is not None for v in files.values()):
            name = rng.choice(sorted(k for k, v in files.items() if v is not None))
            old = files[name]
            at = rng.randint(0, len(old) + 1000)
            truncate = rng.random() < 0.3
            patch = rng.randbytes(rng.randint(1, 20000))
            new = bytearray(old)
            if at > len(new):
                new.extend(bytes(at - len(new)))
            if truncate:
                del new[at:]
            else:
                new[at:at + len(patch)] = patch
            new = bytes(new)
            pending("patch %s %s" % (name, digest(new)))
            fd = os.open(os.path.join(d, name), os.O_WRONLY)
            try:
                if truncate:
                    os.ftruncate(fd, at)
                else:
                    os.pwrite(fd, patch, at)
                os.fsync(fd)
            finally:
                os.close(fd)
            synced("patch %s %s" % (name, digest(new)))
            files[name] = new
        elif op < 0.7:
            old = rng.choice(sorted(files))
            new = rng.choice(["", "d/"]) + "r%d" % n
            pending("rename %s %s" % (old, new))
            os.rename(os.path.join(d, old), os.path.join(d, new))
            fsync_dir(d)
            fsync_dir(os.path.join(d, "d"))
            synced("rename %s %s" % (old, new))
            files[new] = files.pop(old)
        elif op < 0.78:
            name = rng.choice(sorted(files))
            pending("unlink %s" % name)
            os.unlink(os.path.join(d, name))
            fsync_dir(os.path.dirname(os.path.join(d, name)))
            synced("unlink %s" % name)
            del files[name]
        elif op < 0.9:
            name = rng.choice(["", "d/"]) + "u%d" % n
            pending("junk %s" % name)
            with open(os.path.join(d, name), "wb") as f:
                f.write(rng.randbytes(rng.randint(0, 2 << 20)))
        else:
            add = rng.randint(1, 200)
            pending("sql %d" % (rows + add))
            db.executemany("INSERT INTO t(v) VALUES (?)",
                           [(rng.randbytes(100),) for _ in range(add)])
            db.commit()
            rows += add
            synced("sql %d" % rows)
        print("OPS %d" % n, flush=True)


def fail(msg):
    print("POWERCUT-FAIL " + msg, flush=True)
    sys.exit(1)


def read(d, name):
    try:
        with open(os.path.join(d, name), "rb") as f:
            return digest(f.read())
    except FileNotFoundError:
        return None


def check(d, log_path):
    with open(log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    # Only the tail past the last fsync'd line can be torn, or (ext4's
    # data=writeback) stale bytes: what is not a whole, well-formed line
    # is not there.
    arity = {"create": 2, "patch": 2, "rename": 2, "unlink": 1, "junk": 1, "sql": 1}
    lines = [line.split() for line in text.split("\n")[:-1]]
    lines = [w for w in lines
             if len(w) >= 2 and w[0] in ("P", "S") and arity.get(w[1]) == len(w) - 2]
    state = {}  # name -> digest of its last durable content
    rows = 0
    last = None  # the last change, when its "S" line is missing
    for line in lines:
        kind, op, args = line[0], line[1], line[2:]
        if kind == "P":
            last = (op, args)
            continue
        last = None
        if op in ("create", "patch"):
            state[args[0]] = args[1]
        elif op == "rename":
            state[args[1]] = state.pop(args[0])
        elif op == "unlink":
            del state[args[0]]
        elif op == "sql":
            rows = int(args[0])
    # What the last change, if it may not have happened, may have left.
    either = set()
    if last is not None:
        op, args = last
        if op in ("create", "patch"):
            either.add(args[0])  # any bytes: the file was being written
        elif op == "rename":
            old, new = args
            a, b = read(d, old), read(d, new)
            if not ((a == state[old] and b is None) or (a is None and b == state[old])):
                fail("rename %s -> %s half done: %s %s" % (old, new, a, b))
            either.update(args)
        elif op == "unlink":
            if read(d, args[0]) not in (None, state[args[0]]):
                fail("%s is neither gone nor as it was" % args[0])
            either.add(args[0])
    for name, want in sorted(state.items()):
        if name in either:
            continue
        got = read(d, name)
        if got != want:
            fail("%s: %s, fsync'd as %s" % (name, got, want))
    for name in names(d):
        with open(os.path.join(d, name), "rb") as f:
            f.read()  # every name reads without an error
        extra = name not in state and name not in either
        if extra and not os.path.basename(name).startswith(("u", "db")):
            fail("%s is there, but was never fsync'd" % name)
    db = sqlite3.connect(os.path.join(d, "db"))
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        fail("the database is damaged")
    count = db.execute("SELECT count(*) FROM t").fetchone()[0]
    allowed = {rows}
    if last is not None and last[0] == "sql":
        allowed.add(int(last[1][0]))
    if count not in allowed:
        fail("the database has %d rows, committed %d" % (count, rows))
    print("POWERCUT-CHECKED %d files, %d rows, last change %s" %
          (len(state), count, "durable" if last is None else "in doubt"), flush=True)


def names(d):
    """Every file under d, as a path relative to it."""
    found = []
    for top, _, files in os.walk(d):
        found += [os.path.relpath(os.path.join(top, f), d) for f in files]
    return sorted(found)


def manifest(d):
    return {n: read(d, n) for n in names(d)}


def main():
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    elif cmd == "manifest":
        with open(sys.argv[3], "w") as f:
            for name, h in manifest(sys.argv[2]).items():
                f.write("%s %s\n" % (name, h))
    elif cmd == "same":
        with open(sys.argv[3]) as f:
            want = dict(line.split() for line in f)
        if manifest(sys.argv[2]) != want:
            fail("%s changed after its check" % sys.argv[2])
        print("POWERCUT-SAME %s" % sys.argv[2], flush=True)
    else:
        sys.exit("powercut.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
