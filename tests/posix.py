#!/usr/bin/env python3
"""Namespace and permission semantics, checked against a reference.

    posix.py REFERENCE TARGET

Runs the same steps (renames with flags, links, sticky and setgid
directories, users without search permission, xattr flags, open-unlinked
files...) under two empty directories, some as users 1000 and 1001 (run
as root), and reports every step whose outcome (ok or errno) differs and
every entry whose type, mode, owner, links, size, bytes, link target or
xattr names differ. Exit status 1 on any difference.
"""
import os, sys, errno, stat, ctypes, json

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
AT_FDCWD = -100

def renameat2(a, b, flags):
    r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def as_user(uid, gid, fn, groups=()):
    """Runs `fn` in a child as `uid`/`gid`: "ok" or the errno's name."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            fn()
            os._exit(0)
        except OSError as e:
            os._exit(100 + e.errno)
        except Exception:
            os._exit(99)
    _, st = os.waitpid(pid, 0)
    c = os.waitstatus_to_exitcode(st)
    if c == 0:
        return "ok"
    if c >= 100:
        return errno.errorcode.get(c - 100, str(c - 100))
    return f"exit{c}"

def steps(R):
    """The (name, step) list, every path under root `R`."""
    P = lambda *p: os.path.join(R, *p)
    def w(path, data=b"x", mode=0o644):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode); os.write(fd, data); os.close(fd)
    S = []
    def s(name, fn):
        S.append((name, fn))
    s("mkdir a", lambda: os.mkdir(P("a")))
    s("mkdir a again", lambda: os.mkdir(P("a")))
    s("create a/f", lambda: w(P("a/f"), b"hello"))
    s("O_EXCL a/f", lambda: os.close(os.open(P("a/f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
    s("rmdir a nonempty", lambda: os.rmdir(P("a")))
    s("unlink a (dir)", lambda: os.unlink(P("a")))
    s("rmdir a/f (file)", lambda: os.rmdir(P("a/f")))
    s("open a/f/x", lambda: os.open(P("a/f/x"), os.O_RDONLY))
    s("mkdir b", lambda: os.mkdir(P("b")))
    s("mkdir b/c", lambda: os.mkdir(P("b/c")))
    s("rename a over b (nonempty)", lambda: os.rename(P("a"), P("b")))
    s("rename a/f over b (dir)", lambda: os.rename(P("a/f"), P("b")))
    s("rename b over a/f (dir over file)", lambda: os.rename(P("b"), P("a/f")))
    s("rename b into itself", lambda: os.rename(P("b"), P("b/c/d")))
    s("rename b to b", lambda: os.rename(P("b"), P("b")))
    s("mkdir e", lambda: os.mkdir(P("e")))
    s("rename e over b/c (empty dir)", lambda: os.rename(P("e"), P("b/c")))
    s("noreplace a/f->b/c", lambda: renameat2(P("a/f"), P("b/c"), RENAME_NOREPLACE))
    s("noreplace a/f->b/g", lambda: renameat2(P("a/f"), P("b/g"), RENAME_NOREPLACE))
    s("exchange b/g<->b/c", lambda: renameat2(P("b/g"), P("b/c"), RENAME_EXCHANGE))
    s("exchange with missing", lambda: renameat2(P("b/g"), P("b/zz"), RENAME_EXCHANGE))
    s("exchange dir into own child", lambda: renameat2(P("b"), P("b/g"), RENAME_EXCHANGE))
    s("whiteout rename", lambda: (w(P("a/w1")), renameat2(P("a/w1"), P("a/w2"), RENAME_WHITEOUT)))
    s("whiteout noreplace onto existing", lambda: (w(P("a/w3")), renameat2(P("a/w3"), P("a/w2"), RENAME_WHITEOUT | RENAME_NOREPLACE)))
    s("whiteout with exchange", lambda: renameat2(P("a/w3"), P("a/w2"), RENAME_WHITEOUT | RENAME_EXCHANGE))
    s("user 1000 whiteout rename", lambda: as_user(1000, 1000, lambda: renameat2(P("t/um"), P("t/um2"), RENAME_WHITEOUT)))
    s("link b/c -> a/l", lambda: os.link(P("b/c"), P("a/l")))
    s("link dir", lambda: os.link(P("b"), P("a/ld")))
    s("link over existing", lambda: os.link(P("b/c"), P("a/l")))
    s("symlink a/s", lambda: os.symlink("../b/c", P("a/s")))
    s("symlink loop", lambda: os.symlink("loop", P("a/loop")))
    s("open loop", lambda: os.open(P("a/loop"), os.O_RDONLY))
    s("open O_NOFOLLOW symlink", lambda: os.open(P("a/s"), os.O_RDONLY | os.O_NOFOLLOW))
    s("long name", lambda: w(P("a", "n" * 256)))
    s("255 name", lambda: w(P("a", "n" * 255)))
    s("mkdir under file", lambda: os.mkdir(P("a/l/x")))
    s("truncate dir", lambda: os.truncate(P("a"), 0))
    s("chmod 4755 file", lambda: os.chmod(P("a/l"), 0o4755))
    s("chown file 1000", lambda: os.chown(P("a/l"), 1000, 1000))
    s("mkdir t sticky", lambda: (os.mkdir(P("t")), os.chmod(P("t"), 0o1777)))
    s("user 1000 create t/u", lambda: as_user(1000, 1000, lambda: w(P("t/u"))))
    s("user 1001 unlink t/u (sticky)", lambda: as_user(1001, 1001, lambda: os.unlink(P("t/u"))))
    s("user 1001 rename t/u (sticky)", lambda: as_user(1001, 1001, lambda: os.rename(P("t/u"), P("t/v"))))
    s("user 1000 rename t/u", lambda: as_user(1000, 1000, lambda: os.rename(P("t/u"), P("t/v"))))
    s("user 1001 write t/v", lambda: as_user(1001, 1001, lambda: w(P("t/v"))))
    s("user 1001 chmod t/v", lambda: as_user(1001, 1001, lambda: os.chmod(P("t/v"), 0o777)))
    s("user 1000 chown t/v to 1001", lambda: as_user(1000, 1000, lambda: os.chown(P("t/v"), 1001, -1)))
    s("user 1000 chgrp t/v to 0", lambda: as_user(1000, 1000, lambda: os.chown(P("t/v"), -1, 0)))
    s("user 1000 utime t/v now", lambda: as_user(1000, 1000, lambda: os.utime(P("t/v"))))
    s("user 1001 utime t/v now", lambda: as_user(1001, 1001, lambda: os.utime(P("t/v"))))
    s("user 1001 utime t/v explicit", lambda: as_user(1001, 1001, lambda: os.utime(P("t/v"), (1, 1))))
    s("chmod t/v 666", lambda: os.chmod(P("t/v"), 0o666))
    s("user 1001 utime t/v now (writable)", lambda: as_user(1001, 1001, lambda: os.utime(P("t/v"))))
    s("mkdir p 0700", lambda: (os.mkdir(P("p")), os.chmod(P("p"), 0o700), w(P("p/f"))))
    s("user 1000 stat p/f", lambda: as_user(1000, 1000, lambda: os.stat(P("p/f"))))
    s("user 1000 list p", lambda: as_user(1000, 1000, lambda: os.listdir(P("p"))))
    s("chmod p 0711", lambda: os.chmod(P("p"), 0o711))
    s("user 1000 stat p/f (x only)", lambda: as_user(1000, 1000, lambda: os.stat(P("p/f"))))
    s("user 1000 list p (x only)", lambda: as_user(1000, 1000, lambda: os.listdir(P("p"))))
    s("user 1000 read p/f 0644", lambda: as_user(1000, 1000, lambda: os.close(os.open(P("p/f"), os.O_RDONLY))))
    s("user 1000 write p/f 0644", lambda: as_user(1000, 1000, lambda: os.close(os.open(P("p/f"), os.O_WRONLY))))
    s("user 1000 create in p", lambda: as_user(1000, 1000, lambda: w(P("p/g"))))
    s("chmod p 0755, user reads p/f", lambda: (os.chmod(P("p"), 0o755), as_user(1000, 1000, lambda: open(P("p/f"), "rb").read())))
    s("chmod p 0700, user reads p/f again", lambda: (os.chmod(P("p"), 0o700), as_user(1000, 1000, lambda: open(P("p/f"), "rb").read())))
    s("user in p's group by supplementary group", lambda: (os.chown(P("p"), 0, 4321), os.chmod(P("p"), 0o750), as_user(1000, 1000, lambda: os.stat(P("p/f")), groups=[4321])))
    s("same user without the group", lambda: as_user(1000, 1000, lambda: os.stat(P("p/f"))))
    # Names the kernel has not looked up yet: the file system itself
    # decides the search, by the supplementary group.
    s("group member looks up a missing name in p", lambda: as_user(1000, 1000, lambda: os.stat(P("p/nothing")), groups=[4321]))
    s("group member lists p", lambda: as_user(1000, 1000, lambda: os.listdir(P("p")), groups=[4321]))
    s("group 0705 refuses a member what others may", lambda: (os.chmod(P("p"), 0o705), as_user(1000, 1000, lambda: os.stat(P("p/nothing2")), groups=[4321])))
    s("and allows a non-member", lambda: as_user(1000, 1000, lambda: os.stat(P("p/nothing3"))))
    s("p back to 0750", lambda: os.chmod(P("p"), 0o750))
    s("setgid dir", lambda: (os.mkdir(P("sg")), os.chown(P("sg"), 0, 1234), os.chmod(P("sg"), 0o2775)))
    s("file in setgid dir", lambda: (w(P("sg/f")), os.mkdir(P("sg/d"))))
    s("user 1000 open O_CREAT 0666 umask", lambda: as_user(1000, 1000, lambda: (os.umask(0o027), w(P("t/um"), mode=0o666))))
    s("write to setuid file clears it (user)", lambda: (os.chmod(P("t/v"), 0o6777), as_user(1001, 1001, lambda: w(P("t/v"), b"zz"))))
    s("mknod fifo", lambda: os.mkfifo(P("a/fifo")))
    s("mknod chr", lambda: os.mknod(P("a/chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3)))
    s("unlink open file then read", lambda: _unlink_open(P("a/uo")))
    s("rename open file over another", lambda: _rename_open(P("a/r1"), P("a/r2")))
    s("rmdir cwd-like then create inside", lambda: _rmdir_then_create(P("gone")))
    s("xattr user.a", lambda: os.setxattr(P("a/l"), "user.a", b"1"))
    s("xattr create existing", lambda: os.setxattr(P("a/l"), "user.a", b"2", os.XATTR_CREATE))
    s("xattr replace missing", lambda: os.setxattr(P("a/l"), "user.b", b"2", os.XATTR_REPLACE))
    s("xattr remove missing", lambda: os.removexattr(P("a/l"), "user.zz"))
    s("xattr on symlink user.", lambda: os.setxattr(P("a/s"), "user.q", b"1", follow_symlinks=False))
    s("xattr bad namespace", lambda: os.setxattr(P("a/l"), "bogus.a", b"1"))
    s("user 1001 xattr on others' file", lambda: as_user(1001, 1001, lambda: os.setxattr(P("a/l"), "user.c", b"1")))
    s("O_APPEND write", lambda: _append(P("a/ap")))
    s("O_TRUNC on open", lambda: (w(P("a/tr"), b"12345"), os.close(os.open(P("a/tr"), os.O_WRONLY | os.O_TRUNC))))
    s("ftruncate grow", lambda: _ftr(P("a/ftr")))
    s("dir nlink", lambda: (os.mkdir(P("n")), os.mkdir(P("n/1")), os.mkdir(P("n/2")), os.rename(P("n/2"), P("n/1/2"))))
    s("rename hardlink to itself", lambda: (os.link(P("a/ap"), P("a/ap2")), os.rename(P("a/ap"), P("a/ap2"))))
    s("chmod symlink target via link", lambda: os.chmod(P("a/s"), 0o600))
    s("lchown symlink", lambda: os.chown(P("a/s"), 7, 7, follow_symlinks=False))
    s("readlink non-link", lambda: os.readlink(P("a/l")))
    s("access W_OK as user on 0444", lambda: (w(P("a/ro")), os.chmod(P("a/ro"), 0o444), as_user(1000, 1000, lambda: os.access(P("a/ro"), os.W_OK) or (_ for _ in ()).throw(OSError(errno.EACCES, "x")))))
    s("root write to 0444", lambda: w(P("a/ro"), b"root"))
    s("root exec check 0644", lambda: os.access(P("a/ro"), os.X_OK) or (_ for _ in ()).throw(OSError(errno.EACCES, "x")))
    s("mtime before the epoch", lambda: _set_mtime(P("a/tr"), -1_000_000_005))
    s("mtime 1.25 s before the epoch", lambda: _set_mtime(P("a/tr"), -1_250_000_000))
    s("mtime a second before the epoch", lambda: _set_mtime(P("a/tr"), -1_000_000_000))
    s("mtime far in the future", lambda: _set_mtime(P("a/tr"), 10**18 + 7))
    s("a sparse file written into counts its holes out", lambda: _sparse_blocks(P("a/sparse")))
    s("access ACL naming user 1000", lambda: (w(P("acl-f"), b"acl"), os.chmod(P("acl-f"), 0o600),
        os.setxattr(P("acl-f"), "system.posix_acl_access", _acl((1, 6), (2, 4, 1000), (4, 0), (0x10, 4), (0x20, 0)))))
    s("user 1000 reads through the ACL", lambda: as_user(1000, 1000, lambda: open(P("acl-f"), "rb").read()))
    s("user 1000 may not write (mask)", lambda: as_user(1000, 1000, lambda: w(P("acl-f"))))
    s("user 1001 reads", lambda: as_user(1001, 1001, lambda: open(P("acl-f"), "rb").read()))
    s("chmod moves the mask", lambda: (os.chmod(P("acl-f"), 0o660), _acl_of(P("acl-f")))[1])
    s("user 1000 writes after chmod", lambda: as_user(1000, 1000, lambda: w(P("acl-f"), b"x")))
    s("default ACL on a file", lambda: os.setxattr(P("acl-f"), "system.posix_acl_default", _acl((1, 7), (4, 5), (0x20, 0))))
    s("malformed ACL", lambda: os.setxattr(P("acl-f"), "system.posix_acl_access", b"\x02\0\0\0\1\0"))
    s("an ACL set by an owner outside the group drops setgid", lambda: (w(P("acl-sg")), os.chown(P("acl-sg"), 1000, 0), os.chmod(P("acl-sg"), 0o2775),
        as_user(1000, 1000, lambda: os.setxattr(P("acl-sg"), "system.posix_acl_access", _acl((1, 7), (4, 5), (0x20, 4)))), oct(os.stat(P("acl-sg")).st_mode))[4])
    s("remove an access ACL that is not there", lambda: (w(P("acl-none")), os.removexattr(P("acl-none"), "system.posix_acl_access")))
    s("remove a default ACL that is not there", lambda: (os.mkdir(P("acl-none-d")), os.removexattr(P("acl-none-d"), "system.posix_acl_default")))
    s("default ACL on a directory", lambda: (os.mkdir(P("acl-d")),
        os.setxattr(P("acl-d"), "system.posix_acl_default", _acl((1, 7), (2, 7, 1000), (4, 5), (0x10, 7), (0x20, 0)))))
    s("file made under it (umask 022, mode 666)", lambda: (os.umask(0o022), w(P("acl-d/f"), b"in", 0o666), _acl_of(P("acl-d/f")))[2])
    s("directory made under it", lambda: (os.mkdir(P("acl-d/sub"), 0o777), _acl_of(P("acl-d/sub")) + " " +
        os.getxattr(P("acl-d/sub"), "system.posix_acl_default").hex())[1])
    s("symlink made under it", lambda: (os.symlink("f", P("acl-d/link")), oct(os.lstat(P("acl-d/link")).st_mode))[1])
    s("user 1000 writes the inherited file", lambda: as_user(1000, 1000, lambda: w(P("acl-d/f"), b"u")))
    s("umask applies without a default ACL", lambda: (os.umask(0o027), w(P("acl-um"), b"u", 0o666), os.umask(0o022), oct(os.stat(P("acl-um")).st_mode))[3])
    s("rename every entry while listing", lambda: _rename_while_listing(P("rl"), 3000))
    s("unlink every entry while listing", lambda: _unlink_while_listing(P("ul"), 3000))
    return S

def _set_mtime(p, ns):
    os.utime(p, ns=(ns, ns))
    st = os.stat(p)
    assert (st.st_mtime_ns, st.st_atime_ns) == (ns, ns), (st.st_mtime_ns, st.st_atime_ns)

def _acl(*entries):
    """An ACL in the kernel's xattr form from (tag, perm[, id]) tuples."""
    out = (2).to_bytes(4, "little")
    for e in entries:
        tag, perm, ident = (e + (0xFFFFFFFF,))[:3]
        out += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + ident.to_bytes(4, "little")
    return out

def _acl_of(p):
    """The access ACL's bytes (hex) and the mode, to compare."""
    try:
        a = os.getxattr(p, "system.posix_acl_access").hex()
    except OSError as e:
        a = errno.errorcode[e.errno]
    return f"{a} {oct(os.stat(p).st_mode)}"

def _sparse_blocks(p):
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"d" * 300_000)
        os.ftruncate(fd, 1 << 30)
        os.fsync(fd)
        for i in range(16):
            os.pwrite(fd, b"w" * 4096, (i + 1) << 25)
        # What `cp` and `du` go by, before and after the data is stored.
        for _ in range(2):
            st = os.fstat(fd)
            assert st.st_blocks * 512 < 8 << 20, st.st_blocks
            os.fsync(fd)
    finally:
        os.close(fd)

def _rename_while_listing(d, n):
    os.mkdir(d)
    for i in range(n):
        open(os.path.join(d, f"f{i:05}"), "w").close()
    seen = 0
    with os.scandir(d) as it:
        for e in it:
            seen += 1
            assert seen <= n, "renamed names listed again"
            os.rename(e.path, os.path.join(d, "z" + e.name))
    assert seen == n, seen

def _unlink_while_listing(d, n):
    os.mkdir(d)
    for i in range(n):
        open(os.path.join(d, f"f{i:05}"), "w").close()
    with os.scandir(d) as it:
        for e in it:
            os.unlink(e.path)
    assert os.listdir(d) == []

def _unlink_open(p):
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644); os.write(fd, b"data"); os.unlink(p)
    os.lseek(fd, 0, 0); d = os.read(fd, 10); os.write(fd, b"more"); st = os.fstat(fd); os.close(fd)
    assert d == b"data" and st.st_nlink == 0 and st.st_size == 8, (d, st.st_nlink, st.st_size)

def _rename_open(a, b):
    for p, d in ((a, b"one"), (b, b"two")):
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, d); os.close(fd)
    fb = os.open(b, os.O_RDONLY); os.rename(a, b)
    d = os.read(fb, 10); os.close(fb)
    assert d == b"two", d
    assert open(b, "rb").read() == b"one"

def _rmdir_then_create(p):
    os.mkdir(p); fd = os.open(p, os.O_RDONLY); os.rmdir(p)
    try:
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)

def _append(p):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644); os.write(fd, b"ab"); os.lseek(fd, 0, 0); os.write(fd, b"cd"); os.close(fd)
    assert open(p, "rb").read() == b"abcd"

def _ftr(p):
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644); os.write(fd, b"ab"); os.ftruncate(fd, 10); os.lseek(fd, 0, 0); d = os.read(fd, 20); os.close(fd)
    assert d == b"ab" + b"\0" * 8

def outcome(fn):
    """What a step gave: "ok", an errno's name, or a failed assertion."""
    try:
        r = fn()
        if isinstance(r, str):
            return r
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    except AssertionError as e:
        return f"assert {e}"

def listing(R):
    """Every entry under `R` with what the comparison looks at."""
    out = {}
    for d, dirs, files in os.walk(R):
        for n in sorted(dirs + files):
            p = os.path.join(d, n); st = os.lstat(p); rel = os.path.relpath(p, R)
            e = [stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_nlink]
            if stat.S_ISREG(st.st_mode): e.append(st.st_size); e.append(open(p, "rb").read()[:40].hex())
            if stat.S_ISLNK(st.st_mode): e.append(os.readlink(p))
            if stat.S_ISCHR(st.st_mode): e.append(st.st_rdev)
            try:
                e.append(sorted(os.listxattr(p, follow_symlinks=False)))
            except OSError as x:
                e.append(errno.errorcode[x.errno])
            out[rel] = e
    return out

roots = sys.argv[1:]
results = []
for R in roots:
    os.chmod(R, 0o755)
    results.append([(n, outcome(f)) for n, f in steps(R)])
bad = 0
for i, (n, a) in enumerate(results[0]):
    b = results[1][i][1]
    if a != b:
        bad += 1
        print(f"DIFF step {n!r}: {roots[0]}={a} {roots[1]}={b}")
la, lb = listing(roots[0]), listing(roots[1])
for k in sorted(set(la) | set(lb)):
    if la.get(k) != lb.get(k):
        bad += 1
        print(f"DIFF entry {k}: {la.get(k)} vs {lb.get(k)}")
print("differences:", bad)
sys.exit(1 if bad else 0)
