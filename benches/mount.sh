#!/usr/bin/env bash
# Reading a 1 GiB file sequentially from `cairn mount`, next to `cairn cat`
# of the same file (the target: the mount within 1.5x of cat), and next to
# `restic mount` of the same data if restic is installed.
#
#   benches/mount.sh [WORKDIR]      (default ${TMPDIR:-/tmp}/cairn-mount-bench)
#
# Data: one file of 1 GiB made of real files of /usr/lib concatenated (so
# it compresses as real data does), snapshotted into a fresh store. Every
# run starts from warm packs (read once untimed) and, for the mounts, a
# fresh mount (so nothing comes from the kernel's page cache of the
# mounted file). Best of 3 runs each.
#
# Needs /dev/fuse and root (or fusermount); restic optional (apt-get install
# restic). Results go to stdout and benches/results/DATE-HOST-mount.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/cairn-mount-bench}
cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
build_release "$here"
for m in "$work/mnt" "$work/rmnt"; do fusermount -u -z "$m" 2>/dev/null || true; done
rm -rf "$work"
mkdir -p "$work/data" "$work/mnt" "$work/rmnt"

# head stops reading at 1 GiB, so the cat loop dies of SIGPIPE: expected.
{ pick /usr/lib 2048 | while read -r f; do cat "$f"; done || true; } | head -c $((1 << 30)) >"$work/data/big.bin" || true
size=$(stat -c %s "$work/data/big.bin")
store=$work/store
"$cairn" --store "$store" init -q
"$cairn" --store "$store" snapshot -q "$work/data"
export RESTIC_REPOSITORY=$work/restic RESTIC_PASSWORD=bench
restic=$(command -v restic || true)
if [ -n "$restic" ]; then
  restic init -q
  restic backup -q "$work/data" >/dev/null
fi

warm() { sync; cat "$store"/packs/*/*.pack >/dev/null; [ -z "$restic" ] || cat -- "$work"/restic/data/*/* >/dev/null; }

# label, command...: best wall time of 3 runs, in seconds.
best_of_3() {
  local label=$1 best=
  shift
  for _ in 1 2 3; do
    warm
    "$@" >"$work/wall"
    best=$(awk -v a="${best:-1e9}" -v b="$(cat "$work/wall")" 'BEGIN { print (b < a) ? b : a }')
  done
  printf '%-30s %6.2f s  %5.0f MiB/s\n' "$label" "$best" "$(awk -v s="$size" -v t="$best" 'BEGIN { print s / 1048576 / t }')"
  echo "$best" >"$work/last"
}

timed() { # command...: prints its wall time
  /usr/bin/time -o "$work/time.txt" -f '%e' "$@" >/dev/null
  cat "$work/time.txt"
}

wait_for() { # path: until it exists
  for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done
  echo "mount.sh: $1 never appeared" >&2
  exit 1
}

cat_run() { timed "$cairn" --store "$store" cat latest "$work/data/big.bin"; }

mount_run() {
  "$cairn" --store "$store" mount -q "$work/mnt" &
  local pid=$!
  wait_for "$work/mnt/snapshots/latest"
  timed cat "$work/mnt/snapshots/latest$work/data/big.bin"
  kill -TERM "$pid"
  wait "$pid"
}

restic_run() {
  restic mount -q "$work/rmnt" >/dev/null 2>&1 &
  local pid=$!
  wait_for "$work/rmnt/snapshots/latest"
  timed cat "$work/rmnt/snapshots/latest$work/data/big.bin"
  fusermount -u "$work/rmnt"
  wait "$pid" || true
}

{
  echo "# mount benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) cores, $(uname -r)"
  echo "# cairn $(git -C "$here" rev-parse --short HEAD)${restic:+; $(restic version | head -1)}"
  echo "# data: one file of $((size / 1048576)) MiB (/usr/lib files concatenated); cairn packs: $(($(cat "$store"/packs/*/*.pack | wc -c) / 1048576)) MiB"
  echo "# sequential read of the whole file to /dev/null, warm packs, best of 3"
  best_of_3 "cairn cat" cat_run
  cat_wall=$(cat "$work/last")
  best_of_3 "cat from cairn mount" mount_run
  mount_wall=$(cat "$work/last")
  if [ -n "$restic" ]; then
    best_of_3 "cat from restic mount" restic_run
    restic_wall=$(cat "$work/last")
  fi
  awk -v m="$mount_wall" -v c="$cat_wall" -v r="${restic_wall:-0}" 'BEGIN {
    printf "cairn mount / cairn cat: %.2fx (target: at most 1.5x)\n", m / c
    if (r > 0) printf "cairn mount / restic mount: %.2fx\n", m / r
  }'
} | tee "$here/benches/results/$(date +%Y-%m-%d)-$(hostname)-mount.txt"
fusermount -u -z "$work/mnt" 2>/dev/null || true
