#!/usr/bin/env bash
# git view benchmark, side by side in one run:
#   import of a repository with thousands of commits (hydra git import)
#     vs git clone --mirror of it (local: hard links; --no-local: the pack
#     protocol, as from a server), stores and clones on the disk;
#   checkout of its head tree (about 3,600 files in 200 directories)
#     vs git checkout onto tmpfs.
#
#   benches/git.sh               # COMMITS=3000 RUNS=5 by default
#
# Prints medians of RUNS runs and ratios. Needs git and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
COMMITS=${COMMITS:-3000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hydra-target}"
for tool in git python3; do
  command -v "$tool" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git python3 >/dev/null; break; }
done
cargo build -q --release -p hydra-mountd
H="$CARGO_TARGET_DIR/release/hydra"
W=$(mktemp -d /dev/shm/hydra-git-bench.XXXXXX)       # tmpfs: checkout targets
D=$(mktemp -d "${TMPDIR:-/tmp}/hydra-git-bench.XXXXXX")  # disk: source, stores, clones
trap 'rm -rf "$W" "$D"' EXIT

python3 tests/fixtures/git_history.py "$D/src.git" "$COMMITS"
objects=$(git -C "$D/src.git" rev-list --all --objects | wc -l)
files=$(git -C "$D/src.git" ls-tree -r main | wc -l)
pack=$(du -sk "$D/src.git/objects/pack" | cut -f1)

median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)]}'; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
run() { # setup-cmd cmd...
  local setup=$1; shift
  local times=()
  for _ in $(seq 1 "$RUNS"); do
    eval "$setup"; sync
    times+=("$(time_of "$@")")
  done
  printf '%s\n' "${times[@]}" | median
}
ratio() { echo "scale=2; $1 / $2" | bc -l; }

t_mirror=$(run "rm -rf $D/m.git" git clone -q --mirror "$D/src.git" "$D/m.git")
t_mirror_nl=$(run "rm -rf $D/m.git" git clone -q --mirror --no-local "$D/src.git" "$D/m.git")
t_import=$(run "rm -rf $D/store" "$H" --store "$D/store" git import "$D/src.git" --as r)
t_reimport=$(run ":" "$H" --store "$D/store" git import "$D/src.git" --as r)
t_export=$(run "rm -rf $D/e.git" "$H" --store "$D/store" git export r "$D/e.git")
store=$(du -sk "$D/store" | cut -f1)

git clone -q --bare "$D/src.git" "$D/wt.git"
t_git_co=$(run "rm -rf $W/wt && mkdir $W/wt" git --git-dir="$D/wt.git" --work-tree="$W/wt" checkout -q -f main -- .)
t_hydra_co=$(run "rm -rf $D/co-store && cp -a $D/store $D/co-store" \
  "$H" --store "$D/co-store" git checkout r main --fs co)

echo "== git view: $COMMITS commits, $objects objects, ${pack} KiB pack; head tree $files files; medians of $RUNS =="
printf '%-44s %8s s\n' "git clone --mirror (local, hard links)" "$t_mirror"
printf '%-44s %8s s\n' "git clone --mirror --no-local (pack protocol)" "$t_mirror_nl"
printf '%-44s %8s s  (%sx local mirror, %sx --no-local)\n' "hydra git import" "$t_import" "$(ratio "$t_import" "$t_mirror")" "$(ratio "$t_import" "$t_mirror_nl")"
printf '%-44s %8s s\n' "hydra git import again (nothing new)" "$t_reimport"
printf '%-44s %8s s\n' "hydra git export (bare repository)" "$t_export"
printf '%-44s %8s KiB (git pack: %s KiB)\n' "hydra store after import" "$store" "$pack"
printf '%-44s %8s s\n' "git checkout onto tmpfs" "$t_git_co"
printf '%-44s %8s s  (%sx git)\n' "hydra git checkout into a filesystem" "$t_hydra_co" "$(ratio "$t_hydra_co" "$t_git_co")"
