#!/usr/bin/env bash
# Transforms benchmark: the cargo registry's sources on this machine (a
# text-heavy tree) imported with `hydra import dir` into a plain store, a
# zstd store (level 3), and a zstd + encrypted store; stored bytes (packs
# and index) and import speed side by side, medians of RUNS.
#
#   benches/transforms.sh        # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
SRC=${SRC:-$HOME/.cargo/registry/src}
D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-transforms-bench.XXXXXX")
trap 'rm -rf "$D"' EXIT
logical=$(du -sb --apparent-size "$SRC" | cut -f1)
files=$(find "$SRC" -type f | wc -l)
export HYDRA_PASSPHRASE=bench

median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)]}'; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
measure() { # name init-flags…
  local name=$1; shift
  local t=()
  for _ in $(seq 1 "$RUNS"); do
    rm -rf "$D/$name"; "$H" --store "$D/$name" init "$@" >/dev/null; sync
    t+=("$(time_of "$H" --store "$D/$name" import dir "$SRC" --fs src)")
  done
  local secs; secs=$(printf '%s\n' "${t[@]}" | median)
  local stored; stored=$(du -sb "$D/$name" | cut -f1)
  echo "$name $secs $stored"
}
read -r _ t_plain s_plain < <(measure plain)
read -r _ t_zstd s_zstd < <(measure zstd --compress zstd)
read -r _ t_enc s_enc < <(measure zstd-encrypted --compress zstd --encrypt)
mb() { echo "scale=1; $1 / 1048576" | bc -l; }
mbs() { echo "scale=0; $logical / 1000000 / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo "== import dir of $files files, $(mb "$logical") MiB ($SRC); medians of $RUNS =="
printf '%-22s %9s %12s %10s %10s\n' store time "MB/s in" "stored MiB" "ratio"
printf '%-22s %8ss %12s %10s %10s\n' plain "$t_plain" "$(mbs "$t_plain")" "$(mb "$s_plain")" "1.00"
printf '%-22s %8ss %12s %10s %10s\n' "zstd level 3" "$t_zstd" "$(mbs "$t_zstd")" "$(mb "$s_zstd")" "$(ratio "$s_plain" "$s_zstd")"
printf '%-22s %8ss %12s %10s %10s\n' "zstd + encryption" "$t_enc" "$(mbs "$t_enc")" "$(mb "$s_enc")" "$(ratio "$s_plain" "$s_enc")"
