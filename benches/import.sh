#!/usr/bin/env bash
# Import benchmark: hydra's tar import beside tar -x onto tmpfs (the limit),
# restic backup and borg create of the same tree, in one run.
#
#   benches/import.sh            # 30,000 small files, then 1 GiB of large files
#
# Prints medians of RUNS runs and ratios to tar -x. Needs: tar, restic,
# borgbackup, python3 (installed with apt-get when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
for tool in restic borg python3; do
  command -v "$tool" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup python3 >/dev/null; break; }
done
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-bench.XXXXXX)   # tmpfs: sources, tar -x target
D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-bench.XXXXXX")  # disk: stores and repositories
trap 'rm -rf "$W" "$D"' EXIT

python3 - "$W" <<'PY'
import os, random, sys
w = sys.argv[1]; random.seed(1); n = 0
for d in range(316):
    p = f"{w}/small/d{d // 20}/sub{d}"; os.makedirs(p, exist_ok=True)
    for f in range(95):
        if n >= 30000: break
        with open(f"{p}/file{f}.dat", "wb") as fh: fh.write(os.urandom(random.randint(0, 16384)))
        n += 1
os.makedirs(f"{w}/large", exist_ok=True)
for i in range(8):
    with open(f"{w}/large/big{i}.bin", "wb") as fh:
        for _ in range(128): fh.write(os.urandom(1 << 20))
PY
tar -cf "$W/small.tar" -C "$W/small" .
tar -cf "$W/large.tar" -C "$W/large" .

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

run() { # name setup-cmd cmd...
  local name=$1 setup=$2; shift 2
  local times=()
  for _ in $(seq 1 "$RUNS"); do
    eval "$setup"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    times+=("$(time_of "$@")")
  done
  printf '%s\n' "${times[@]}" | median
}

for set in small large; do
  bytes=$(stat -c %s "$W/$set.tar")
  t_tar=$(run "tar -x" "rm -rf $W/x && mkdir $W/x" tar -xf "$W/$set.tar" -C "$W/x")
  t_hydra=$(run hydra "rm -rf $D/store" "$H" --store "$D/store" import tar "$W/$set.tar" --fs bench)
  t_restic=$(run restic "rm -rf $D/restic && RESTIC_PASSWORD=x restic init -q -r $D/restic" \
    env RESTIC_PASSWORD=x restic -q -r "$D/restic" backup "$W/$set")
  t_borg=$(run borg "rm -rf $D/borg && BORG_PASSPHRASE= borg init -e none $D/borg" \
    env BORG_PASSPHRASE= borg create "$D/borg::a" "$W/$set")
  echo "== $set: $(( bytes / 1048576 )) MiB tar, medians of $RUNS =="
  for pair in "tar -x onto tmpfs:$t_tar" "hydra import tar:$t_hydra" "restic backup:$t_restic" "borg create:$t_borg"; do
    n=${pair%%:*}; t=${pair##*:}
    printf '%-22s %7.2f s  %6.0f MB/s  %5.2fx tar -x\n' "$n" "$t" "$(echo "$bytes / $t / 1000000" | bc -l)" "$(echo "$t / $t_tar" | bc -l)"
  done
done
# A second import of the same archive into another filesystem: stored bytes added.
rm -rf "$D/store"
"$H" --store "$D/store" import tar "$W/small.tar" --fs one >/dev/null
b1=$("$H" --store "$D/store" --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["block_bytes"])')
"$H" --store "$D/store" import tar "$W/small.tar" --fs two >/dev/null
b2=$("$H" --store "$D/store" --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["block_bytes"])')
echo "second import of small.tar added $((b2 - b1)) bytes ($(echo "100 * ($b2 - $b1) / $(stat -c %s "$W/small.tar")" | bc -l | cut -c1-6)% of the archive)"
