#!/usr/bin/env bash
# Prune on a store of many blobs: time and peak memory of
# `forget --keep-last 3 --prune`, next to restic doing the same.
#
#   benches/prune.sh [SIZE_MB] [NIGHTS]
#       SIZE_MB  size of the generated SQLite database (default 300)
#       NIGHTS   nightly snapshots after the first (default 7)
#
# A database from examples/sqlite_gen.rs is cut into 4 KiB page runs, so a
# 300 MiB database is ~77k blobs, and each night (1.5% of rows changed)
# adds ~11% of them again: a store of ~130k blobs in packs that share live
# and dead blobs, so prune must mark, delete and repack. A tree of 20k small
# files (one blob each) is snapshotted with it. The same snapshots go into a
# restic repository if restic is installed (apt-get install restic); it is
# not installed by this script.
#
# Work files go to ${TMPDIR:-/tmp}/cairn-prune-bench, wiped at the start.
# Results go to stdout and benches/results/DATE-HOST-prune.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size_mb=${1:-300}
nights=${2:-7}
seed=1
work=${TMPDIR:-/tmp}/cairn-prune-bench

cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
build_release "$here" gen

rm -rf "$work"
mkdir -p "$work/src/files"
db=$work/src/app.db
store=$work/cairn
export RESTIC_REPOSITORY=$work/restic RESTIC_PASSWORD=bench
if command -v restic >/dev/null; then restic=restic; else
  restic=
  echo "prune.sh: restic is not installed (apt-get install restic); measuring cairn only" >&2
fi

measure() { # label, command...: prints wall, CPU and peak RSS
  local label=$1
  shift
  sync
  /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$@" >"$work/out.txt" 2>"$work/err.txt" || {
    echo "prune.sh: failed: $*" >&2
    cat "$work/out.txt" "$work/err.txt" >&2
    exit 1
  }
  read -r wall user sys rss <"$work/time.txt"
  printf '%-28s wall %6.2f s  cpu %6.2f s  peak RSS %4d MiB\n' "$label" "$wall" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" $((rss / 1024))
}

small_files() { # night: rewrite a tenth of the small files
  python3 - "$work/src/files" "$1" <<'PY'
import os, random, sys
root, night = sys.argv[1], int(sys.argv[2])
rng = random.Random(night)
for i in range(20000):
    if night == 0 or rng.random() < 0.1:
        d = os.path.join(root, f"d{i // 500:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            f.write(rng.randbytes(rng.randint(200, 6000)))
PY
}

"$cairn" --store "$store" init -q
[ -z "$restic" ] || restic init -q
"$gen" create "$db" --size-mb "$size_mb" --seed "$seed" >"$work/generate.log"
for night in $(seq 0 "$nights"); do
  if [ "$night" -gt 0 ]; then
    "$gen" night "$db" --night "$night" --seed "$seed" --churn 1.5 >>"$work/generate.log"
  fi
  small_files "$night"
  when=$(date -d "2026-01-01 + $night days 02:00" '+%Y-%m-%d %H:%M:%S')
  "$cairn" --store "$store" snapshot -q "$work/src" --time "$(date -d "$when" --rfc-3339=seconds | tr ' ' T)"
  [ -z "$restic" ] || restic backup -q --time "$when" "$work/src" >/dev/null
done

{
  echo "# prune benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) cores"
  echo "# cairn $(git -C "$here" rev-parse --short HEAD); ${restic:+$(restic version | head -1)}"
  echo "# database ${size_mb} MiB + 20k small files, $((nights + 1)) snapshots; forget --keep-last 3 --prune"
  echo "cairn store before: $(du -sb "$store" | cut -f1) bytes"
  measure "cairn forget+prune" "$cairn" --store "$store" --json forget --keep-last 3 --prune
  python3 - "$work/out.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["prune"]
print(f"  blobs live {r['blobs']['live']}, dead {r['blobs']['dead']}; packs {r['packs']}: "
      f"deleted {r['packs_deleted']}, written {r['packs_written']}, "
      f"repacked {r['bytes_repacked'] / 2**20:.1f} MiB, freed {r['bytes_freed'] / 2**20:.1f} MiB; "
      f"marking {r['mark_secs']:.2f} s")
PY
  echo "cairn store after:  $(du -sb "$store" | cut -f1) bytes"
  measure "cairn prune (nothing to do)" "$cairn" --store "$store" prune
  if [ -n "$restic" ]; then
    echo "restic repo before: $(du -sb "$RESTIC_REPOSITORY" | cut -f1) bytes"
    measure "restic forget+prune" restic forget -q --keep-last 3 --prune
    echo "restic repo after:  $(du -sb "$RESTIC_REPOSITORY" | cut -f1) bytes"
  fi
} | tee "$here/benches/results/$(date +%Y-%m-%d)-$(hostname)-prune.txt"
