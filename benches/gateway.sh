#!/usr/bin/env bash
# HTTP gateway benchmark, side by side in one run: the same tree (a 1 GiB
# file of random bytes and 1,000 files of 4 KiB) served by nginx from
# tmpfs and by `hydra gateway` from a store on tmpfs.
#   1 GiB download with curl (medians of RUNS), MB/s;
#   small-file requests/s with wrk (2 threads, 32 connections, 10 s).
#
#   benches/gateway.sh          # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-gw-bench.XXXXXX)
trap 'kill $(cat "$W/nginx.pid" 2>/dev/null) 2>/dev/null || true; kill $GW 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/tree/small"
head -c 1G /dev/urandom > "$W/tree/big.bin"
for i in $(seq 1 1000); do head -c 4096 /dev/urandom > "$W/tree/small/f$i.dat"; done
"$H" --store "$W/store" import dir "$W/tree" --fs site >/dev/null

cat > "$W/nginx.conf" <<CONF
user root;
worker_processes auto;
pid $W/nginx.pid;
error_log $W/nginx.err;
daemon on;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  server { listen 127.0.0.1:28080; root $W/tree; }
}
CONF
nginx -c "$W/nginx.conf"
"$H" --store "$W/store" gateway --read-only --listen 127.0.0.1:28081 >/dev/null 2>&1 &
GW=$!
until curl -sf http://127.0.0.1:28081/healthz >/dev/null; do sleep 0.1; done

median() { sort -n | awk '{a[NR]=$1} END {printf "%.0f\n", a[int((NR+1)/2)]}'; }
download() { for _ in $(seq 1 "$RUNS"); do curl -s -o /dev/null -w '%{speed_download}\n' "$1"; done | median; }
rps() { wrk -t2 -c32 -d10s "$1" | awk '/Requests\/sec/ {printf "%.0f\n", $2}'; }

d_nginx=$(download http://127.0.0.1:28080/big.bin)
d_hydra=$(download http://127.0.0.1:28081/fs/site/big.bin)
r_nginx=$(rps http://127.0.0.1:28080/small/f17.dat)
r_hydra=$(rps http://127.0.0.1:28081/fs/site/small/f17.dat)
ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo "== gateway vs nginx (both from tmpfs, loopback) =="
printf '%-34s %12s %12s %8s\n' "" nginx hydra "hydra/nginx"
printf '%-34s %9s MB/s %7s MB/s %8s\n' "1 GiB download (median of $RUNS)" "$((d_nginx / 1000000))" "$((d_hydra / 1000000))" "$(ratio "$d_hydra" "$d_nginx")"
printf '%-34s %11s/s %10s/s %8s\n' "4 KiB file, wrk -t2 -c32 -d10s" "$r_nginx" "$r_hydra" "$(ratio "$r_hydra" "$r_nginx")"
