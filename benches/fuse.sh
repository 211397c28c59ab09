#!/usr/bin/env bash
# FUSE benchmark: hydra's mount beside bindfs -o big_writes over tmpfs (the
# FUSE floor) and tmpfs itself (the limit), in one run, medians of RUNS.
#
#   benches/fuse.sh
#
# Workloads: sequential write of a 2 GiB file of random bytes (dd
# conv=fsync), reading it back (cat, page cache dropped), tar -x of 30,000
# small files, git clone of a generated repository; and the daemon's peak
# RSS. Needs bindfs, git, python3 (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
command -v bindfs >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bindfs git python3 >/dev/null; }
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-fuse.XXXXXX)    # inputs and the tmpfs targets
D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-fuse.XXXXXX")  # the hydra store
export HYDRA_STORE="$D/store"
mkdir -p "$W/tmpfs" "$W/bind-src" "$W/bind" "$W/hydra"
cleanup() {
  "$H" umount "$W/hydra" >/dev/null 2>&1 || true
  fusermount3 -u "$W/bind" 2>/dev/null || umount "$W/bind" 2>/dev/null || true
  rm -rf "$W" "$D"
}
trap cleanup EXIT
bindfs -o big_writes "$W/bind-src" "$W/bind" 2>/dev/null || bindfs "$W/bind-src" "$W/bind"
"$H" mount bench "$W/hydra" >/dev/null

head -c 2G /dev/urandom > "$W/big.bin"
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

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { local s e; s=$(date +%s.%N); bash -c "$1" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
bench() { # label command-with-TARGET
  local label=$1 cmd=$2 t out=()
  for target in tmpfs bind hydra; do
    local ts=()
    for _ in $(seq 1 "$RUNS"); do
      rm -rf "$W/$target"/* 2>/dev/null || true
      [ "$target" = bind ] && rm -rf "$W/bind-src"/* 2>/dev/null
      sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
      ts+=("$(timed "${cmd//TARGET/$W/$target}")")
    done
    out+=("$(printf '%s\n' "${ts[@]}" | median)")
  done
  printf '%-34s tmpfs %7.2f s   bindfs %7.2f s   hydra %7.2f s   hydra/bindfs %5.2fx   hydra/tmpfs %5.2fx\n' \
    "$label" "${out[0]}" "${out[1]}" "${out[2]}" "$(echo "${out[2]} / ${out[1]}" | bc -l)" "$(echo "${out[2]} / ${out[0]}" | bc -l)"
}
bench "write 2 GiB (dd bs=1M conv=fsync)" "dd if=$W/big.bin of=TARGET/f bs=1M conv=fsync"
# Read back what was just written (each target keeps its last file).
for target in tmpfs bind hydra; do dd if="$W/big.bin" of="$W/$target/f" bs=1M conv=fsync 2>/dev/null; done
readback() { local ts=(); for _ in $(seq 1 "$RUNS"); do sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; ts+=("$(timed "cat $1 > /dev/null")"); done; printf '%s\n' "${ts[@]}" | median; }
r0=$(readback "$W/tmpfs/f"); r1=$(readback "$W/bind/f"); r2=$(readback "$W/hydra/f")
printf '%-34s tmpfs %7.2f s   bindfs %7.2f s   hydra %7.2f s   hydra/bindfs %5.2fx   hydra/tmpfs %5.2fx\n' \
  "read 2 GiB (cat, caches dropped)" "$r0" "$r1" "$r2" "$(echo "$r2 / $r1" | bc -l)" "$(echo "$r2 / $r0" | bc -l)"
bench "tar -x of 30,000 small files" "tar -xf $W/small.tar -C TARGET"
bench "git clone --no-hardlinks" "git clone -q --no-hardlinks $W/repo TARGET/clone"
pid=$("$H" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pid"])')
echo "hydra daemon peak RSS: $(awk '/VmHWM/ {print $2 / 1024 " MiB"}' /proc/$pid/status)"
