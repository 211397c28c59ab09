#!/usr/bin/env bash
# Redis volume benchmark, side by side in one run: the same store work on
# the embedded volume (SQLite index + pack files, on the disk) and on a
# local Redis Cluster (3 masters with a replica each, writes acknowledged
# once a replica has them):
#   blob put / cat of 256 MiB of random bytes (64 KiB chunks on average);
#   a 30,000-file tar import (0-16 KiB files, 316 directories).
#
#   benches/redis.sh            # RUNS=3 by default
#
# Prints medians and ratios. Needs redis-server, redis-tools, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
command -v redis-server >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-redis-bench.XXXXXX)
D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-redis-bench.XXXXXX")
ports=(27001 27002 27003 27004 27005 27006)
cleanup() {
  for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$W" "$D"
}
trap cleanup EXIT
for p in "${ports[@]}"; do
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --cluster-enabled yes --cluster-config-file "$D/nodes-$p.conf" --dir "$D" \
    --repl-diskless-sync-delay 0 --logfile "$D/redis-$p.log"
done
sleep 1
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 --cluster-yes >/dev/null
until redis-cli -p 27001 cluster info | grep -q cluster_state:ok; do sleep 0.2; done
sleep 2

head -c 256M /dev/urandom > "$W/random.bin"
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
tar -cf "$W/small.tar" -C "$W/small" .

median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)]}'; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
run() { local setup=$1; shift; local t=(); for _ in $(seq 1 "$RUNS"); do eval "$setup"; sync; t+=("$(time_of "$@")"); done; printf '%s\n' "${t[@]}" | median; }
flush() { for p in 27001 27002 27003; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done; }
init_local() { rm -rf "$D/local"; "$H" --store "$D/local" init >/dev/null; }
init_redis() { flush; rm -rf "$D/redis"; "$H" --store "$D/redis" init --volume redis://127.0.0.1:27001 >/dev/null; }

put_l=$(run init_local "$H" --store "$D/local" blob put "$W/random.bin" --ref blob/r)
put_r=$(run init_redis "$H" --store "$D/redis" blob put "$W/random.bin" --ref blob/r)
cid_l=$("$H" --store "$D/local" ref get blob/r | tail -1)
cid_r=$("$H" --store "$D/redis" ref get blob/r | tail -1)
get_l=$(run : "$H" --store "$D/local" blob cat "$cid_l")
get_r=$(run : "$H" --store "$D/redis" blob cat "$cid_r")
tar_l=$(run init_local "$H" --store "$D/local" import tar "$W/small.tar" --fs bench)
tar_r=$(run init_redis "$H" --store "$D/redis" import tar "$W/small.tar" --fs bench)

mbs() { echo "scale=0; 256 / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo "== Redis Cluster (3 masters + 3 replicas, loopback) vs the embedded volume (disk); medians of $RUNS =="
printf '%-40s %10s %10s %8s\n' "" embedded redis "ratio"
printf '%-40s %8s s %8s s %7sx\n' "blob put 256 MiB (64 KiB chunks)" "$put_l" "$put_r" "$(ratio "$put_r" "$put_l")"
printf '%-40s %6s MB/s %6s MB/s\n' "  as throughput" "$(mbs "$put_l")" "$(mbs "$put_r")"
printf '%-40s %8s s %8s s %7sx\n' "blob cat 256 MiB" "$get_l" "$get_r" "$(ratio "$get_r" "$get_l")"
printf '%-40s %6s MB/s %6s MB/s\n' "  as throughput" "$(mbs "$get_l")" "$(mbs "$get_r")"
printf '%-40s %8s s %8s s %7sx\n' "import tar, 30,000 files" "$tar_l" "$tar_r" "$(ratio "$tar_r" "$tar_l")"
