"""fsx-style differential exerciser of file data through a mount.

    python3 fsx.py run   MOUNT_DIR REF_DIR SEED OPS [SKIP]
    python3 fsx.py check MOUNT_DIR REF_DIR

`run` applies the same random operations to the files f0..f2 in both
directories (the mount under test and a directory on a kernel filesystem)
through long-lived descriptors: pwrite, pread, O_APPEND writes, truncate,
writes and reads through shared mmaps, fallocate (allocate, keep-size,
punch, zero-range), copy_file_range within and across files, fsync,
dropping the cached pages, reopening, and swapping two names by renames. Both sides must give the same
result or errno for every operation, and after each one the same size and
bytes. SKIP leaves out kinds of operation (comma-separated, e.g.
"alloc,punch,zero" where the mount has no fallocate). `check` compares the files by path, e.g. after a remount. A
mismatch prints the seed and the operations before it, and exits 1.
"""

import ctypes
import mmap
import os
import random
import sys

NAMES = ["f0", "f1", "f2"]
MAX_END = 3 << 20
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def fallocate(fd, mode, offset, length):
    if libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def outcome(fn):
    """What an operation did: ("ok", value) or ("errno", code)."""
    try:
        return ("ok", fn())
    except OSError as e:
        return ("errno", e.errno)


class Side:
    """One directory and its open descriptors, one per name."""

    def __init__(self, root):
        self.root = root
        self.fds = {}
        for name in NAMES:
            self.reopen(name)

    def path(self, name):
        return os.path.join(self.root, name)

    def reopen(self, name):
        if name in self.fds:
            os.close(self.fds[name])
        self.fds[name] = os.open(self.path(name), os.O_RDWR | os.O_CREAT, 0o644)

    def size(self, name):
        return os.fstat(self.fds[name]).st_size

    def contents(self, name):
        fd, n = self.fds[name], self.size(name)
        out = bytearray()
        while len(out) < n:
            piece = os.pread(fd, n - len(out), len(out))
            if not piece:
                break
            out += piece
        return bytes(out)


def copy_range(src, dst, length, at_src, at_dst):
    done = 0
    while done < length:
        n = os.copy_file_range(src, dst, length - done, at_src + done, at_dst + done)
        if n == 0:
            break
        done += n
    return done


def mapped(fd, fn):
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
        return fn(m)


def map_write(fd, offset, data, sync):
    def put(m):
        m[offset : offset + len(data)] = data
        if sync:
            m.flush()

    return mapped(fd, put)


def append(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def swap(side, a, b):
    os.rename(side.path(a), side.path("tmp"))
    os.rename(side.path(b), side.path(a))
    os.rename(side.path("tmp"), side.path(b))
    side.fds[a], side.fds[b] = side.fds[b], side.fds[a]


KINDS = ["write"] * 6 + ["read", "append", "truncate", "mapwrite", "mapread", "alloc"]
KINDS += ["punch", "punch", "zero", "copy", "copy", "fsync", "drop", "drop", "reopen", "swap"]


def pick(rng, sides, kinds):
    """One random operation: its description and what it does to a side."""
    name = rng.choice(NAMES)
    size = sides[1].size(name)
    end = max(size, 1)
    offset = rng.randrange(0, MAX_END) if rng.random() < 0.3 else rng.randrange(0, end)
    length = rng.choice([1, 7, 512, 4096, 4097, 65536, 300_000, rng.randrange(1, 1 << 20)])
    length = max(1, min(length, MAX_END - offset))
    kind = rng.choice(kinds)
    data = rng.randbytes(min(length, 1 << 20))
    if kind == "write":
        return f"write {name} {offset} {len(data)}", lambda s: os.pwrite(s.fds[name], data, offset)
    if kind == "read":
        return f"read {name} {offset} {length}", lambda s: os.pread(s.fds[name], length, offset)
    if kind == "append":
        data = data[:70_000]
        return f"append {name} {len(data)}", lambda s: append(s.path(name), data)
    if kind == "truncate":
        to = rng.choice([0, offset, size + length, max(0, size - length)])
        return f"truncate {name} {to}", lambda s: os.ftruncate(s.fds[name], to)
    if kind == "mapwrite":
        at = min(offset, end - 1)
        data = data[: max(0, size - at)]
        sync = rng.random() < 0.5
        return (
            f"mapwrite {name} {at} {len(data)} sync={sync}",
            lambda s: map_write(s.fds[name], at, data, sync),
        )
    if kind == "mapread":
        return f"mapread {name} {offset} {length}", lambda s: mapped(
            s.fds[name], lambda m: bytes(m[offset : offset + length])
        )
    if kind in ("alloc", "punch", "zero"):
        mode = {
            "alloc": rng.choice([0, KEEP_SIZE]),
            "punch": PUNCH_HOLE | KEEP_SIZE,
            "zero": ZERO_RANGE | rng.choice([0, KEEP_SIZE]),
        }[kind]
        return (
            f"fallocate {name} mode={mode:#x} {offset} {length}",
            lambda s: fallocate(s.fds[name], mode, offset, length),
        )
    if kind == "copy":
        dst = rng.choice(NAMES)
        at = rng.randrange(0, MAX_END - length) if rng.random() < 0.3 else rng.randrange(0, end)
        return f"copy {name} {offset} -> {dst} {at} {length}", lambda s: copy_range(
            s.fds[name], s.fds[dst], length, offset, at
        )
    if kind == "fsync":
        return f"fsync {name}", lambda s: os.fsync(s.fds[name])
    if kind == "drop":
        # The mount's cached pages go (dirty ones written first): what
        # follows reads what the daemon holds.
        return f"drop {name}", lambda s: os.posix_fadvise(s.fds[name], 0, 0, os.POSIX_FADV_DONTNEED)
    if kind == "reopen":
        return f"reopen {name}", lambda s: s.reopen(name)
    other = rng.choice([n for n in NAMES if n != name])
    return f"swap {name} {other}", lambda s: swap(s, name, other)


def fail(log, why):
    print("fsx: " + why, file=sys.stderr)
    print("fsx: last operations:\n  " + "\n  ".join(log[-15:]), file=sys.stderr)
    sys.exit(1)


def compare(sides, log, by_path):
    for name in NAMES:
        if by_path:
            got = [open(s.path(name), "rb").read() for s in sides]
        else:
            got = [s.contents(name) for s in sides]
            sizes = [s.size(name) for s in sides]
            if sizes[0] != sizes[1]:
                fail(log, f"{name}: size {sizes[0]} in the mount, {sizes[1]} in the reference")
        if got[0] != got[1]:
            at = next((i for i, (x, y) in enumerate(zip(*got)) if x != y), min(map(len, got)))
            fail(log, f"{name}: bytes differ from offset {at} (lengths {len(got[0])}, {len(got[1])})")


def main():
    mode, roots = sys.argv[1], sys.argv[2:4]
    if mode == "check":
        sides = []
        for root in roots:
            side = Side.__new__(Side)
            side.root, side.fds = root, {}
            sides.append(side)
        compare(sides, ["(check by path)"], True)
        print("fsx: files equal")
        return
    seed, ops = int(sys.argv[4]), int(sys.argv[5])
    skip = sys.argv[6].split(",") if len(sys.argv) > 6 else []
    kinds = [k for k in KINDS if k not in skip]
    rng = random.Random(seed)
    sides = [Side(root) for root in roots]
    log = [f"seed {seed}"]
    counts = {}
    for _ in range(ops):
        what, fn = pick(rng, sides, kinds)
        log.append(what)
        got = [outcome(lambda s=s: fn(s)) for s in sides]
        if got[0] != got[1]:
            show = [g if g[0] == "errno" or not isinstance(g[1], bytes) else ("ok", f"{len(g[1])} bytes") for g in got]
            fail(log, f"outcomes differ: mount {show[0]}, reference {show[1]}")
        kind = what.split()[0]
        counts[kind] = counts.get(kind, 0) + 1
        compare(sides, log, False)
    for side in sides:
        for fd in side.fds.values():
            os.fsync(fd)
            os.close(fd)
    print("fsx: %d operations agree: %s" % (ops, ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))))


main()
