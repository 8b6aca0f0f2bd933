#!/usr/bin/env bash
# `cairn verify --read-data` on a ~1 GiB store next to the machine's ceiling
# for the same work on all cores: BLAKE3 of every pack file (b3sum, which
# uses every core), then zstd decompression of every compressed blob and
# BLAKE3 of the decompressed bytes (the frames split into one file per core,
# each piped `zstd -d | b3sum` in parallel); and next to
# `restic check --read-data` on the same files if restic is installed.
#
#   benches/verify.sh [WORKDIR]      (default ${TMPDIR:-/tmp}/cairn-verify-bench)
#
# Data: ~1 GiB of /usr (executables, shared data, libraries, by sorted path,
# the same set benches/foundation.sh uses). Caches are warm for every tool
# (each step follows a sync and one untimed read of the store).
#
# Needs b3sum (cargo install b3sum), zstd, python3 and /usr/bin/time; restic
# optional (apt-get install restic). Nothing is installed by this script.
# Results go to stdout and benches/results/DATE-HOST-verify.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/cairn-verify-bench}
for tool in b3sum zstd python3; do
  command -v "$tool" >/dev/null || { echo "verify.sh: needs $tool" >&2; exit 2; }
done
cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
build_release "$here"
rm -rf "$work"
mkdir -p "$work/data"

{ pick /usr/bin 200; pick /usr/share 300; pick /usr/lib 524; } >"$work/list"
tar -cf - --files-from="$work/list" 2>/dev/null | tar -xf - -C "$work/data"

store=$work/store
"$cairn" --store "$store" init -q
"$cairn" --store "$store" snapshot -q "$work/data"
export RESTIC_REPOSITORY=$work/restic RESTIC_PASSWORD=bench
restic=$(command -v restic || true)
if [ -n "$restic" ]; then
  restic init -q
  restic backup -q "$work/data" >/dev/null
fi

# The zstd frames of every compressed blob, dealt round-robin into one
# file per core, for the ceiling.
cores=$(nproc)
python3 - "$store" "$work/frames" "$cores" <<'PY'
import sqlite3, sys
store, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(f"{store}/catalog.db")
rows = db.execute("""SELECT p.id, b.offset, b.stored_len FROM blobs b JOIN packs p
                     ON p.rowid = b.pack WHERE b.compression = 1 ORDER BY p.id, b.offset""")
files = [open(f"{out}.{i}.zst", "wb") for i in range(n)]
for i, (pack, offset, length) in enumerate(rows):
    h = pack.hex()
    with open(f"{store}/packs/{h[:2]}/{h}.pack", "rb") as p:
        p.seek(offset)
        files[i % n].write(p.read(length))
for f in files:
    f.close()
PY

measure() { # label, command...
  local label=$1
  shift
  sync
  cat "$store"/packs/*/*.pack >/dev/null
  /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$@" >/dev/null 2>"$work/err.txt" || {
    code=$?
    # verify exits 4 on damage: that would be a finding, not a failure here.
    echo "verify.sh: $label failed ($code)" >&2
    cat "$work/err.txt" >&2
    exit 1
  }
  read -r wall user sys rss <"$work/time.txt"
  printf '%-34s wall %6.2f s  cpu %6.2f s  peak RSS %4d MiB\n' "$label" "$wall" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" $((rss / 1024))
  echo "$wall" >"$work/last"
}

packs_bytes=$(cat "$store"/packs/*/*.pack | wc -c)
{
  echo "# verify benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) cores"
  echo "# cairn $(git -C "$here" rev-parse --short HEAD); $(b3sum --version); $(zstd --version | head -1)${restic:+; $(restic version | head -1)}"
  echo "# data: $(du -sh "$work/data" | cut -f1) of /usr; packs: $((packs_bytes / 1048576)) MiB; frames: $(($(cat "$work"/frames.*.zst | wc -c) / 1048576)) MiB"
  measure "cairn verify --read-data" "$cairn" --store "$store" verify --read-data
  cairn_wall=$(cat "$work/last")
  measure "ceiling 1: b3sum of the packs" sh -c "cat '$store'/packs/*/*.pack | b3sum"
  c1=$(cat "$work/last")
  measure "ceiling 2: decompress + b3sum, ${cores}x" sh -c \
    "ls '$work'/frames.*.zst | xargs -P $cores -I{} sh -c 'zstd -q -d -c {} | b3sum --num-threads 1'"
  c2=$(cat "$work/last")
  if [ -n "$restic" ]; then
    measure "restic check --read-data" restic check -q --read-data
    restic_wall=$(cat "$work/last")
  fi
  awk -v v="$cairn_wall" -v a="$c1" -v b="$c2" -v r="${restic_wall:-0}" -v n="$packs_bytes" 'BEGIN {
    ceiling = a + b
    printf "ceiling (hash packs + decompress-and-hash blobs): %.2f s; cairn %.2f s = %.0f%% of the ceiling'"'"'s speed; %.0f MiB/s\n", ceiling, v, 100 * ceiling / v, n / 1048576 / v
    if (r > 0) printf "ratio to restic check --read-data: %.2fx\n", v / r
  }'
} | tee "$here/benches/results/$(date +%Y-%m-%d)-$(hostname)-verify.txt"
