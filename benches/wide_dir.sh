#!/usr/bin/env bash
# Peak memory of cairn on one flat directory of many files (#14 item 17).
#
#   benches/wide_dir.sh [WORKDIR] [FILES]   (defaults: /dev/shm/cairn-wide, 300000)
#   CAIRN_BIN=path/to/cairn benches/wide_dir.sh ...   (an older build, to compare)
#
# Builds FILES small files (`file N\n`, each one its own chunk) in one
# directory, then runs with /usr/bin/time -v: a first snapshot, a no-change
# snapshot, a snapshot after one file changed (the directory's tree is
# encoded again against its parent's), and a restore into an empty target.
# WORKDIR on tmpfs keeps the disk out of it. Prints each step's wall time and
# peak RSS; results go to benches/results/ by hand, with the machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/dev/shm/cairn-wide}
files=${2:-300000}
cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
if [ -n "${CAIRN_BIN:-}" ]; then
  cairn=$CAIRN_BIN
else
  build_release "$here"
fi

src=$work/wide-$files
if [ "$(find "$src" -maxdepth 1 -type f 2>/dev/null | wc -l)" != "$files" ]; then
  rm -rf "$src"
  mkdir -p "$src"
  python3 - "$src" "$files" <<'EOF'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/file-{i:06d}.txt", "w") as f:
        f.write(f"file {i}\n")
EOF
fi

store=$work/store
rm -rf "$store" "$work/target"
"$cairn" --store "$store" init --quiet >/dev/null

step() {
  local name=$1
  shift
  /usr/bin/time -v "$@" >/dev/null 2>"$work/time.txt"
  printf '%-22s wall %8s  peak RSS %7d KiB\n' "$name" \
    "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")" \
    "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")"
}

step "first snapshot" "$cairn" --store "$store" --quiet snapshot "$src"
sleep 1.2 # past the racy-timestamp window: the next snapshot reuses every file
step "no-change snapshot" "$cairn" --store "$store" --quiet snapshot "$src"
echo changed >"$src/file-000000.txt"
sleep 1.2
step "one-change snapshot" "$cairn" --store "$store" --quiet snapshot "$src"
step "restore" "$cairn" --store "$store" --quiet restore latest --target "$work/target"
rm -rf "$work/target"
