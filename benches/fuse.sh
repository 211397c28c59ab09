#!/usr/bin/env bash
# FUSE benchmark: hydra's mount beside bindfs -o big_writes over tmpfs (the
# FUSE floor) and tmpfs itself (the limit), in one run, medians of RUNS.
#
#   benches/fuse.sh                 # hydra's store on tmpfs, like bindfs's
#   STORE=disk benches/fuse.sh      # hydra's store under $TMPDIR (the disk)
#
# Workloads: sequential write of a 2 GiB file of random bytes (dd
# conv=fsync), reading it back (cat, page cache dropped, then warm), random
# writes into it, copying it with cp, sparse files (a 1 TiB hole), tar -x of 30,000
# small files and a stat of them all 2 s later, git clone of a generated
# repository, git status in a 20,000-file one 2 s later and, caches
# dropped, as nobody; and the daemon's peak
# RSS. Every run starts from an empty target (hydra: a new daemon on an
# empty store) and each write run writes new random bytes, so no run finds
# its blocks already stored by an earlier one. Needs bindfs, git, python3 (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
command -v bindfs >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bindfs git python3 >/dev/null; }
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-fuse.XXXXXX)    # inputs and the tmpfs targets
chmod 755 "$W"                               # for the run as nobody
# The hydra store: on tmpfs by default, so hydra and bindfs read and write
# the same medium and the comparison is of the file systems, not the disks.
if [ "${STORE:-tmpfs}" = disk ]; then D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-fuse.XXXXXX"); else D=$(mktemp -d /dev/shm/hydra-store.XXXXXX); fi
export HYDRA_STORE="$D/store"
mkdir -p "$W/tmpfs" "$W/bind-src" "$W/bind" "$W/hydra"
cleanup() {
  "$H" umount "$W/hydra" >/dev/null 2>&1 || true
  fusermount3 -u "$W/bind" 2>/dev/null || umount "$W/bind" 2>/dev/null || true
  rm -rf "$W" "$D"
}
trap cleanup EXIT
bindfs -o big_writes "$W/bind-src" "$W/bind" 2>/dev/null || bindfs "$W/bind-src" "$W/bind"
"$H" mount bench "$W/hydra" --allow-other >/dev/null

python3 - "$W" <<'PY'
import os, random, sys
w = sys.argv[1]; random.seed(1); n = 0
for d in range(316):
    p = f"{w}/small/d{d // 20}/sub{d}"; os.makedirs(p, exist_ok=True)
    for f in range(95):
        if n >= 30000: break
        with open(f"{p}/file{f}.dat", "wb") as fh: fh.write(os.urandom(random.randint(0, 16384)))
        n += 1
PY
tar -cf "$W/small.tar" -C "$W/small" . && rm -rf "$W/small"
git init -q -b main "$W/repo" && (cd "$W/repo" && git config user.email b@x && git config user.name b &&
  for c in $(seq 1 200); do mkdir -p "d$((c % 20))"; head -c $((c * 500)) /dev/urandom | base64 > "d$((c % 20))/f$c"; git add -A; git commit -q -m "c$c"; done)
# A larger repository for `git status`: 20,000 files in 1,000 directories.
python3 - "$W/big-repo" <<'PY'
import os, random, sys
random.seed(2); w = sys.argv[1]
for d in range(1000):
    p = f"{w}/m{d // 50}/d{d}"; os.makedirs(p, exist_ok=True)
    for f in range(20):
        with open(f"{p}/f{f}.c", "w") as fh: fh.write("x" * random.randint(10, 3000))
PY
(cd "$W/big-repo" && git init -q -b main && git add -A && git -c user.email=b@x -c user.name=b commit -qm init)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { local s e; s=$(date +%s.%N); bash -c "$1" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
peak=0
note_rss() { # the daemon's peak RSS so far, in KiB
  local pid r
  pid=$("$H" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pid"])')
  r=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  [ "$r" -gt "$peak" ] && peak=$r
  return 0
}
empty() { # empties a target; hydra gets a new daemon on an empty store, so
          # no run finds its blocks already stored by an earlier one
  case $1 in
    tmpfs) rm -rf "$W/tmpfs"/* ;;
    bind) rm -rf "$W/bind"/* "$W/bind-src"/* ;;
    hydra) note_rss; "$H" umount "$W/hydra" >/dev/null; rm -rf "$D/store"
           "$H" mount bench "$W/hydra" --allow-other >/dev/null 2>&1 ;;
  esac
}
row() { # label tmpfs bindfs hydra
  printf '%-34s tmpfs %7.2f s   bindfs %7.2f s   hydra %7.2f s   hydra/bindfs %5.2fx   hydra/tmpfs %5.2fx\n' \
    "$1" "$2" "$3" "$4" "$(echo "$4 / $3" | bc -l)" "$(echo "$4 / $2" | bc -l)"
}
bench() { # label command-with-TARGET [setup run before each run] [keep: targets not emptied] [warm: caches kept]
  local label=$1 cmd=$2 setup=${3:-true} keep=${4:-} warm=${5:-} t0=() t1=() t2=()
  for _ in $(seq 1 "$RUNS"); do
    bash -c "$setup"
    for target in tmpfs bind hydra; do
      [ -n "$keep" ] || empty $target
      [ -n "$warm" ] || { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
      t=$(timed "${cmd//TARGET/$W/$target}")
      case $target in tmpfs) t0+=("$t") ;; bind) t1+=("$t") ;; hydra) t2+=("$t") ;; esac
    done
  done
  row "$label" "$(printf '%s\n' "${t0[@]}" | median)" "$(printf '%s\n' "${t1[@]}" | median)" "$(printf '%s\n' "${t2[@]}" | median)"
}
# Each run writes new random bytes, so a run never dedupes against another.
bench "write 2 GiB (dd bs=1M conv=fsync)" "dd if=$W/big.bin of=TARGET/f bs=1M conv=fsync" \
  "head -c 2G /dev/urandom > $W/big.bin"
# Read back what was just written (each target keeps its last file).
# One untimed read of each first: the first read after gigabytes of writes
# runs while the kernel is still reclaiming, at up to 4x the time, on any
# file system. Then the timed rounds, interleaved, each from a cold cache.
for target in tmpfs bind hydra; do cat "$W/$target/f" > /dev/null; done
bench "read 2 GiB (cat, caches dropped)" "cat TARGET/f > /dev/null" true keep
# Read it again in a new process with the caches warm: what the kernel
# keeps of a file from one open to the next.
for target in tmpfs bind hydra; do cat "$W/$target/f" > /dev/null; done
bench "re-read 2 GiB (cat, caches warm)" "cat TARGET/f > /dev/null" true keep warm
# Edits: random writes into that file, then fsync (each run adds its own),
# and sparse files: a terabyte hole with a megabyte written into it, and
# small random writes into a 16 GiB hole.
cat > "$W/rw.py" <<'PY'
import os, random, sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hole = int(sys.argv[4]) if len(sys.argv) > 4 else 0
fd = os.open(path, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if hole else 0))
if hole:
    os.ftruncate(fd, hole)
end = os.fstat(fd).st_size
for _ in range(n):
    os.pwrite(fd, os.urandom(size), random.randrange(0, end - size))
os.fsync(fd)
PY
bench "1000 random 4 KiB writes, fsync" "python3 $W/rw.py TARGET/f 1000 4096" true keep
# Copying that file inside the mount: `cp` asks for copy_file_range, which
# hydra answers by sharing chunks (bindfs lets cp read and write it all).
bench "cp of the 2 GiB file, fsync" "cp TARGET/f TARGET/copy && sync TARGET/copy" \
  "rm -f $W/*/copy" keep
head -c 1M /dev/urandom > "$W/lump"
bench "1 TiB hole + 1 MiB in it, fsync" \
  "truncate -s 1T TARGET/sparse && dd if=$W/lump of=TARGET/sparse bs=1M seek=300000 conv=notrunc,fsync" \
  "rm -f $W/*/sparse" keep
bench "1000 random 512 B writes in 16 GiB hole" "python3 $W/rw.py TARGET/hole 1000 512 $((16 << 30))" true keep
rm -f "$W/big.bin"
bench "tar -x of 30,000 small files" "tar -xf $W/small.tar -C TARGET"
# What a shell, an editor or `git status` does a moment later: stat
# everything. The kernel answers from its caches what it may still
# trust (bindfs: for a second; hydra: everything, as it invalidates what
# changes behind the kernel's back), caches not dropped.
bench "stat of the 30,000 files, 2 s later" "find TARGET -type f -exec stat -c %s {} + > /dev/null" \
  "sleep 2" keep warm
bench "git clone --no-hardlinks" "git clone -q --no-hardlinks $W/repo TARGET/clone"
# One untimed status each first: the first after a clone refreshes the index.
for target in tmpfs bind hydra; do
  git clone -q --no-hardlinks "$W/big-repo" "$W/$target/big" && git -C "$W/$target/big" status >/dev/null
done
bench "git status, 20,000 files, 2 s later" "git -C TARGET/big status --porcelain" "sleep 2" keep warm
# The same from a cold cache as a user other than root (nobody), whose
# every lookup asks the file system with its identity and groups.
bench "git status as nobody, caches dropped" \
  "HOME=/nonexistent setpriv --reuid=65534 --regid=65534 --clear-groups git -c safe.directory='*' -C TARGET/big status --porcelain" true keep
note_rss
echo "hydra daemon peak RSS: $((peak / 1024)) MiB"
