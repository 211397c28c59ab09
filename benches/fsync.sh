#!/usr/bin/env bash
# fsync-bound work: hydra's mount (store on the disk) beside the disk's own
# filesystem and bindfs over it, in one run, medians of RUNS.
#
#   benches/fsync.sh          # N=300 transactions or files per run, RUNS=5
#
# Workloads: sql, N SQLite transactions of one insert each (WAL,
# synchronous=FULL: one fsync each); files, N new small files each
# written and fsync'd (one Python process); bigdir, N/3 new files each
# fsync'd in a directory of 10,000 (made untimed); journal, 2N/3
# transactions that each update one row of a 20 MB SQLite database in
# its default rollback-journal mode (synchronous=FULL: two fsyncs each);
# pg, PostgreSQL (`initdb`, `pgbench -i -s 5`, untimed) running
# `pgbench -c 4` for 5N/3 transactions of its TPC-B-like default (a WAL
# fsync per commit, which postgres groups across its clients).
# A fsync through hydra commits the filesystem, so these show what a
# commit costs. Needs bindfs, sqlite3, python3, postgresql (installed
# with apt-get when missing).
set -euo pipefail
shopt -s inherit_errexit # a failing step inside $(workload) stops the run
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5} N=${N:-300}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
command -v bindfs >/dev/null && command -v sqlite3 >/dev/null && ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 ||
  { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bindfs sqlite3 python3 postgresql >/dev/null; }
PG=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d "${TMPDIR:-/tmp}/hydra-fsync.XXXXXX")
chmod 0755 "$W" # postgres's user reaches its data directory through it
export HYDRA_STORE="$W/store"
mkdir -p "$W/disk" "$W/src" "$W/bind" "$W/hydra"
cleanup() {
  for d in "$W"/*/run/data; do [ -d "$d" ] && runuser -u postgres -- "$PG/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1; done || true
  "$H" umount "$W/hydra" >/dev/null 2>&1 || true
  fusermount3 -u "$W/bind" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
bindfs "$W/src" "$W/bind"
"$H" mount fsync "$W/hydra" --allow-other >/dev/null 2>&1

sql() { # dir: N one-insert transactions
  python3 - "$1" "$N" <<'EOF'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1] + "/db", isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
t = time.perf_counter()
for i in range(int(sys.argv[2])):
    db.execute("INSERT INTO t(v) VALUES (randomblob(100))")
print(time.perf_counter() - t)
EOF
}
files() { # dir: N new files, each written and fsync'd
  python3 - "$1" "$N" <<'EOF'
import os, sys, time
t = time.perf_counter()
for i in range(int(sys.argv[2])):
    with open("%s/f%d" % (sys.argv[1], i), "wb") as f:
        f.write(b"%d\n" % i); f.flush(); os.fsync(f.fileno())
print(time.perf_counter() - t)
EOF
}
bigdir() { # dir: N/3 fsync'd new files among 10,000
  python3 - "$1" "$((N / 3))" <<'EOF'
import os, sys, time
d = sys.argv[1]
for i in range(10000):
    with open("%s/x%d" % (d, i), "wb") as f:
        f.write(b"x")
os.sync()
t = time.perf_counter()
for i in range(int(sys.argv[2])):
    with open("%s/f%d" % (d, i), "wb") as f:
        f.write(b"%d\n" % i); f.flush(); os.fsync(f.fileno())
print(time.perf_counter() - t)
EOF
}
journal() { # dir: 2N/3 one-row updates of a 20 MB rollback-journal database
  python3 - "$1" "$((2 * N / 3))" <<'EOF'
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1] + "/db", isolation_level=None)
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
db.execute("BEGIN")
for i in range(20000):
    db.execute("INSERT INTO t(v) VALUES (randomblob(1000))")
db.execute("COMMIT")
os.sync()
t = time.perf_counter()
for i in range(int(sys.argv[2])):
    db.execute("UPDATE t SET v = randomblob(1000) WHERE id = ?", (1 + i * 7919 % 20000,))
print(time.perf_counter() - t)
EOF
}
pg() { # dir: 5N/3 pgbench transactions from 4 clients on a new cluster
  local sock
  sock=$(mktemp -d /tmp/hydra-pg.XXXXXX)
  mkdir "$1/data" && chown postgres "$sock" "$1/data" && chmod 0700 "$1/data"
  runuser -u postgres -- "$PG/initdb" -A trust -D "$1/data" >/dev/null
  runuser -u postgres -- "$PG/pg_ctl" -D "$1/data" -l "$sock/log" -w -o "-k $sock -c listen_addresses=''" start >/dev/null
  runuser -u postgres -- "$PG/pgbench" -h "$sock" -i -q -s 5 postgres >/dev/null 2>&1
  local t0 t1
  t0=$(date +%s.%N)
  runuser -u postgres -- "$PG/pgbench" -h "$sock" -n -c 4 -t "$((5 * N / 12))" postgres >/dev/null
  t1=$(date +%s.%N)
  runuser -u postgres -- "$PG/pg_ctl" -D "$1/data" -m fast stop >/dev/null
  rm -rf "$sock"
  echo "$t1 - $t0" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for work in ${WORKS:-sql files bigdir journal pg}; do
  declare -A t=([disk]="" [bind]="" [hydra]="")
  for _ in $(seq "$RUNS"); do
    for target in disk bind hydra; do
      d="$W/$target/run"
      rm -rf "$d"; mkdir "$d"
      t[$target]+=" $($work "$d")"
    done
  done
  # shellcheck disable=SC2086
  d=$(median ${t[disk]}) b=$(median ${t[bind]}) h=$(median ${t[hydra]})
  printf '%-7s x%d   disk %6.3f s   bindfs %6.3f s   hydra %6.3f s   hydra/disk %5.1fx   hydra/bindfs %5.1fx\n' \
    "$work" "$(case $work in bigdir) echo $((N / 3)) ;; journal) echo $((2 * N / 3)) ;; pg) echo $((5 * N / 3)) ;; *) echo "$N" ;; esac)" "$d" "$b" "$h" "$(echo "$h / $d" | bc -l)" "$(echo "$h / $b" | bc -l)"
done
