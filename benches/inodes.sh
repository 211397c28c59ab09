#!/usr/bin/env bash
# Daemon memory against inodes: `hydra import tar` of FILES small files
# (in directories of 1,000), a `find` over them through a FUSE mount, then
# the kernel told to drop its dentries (it FORGETs them and the daemon
# unloads), then the same `find` again. Prints the daemon's RSS and inode counts after each step.
#
#   benches/inodes.sh               # 400,000 files, default --max-inodes
#   FILES=100000 MAX_INODES=20000 benches/inodes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-400000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-inodes.XXXXXX)
export HYDRA_STORE="$W/store"
cleanup() { "$H" umount "$W/mnt" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
python3 - "$W/many.tar" "$FILES" <<'PY'
import io, sys, tarfile
path, files = sys.argv[1], int(sys.argv[2])
with tarfile.open(path, "w") as t:
    for i in range(files):
        if i % 1000 == 0:
            d = tarfile.TarInfo(f"d{i // 1000:04}"); d.type = tarfile.DIRTYPE; d.mode = 0o755
            t.addfile(d)
        data = f"{i}\n".encode()
        f = tarfile.TarInfo(f"d{i // 1000:04}/f{i % 1000:04}"); f.size = len(data); f.mode = 0o644
        t.addfile(f, io.BytesIO(data))
PY
/usr/bin/time -o "$W/time" -f '%e %M' "$H" import tar --fs many "$W/many.tar" >/dev/null 2>&1
imp=$(cat "$W/time")
printf '%-34s RSS %4d MiB peak (%s s)\n' "import tar of $FILES files" "$(( ${imp#* } / 1024 ))" "${imp% *}"
mkdir "$W/mnt"
"$H" mount many "$W/mnt" ${MAX_INODES:+--max-inodes "$MAX_INODES"} >/dev/null
pid=$("$H" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pid"])')
report() {
  sleep 1.5   # the daemon refreshes its status twice a second
  local rss counts
  rss=$(awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$pid/status")
  counts=$("$H" --json status | python3 -c 'import json,sys; m=json.load(sys.stdin)[0]; print(m["inodes"], "in memory,", m["unloaded"], "unloaded")')
  printf '%-34s RSS %4d MiB   %s\n' "$1" "$rss" "$counts"
}
report "mounted"
t=$( { /usr/bin/time -f %e find "$W/mnt" -type f | wc -l >/dev/null; } 2>&1 )
report "find over $FILES files (${t} s)"
echo 2 > /proc/sys/vm/drop_caches
report "kernel dropped its dentries"
t=$( { /usr/bin/time -f %e find "$W/mnt" -type f | wc -l >/dev/null; } 2>&1 )
report "find again (${t} s)"
