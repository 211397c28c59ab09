#!/usr/bin/env bash
# A/B of two hydra binaries beside bindfs -o big_writes over tmpfs, in one
# run, interleaved, each hydra on its own daemon and store: the way to tell
# whether a change made a workload faster on this noisy machine.
#
#   benches/ab.sh BASE_BINARY NEW_BINARY [rw|hole|read]
#   git stash; cargo build --release -p hydra-mountd; cp "$CARGO_TARGET_DIR/release/hydra" /tmp/base
#   git stash pop; cargo build --release -p hydra-mountd
#   benches/ab.sh /tmp/base "$CARGO_TARGET_DIR/release/hydra" rw
#
# Workloads (caches dropped before each run): rw, 1,000 random 4 KiB
# writes into a 2 GiB file of random bytes, then fsync; hole, 1,000 random
# 512 B writes into a 16 GiB hole, then fsync; read, cat of the 2 GiB file.
# Prints each target's seconds (and, for writes, the fsync's share) and
# each hydra daemon's CPU-seconds, per run and as medians. RUNS=7 for more
# runs, STORE=disk for the hydra stores under $TMPDIR instead of tmpfs.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,16p' "$0"; exit 2; }
BASE=$(realpath "$1") NEW=$(realpath "$2") WORK=${3:-rw} RUNS=${RUNS:-5}
case $WORK in rw | hole | read) ;; *) echo "ab.sh: unknown workload $WORK (rw, hole, read)" >&2; exit 2 ;; esac
command -v bindfs >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bindfs python3 >/dev/null; }
W=$(mktemp -d /dev/shm/hydra-ab.XXXXXX)
if [ "${STORE:-tmpfs}" = disk ]; then S=$(mktemp -d "${TMPDIR:-/tmp}/hydra-ab.XXXXXX"); else S=$W; fi
declare -A BIN=([base]=$BASE [new]=$NEW) PID=()
mkdir -p "$W/src" "$W/bind" "$W/base" "$W/new"
cleanup() {
  for b in base new; do HYDRA_STORE=$S/store-$b "${BIN[$b]}" umount "$W/$b" >/dev/null 2>&1 || true; done
  fusermount3 -u "$W/bind" 2>/dev/null || true
  rm -rf "$W" "$S"
}
trap cleanup EXIT
bindfs -o big_writes "$W/src" "$W/bind"
for b in base new; do
  HYDRA_STORE=$S/store-$b "${BIN[$b]}" mount ab "$W/$b" >/dev/null 2>&1
  PID[$b]=$(HYDRA_STORE=$S/store-$b "${BIN[$b]}" --json status |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pid"])')
done
if [ "$WORK" != hole ]; then
  head -c 2G /dev/urandom > "$W/big.bin"
  for t in bind base new; do dd if="$W/big.bin" of="$W/$t/f" bs=1M conv=fsync status=none; done
  rm "$W/big.bin"
  # The first read after gigabytes of writes runs while the kernel still
  # reclaims: one untimed read of each first.
  [ "$WORK" = read ] && for t in bind base new; do cat "$W/$t/f" > /dev/null; done
fi
cat > "$W/rw.py" <<'PY'
import os, random, sys, time
path, n, size, hole = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if hole else 0))
if hole:
    os.ftruncate(fd, hole)
end = os.fstat(fd).st_size
t0 = time.time()
for _ in range(n):
    os.pwrite(fd, os.urandom(size), random.randrange(0, end - size))
t1 = time.time()
os.fsync(fd)
print(f"{time.time() - t0:.3f} {time.time() - t1:.3f}")
PY
cpu() { [ "$1" = bind ] && echo 0 || awk '{print ($14 + $15) / 100}' "/proc/${PID[$1]}/stat"; }
run() { # target: "seconds fsync-seconds"
  case $WORK in
    rw) python3 "$W/rw.py" "$W/$1/f" 1000 4096 0 ;;
    hole) python3 "$W/rw.py" "$W/$1/hole" 1000 512 $((16 << 30)) ;;
    read) local s e; s=$(date +%s.%N); cat "$W/$1/f" > /dev/null; e=$(date +%s.%N)
          echo "$(echo "$e - $s" | bc -l) 0" ;;
  esac
}
for _ in $(seq 1 "$RUNS"); do
  for t in bind base new; do
    sync; echo 3 > /proc/sys/vm/drop_caches
    c0=$(cpu "$t"); out=$(run "$t"); c1=$(cpu "$t")
    echo "$t $out $(echo "$c1 - $c0" | bc -l)"
  done
done | python3 -c '
import sys, statistics as st
rows = {}
for line in sys.stdin:
    t, secs, sync, cpu = line.split()
    rows.setdefault(t, []).append((float(secs), float(sync), float(cpu)))
pad = " " * 5
for t in ("bind", "base", "new"):
    r = rows[t]
    cols = [" ".join(f"{x[i]:.3f}" for x in r) for i in range(3)]
    med = [st.median(x[i] for x in r) for i in range(3)]
    print(f"{t:5} seconds {cols[0]} (median {med[0]:.3f})")
    if med[1] > 0:
        print(f"{pad} fsync   {cols[1]} (median {med[1]:.3f})")
    if t != "bind":
        print(f"{pad} cpu     {cols[2]} (median {med[2]:.2f})")
b, n = (st.median(x[0] for x in rows[k]) for k in ("base", "new"))
bind = st.median(x[0] for x in rows["bind"])
print(f"new/base {n / b:.2f}x   new/bindfs {n / bind:.2f}x")
'
