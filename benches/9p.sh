#!/usr/bin/env bash
# 9P benchmark: `hydra serve` beside diod (Debian's 9P2000.L server)
# exporting tmpfs, in one run, medians of RUNS, through the same clients.
#
#   benches/9p.sh            (RUNS=5 MIB=1024 FILES=1000 to change sizes)
#
# Clients: tests/examples/ninep_bench.rs (one request in flight, each
# side at the largest msize it grants: hydra 1 MiB, diod 64 KiB) for
# sequential write and read of MIB MiB and create + stat + remove of FILES
# files; and diod's own diodcat for the read. hydra's store is on the disk
# (its default); a second hydra column keeps the store on tmpfs like diod.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
MIB=${MIB:-1024}
FILES=${FILES:-1000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
command -v diod >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq diod >/dev/null; }
cargo build -q --release -p hydra-mountd
cargo build -q --release -p hydra-tests --example ninep_bench
H="$CARGO_TARGET_DIR/release/hydra"
B="$CARGO_TARGET_DIR/release/examples/ninep_bench"
W=$(mktemp -d /dev/shm/hydra-9p.XXXXXX)
D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-9p.XXXXXX")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PD=$(port); PH=$(port); PT=$(port)
mkdir -p "$W/diod"
diod -f -n -l "127.0.0.1:$PD" -e "$W/diod" >/dev/null 2>&1 &
DIOD=$!
"$H" --store "$D/store" serve bench --listen "tcp:127.0.0.1:$PH" >/dev/null
"$H" --store "$W/store" serve bench --listen "tcp:127.0.0.1:$PT" >/dev/null
cleanup() {
  kill "$DIOD" 2>/dev/null || true
  "$H" --store "$D/store" umount "tcp:127.0.0.1:$PH" >/dev/null 2>&1 || true
  "$H" --store "$W/store" umount "tcp:127.0.0.1:$PT" >/dev/null 2>&1 || true
  rm -rf "$W" "$D"
}
trap cleanup EXIT
sleep 0.5

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# run OP ARG: prints the median rate of each server (diod, hydra disk, hydra tmpfs)
run() {
  local op=$1 arg=$2 out=()
  for target in "127.0.0.1:$PD $W/diod 65536" "127.0.0.1:$PH bench 1048576" "127.0.0.1:$PT bench 1048576"; do
    set -- $target
    local rates=()
    for _ in $(seq 1 "$RUNS"); do
      rates+=("$("$B" "$1" "$2" "$op" "$arg" "$3" | awk '{print $2}')")
    done
    out+=("$(printf '%s\n' "${rates[@]}" | median)")
  done
  echo "${out[*]}"
}
diodcat_read() {
  local out=()
  for target in "127.0.0.1:$PD $W/diod 65536" "127.0.0.1:$PH bench 1048576" "127.0.0.1:$PT bench 1048576"; do
    set -- $target
    local rates=()
    for _ in $(seq 1 "$RUNS"); do
      local s e
      s=$(date +%s.%N)
      diodcat -s "$1" -a "$2" -m "$3" /bench.dat >/dev/null
      e=$(date +%s.%N)
      rates+=("$(echo "$MIB * 1.048576 / ($e - $s)" | bc -l)")
    done
    out+=("$(printf '%s\n' "${rates[@]}" | median)")
  done
  echo "${out[*]}"
}
report() { # label unit d h t
  printf '%-40s diod %8.1f   hydra(disk) %8.1f (%4.2fx)   hydra(tmpfs) %8.1f (%4.2fx) %s\n' \
    "$1" "$3" "$4" "$(echo "$4 / $3" | bc -l)" "$5" "$(echo "$5 / $3" | bc -l)" "$2"
}
echo "== 9P: medians of $RUNS runs (ratios: hydra / diod, higher is better) =="
read -r d h t <<<"$(run write "$MIB")"; report "sequential write $MIB MiB + fsync" MB/s "$d" "$h" "$t"
read -r d h t <<<"$(run read "$MIB")"; report "sequential read $MIB MiB (ninep_bench)" MB/s "$d" "$h" "$t"
read -r d h t <<<"$(diodcat_read)"; report "sequential read $MIB MiB (diodcat)" MB/s "$d" "$h" "$t"
read -r d h t <<<"$(run meta "$FILES")"; report "create+stat+remove $FILES files" ops/s "$d" "$h" "$t"
