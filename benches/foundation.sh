#!/usr/bin/env bash
# End-to-end throughput and memory of cairn's basic operations, on real files.
#
#   benches/foundation.sh [WORKDIR]     (default WORKDIR: /tmp/cairn-bench)
#
# Datasets, built deterministically without network:
#   mixed  ~1 GiB of real files copied from /usr (executables, libraries,
#          text and data), chosen by sorted path: the same set every run
#   small  100,000 small files (1-4 KiB of text each) in 1,000 directories
# Steps timed with /usr/bin/time -v (wall, CPU, peak RSS): first snapshot and
# no-change re-snapshot of each dataset, and a restore of `mixed`. Caches are
# warm (the data was just written), as they are for a nightly run of a busy
# machine. Results go to stdout and benches/results/DATE-HOST-foundation.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/cairn-bench}
mkdir -p "$work"
cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
build_release "$here"

make_mixed() {
  local dest=$work/mixed list=$work/mixed.list
  [ -d "$dest" ] && return
  mkdir -p "$dest"
  : >"$list"
  # 200 MiB of executables, 300 MiB of shared data (text, docs, icons),
  # 524 MiB of libraries; each set by sorted path, so it is the same every run.
  {
    pick /usr/bin 200
    pick /usr/share 300
    pick /usr/lib 524
  } >>"$list"
  tar -cf - --files-from="$list" 2>/dev/null | tar -xf - -C "$dest"
}

make_small() {
  local dest=$work/small
  [ -d "$dest" ] && return
  python3 - "$dest" <<'PY'
import os, sys, random
root = sys.argv[1]
rng = random.Random(42)
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
for d in range(1000):
    path = os.path.join(root, f"d{d:04}")
    os.makedirs(path)
    for f in range(100):
        n = rng.randint(1024, 4096)
        text = " ".join(rng.choice(words) for _ in range(n // 5))[:n]
        with open(os.path.join(path, f"f{f:03}.txt"), "w") as fh:
            fh.write(text)
PY
}

measure() { # name, command...
  local name=$1; shift
  local log=$work/time.log
  sync # the previous step's dirty pages must not be written back inside this one
  /usr/bin/time -v "$@" >"$work/out.log" 2>"$log" || { cat "$work/out.log" "$log"; exit 1; }
  local wall cpu rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$log")
  printf '%-34s %10s %9ss %8s MiB\n' "$name" "$wall" "$cpu" "$rss"
}

make_mixed
make_small
sleep 2 # let the racy-timestamp window pass, as it has for a nightly run
mixed_size=$(du -sb "$work/mixed" | cut -f1)
small_count=$(find "$work/small" -type f | wc -l)

store=$work/store
rm -rf "$store" "$work/restore"
sync
result=$here/benches/results/$(date +%F)-$(hostname)-foundation.txt
{
  echo "cairn foundation benchmark, $(date -Iseconds)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "cairn: $($cairn --version), $(git -C "$here" rev-parse --short HEAD)"
  echo "mixed: $((mixed_size / 1048576)) MiB in $(find "$work/mixed" -type f | wc -l) files; small: $small_count files"
  echo
  printf '%-34s %10s %10s %12s\n' step wall cpu "peak RSS"
  measure "init" "$cairn" --store "$store" init
  measure "mixed: first snapshot" "$cairn" --store "$store" -q snapshot "$work/mixed"
  measure "mixed: no-change snapshot" "$cairn" --store "$store" -q snapshot "$work/mixed"
  measure "small: first snapshot" "$cairn" --store "$store" -q snapshot "$work/small"
  measure "small: no-change snapshot" "$cairn" --store "$store" -q snapshot "$work/small"
  measure "mixed: restore" "$cairn" --store "$store" -q restore latest --path "$work/mixed" --target "$work/restore"
  measure "plain walk: find -printf (small)" find "$work/small" -printf '%s %T@ %C@ %i\n'
  echo
  echo "store size: $(du -sb "$store" | cut -f1 | awk '{printf "%.1f MiB", $1/1048576}')"
  echo "mixed compressed with zstd -3 alone: $(tar -cf - -C "$work" mixed | zstd -3 -T0 -q -c | wc -c | awk '{printf "%.1f MiB", $1/1048576}')"
} | tee "$result"
echo "written to $result"
