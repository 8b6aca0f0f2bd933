#!/usr/bin/env bash
# Nightly snapshots of a busy SQLite database: what each night adds to the
# store, and how long it takes, for cairn (one store per SQLite page-run
# length) next to restic.
#
#   [CHURN=PCT] benches/sqlite.sh [SIZE_MB] [RUNS...]
#       SIZE_MB  size of the generated database (default 500)
#       RUNS     page-run lengths, one cairn store each, given to
#                `cairn init --sqlite-page-run` (default 4KiB 8KiB 16KiB 32KiB 64KiB)
#
# The database comes from examples/sqlite_gen.rs (deterministic: sessions,
# events with JSON payloads, costs, five secondary indexes; WAL mode). It is
# generated once and snapshotted into every store (night 0); then, for
# nights 1-7, `sqlite_gen night` changes about 1.5% of its rows (updates,
# deletes of old rows, inserts whose index entries land all over the file)
# and checkpoints the WAL, and the changed file is snapshotted into every
# store in turn. Each snapshot follows a `sync` and is timed with
# /usr/bin/time (wall, CPU, peak RSS); caches are warm, as for a nightly job
# on a busy machine. Bytes added: cairn's `summary.bytes_added` (packed,
# compressed), restic's growth of `du -sb` of its repository; next to them,
# the 4 KiB pages of the database that differ from the night before, the
# raw size of what really changed.
#
# Needs bash, python3, sqlite3 and /usr/bin/time; restic if it is installed
# (it is not installed by this script: `apt-get install restic`). Work files
# go to ${TMPDIR:-/tmp}/cairn-sqlite-bench, wiped at the start. Results go to
# stdout and benches/results/DATE-HOST-sqlite.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# CHURN: percent of rows changed per night (default 1.5).
churn=${CHURN:-1.5}
size_mb=${1:-500}
if [ $# -gt 0 ]; then shift; fi
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(4KiB 8KiB 16KiB 32KiB 64KiB)
case $size_mb in
  '' | *[!0-9]*) echo "usage: benches/sqlite.sh [SIZE_MB] [RUNS...]" >&2; exit 2 ;;
esac
nights=7
seed=1
work=${TMPDIR:-/tmp}/cairn-sqlite-bench

cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
build_release "$here" gen

rm -rf "$work"
mkdir -p "$work"
db=$work/app.db
# tool, night, bytes added, wall s, user s, sys s, peak RSS KiB, store bytes;
# and db, night, database bytes, pages changed since the night before
tsv=$work/measurements.tsv
: >"$tsv"

if command -v restic >/dev/null; then
  restic=restic
else
  restic=
  echo "sqlite.sh: restic is not installed (apt-get install restic); measuring cairn only" >&2
fi

# Run the command after a sync (so the previous step's dirty pages are not
# written back inside this one), stdout to $work/out.txt; sets wall, user,
# sys and rss (KiB).
measure() {
  sync
  if ! /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    echo "sqlite.sh: failed: $*" >&2
    cat "$work/out.txt" "$work/err.txt" "$work/time.txt" >&2
    exit 1
  fi
  read -r wall user sys rss <"$work/time.txt"
}

bytes() { du -sb "$1" | cut -f1; }

changed_pages() { # old, new: how many 4 KiB pages of new differ from old
  python3 - "$1" "$2" <<'PY'
import sys
changed = 0
with open(sys.argv[1], "rb") as old, open(sys.argv[2], "rb") as new:
    while True:
        a, b = old.read(1 << 20), new.read(1 << 20)
        if not a and not b:
            break
        for i in range(0, max(len(a), len(b)), 4096):
            changed += a[i:i + 4096] != b[i:i + 4096]
print(changed)
PY
}

# One cairn store per page-run length, or one default store if this cairn
# has no --sqlite-page-run yet.
stores=()
for run in "${runs[@]}"; do
  status=0
  "$cairn" --quiet --store "$work/cairn-$run" init --sqlite-page-run "$run" 2>"$work/err.txt" || status=$?
  if [ "$status" -eq 0 ]; then
    stores+=("$run")
  elif [ "$status" -eq 2 ] && grep -q "unexpected argument '--sqlite-page-run'" "$work/err.txt"; then
    echo "sqlite.sh: this cairn has no 'init --sqlite-page-run' yet; measuring one store made by plain 'init' instead of one per page run (${runs[*]})" >&2
    rm -rf "$work"/cairn-*
    "$cairn" --quiet --store "$work/cairn-default" init
    stores=(default)
    break
  else
    echo "sqlite.sh: cairn init --sqlite-page-run $run failed:" >&2
    cat "$work/err.txt" >&2
    exit 1
  fi
done
if [ -n "$restic" ]; then
  export RESTIC_PASSWORD=bench
  "$restic" init --repo "$work/restic" --cache-dir "$work/restic-cache" --quiet >/dev/null
fi

"$gen" create "$db" --size-mb "$size_mb" --seed "$seed" | tee "$work/generate.log"
for ((night = 0; night <= nights; night++)); do
  if [ "$night" -gt 0 ]; then
    cp "$db" "$work/previous.db"
    "$gen" night "$db" --night "$night" --seed "$seed" --churn "$churn" | tee -a "$work/generate.log"
    changed=$(changed_pages "$work/previous.db" "$db")
    rm "$work/previous.db"
  else
    changed=$(($(stat -c %s "$db") / 4096))
  fi
  printf 'db\t%s\t%s\t%s\n' "$night" "$(stat -c %s "$db")" "$changed" >>"$tsv"
  for store in "${stores[@]}"; do
    dir=$work/cairn-$store
    measure "$cairn" --json --store "$dir" snapshot "$db"
    added=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["bytes_added"])' <"$work/out.txt")
    printf 'cairn %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$store" "$night" "$added" "$wall" "$user" "$sys" "$rss" "$(bytes "$dir")" >>"$tsv"
    echo "night $night: cairn $store added $added bytes in $wall s"
  done
  if [ -n "$restic" ]; then
    before=$(bytes "$work/restic")
    measure "$restic" --repo "$work/restic" --cache-dir "$work/restic-cache" backup "$db" --quiet
    after=$(bytes "$work/restic")
    printf 'restic\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$night" "$((after - before))" "$wall" "$user" "$sys" "$rss" "$after" >>"$tsv"
    echo "night $night: restic added $((after - before)) bytes in $wall s"
  fi
done

suffix=$([ "$churn" = 1.5 ] && echo "" || echo "-churn$churn")
result=$here/benches/results/$(date +%F)-$(hostname)-sqlite$suffix.txt
{
  echo "cairn SQLite nightly benchmark, $(date -Iseconds)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "uname: $(uname -a)"
  echo "cairn: $("$cairn" --version), $(git -C "$here" describe --always --dirty 2>/dev/null || echo "not a git checkout")"
  echo "restic: $(if [ -n "$restic" ]; then "$restic" version; else echo "not installed"; fi)"
  echo "sqlite3 CLI: $(sqlite3 --version | cut -d' ' -f1-2)"
  echo "database: $(head -1 "$work/generate.log")"
  echo
  python3 - "$tsv" <<'PY'
import sys
from collections import defaultdict

rows = defaultdict(dict)  # tool -> night -> (added, wall, cpu, rss KiB, store bytes)
db = {}
changed = {}  # night -> bytes of the 4 KiB pages that differ from the night before
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "db":
        db[int(f[1])] = int(f[2])
        changed[int(f[1])] = int(f[3]) * 4096
        continue
    tool, night, added, wall, user, sys_, rss, size = f
    rows[tool][int(night)] = (int(added), float(wall), float(user) + float(sys_), int(rss), int(size))
cairns = [t for t in rows if t.startswith("cairn")]
restic = "restic" if "restic" in rows else None
tools = cairns + ([restic] if restic else [])
nights = sorted(db)
mib = lambda b: b / 1048576

print("bytes added (MiB) and wall time of each snapshot (s); ratio = cairn bytes / restic bytes;")
print("changed MiB: the 4 KiB pages of the database that differ from the night before, uncompressed")
head = f"{'night':>5} {'db MiB':>8} {'changed MiB':>11}"
for t in tools:
    head += f" {t:>20} {'s':>6}"
if restic:
    for t in cairns:
        head += f" {t.split(' ', 1)[1] + '/restic':>15}"
print(head)

def line(label, sel):
    out = f"{label:>5} {mib(db[sel[-1]]):8.1f} {mib(sum(changed[n] for n in sel)):11.1f}"
    for t in tools:
        added = sum(rows[t][n][0] for n in sel)
        wall = sum(rows[t][n][1] for n in sel)
        out += f" {mib(added):20.2f} {wall:6.2f}"
    if restic:
        r = sum(rows[restic][n][0] for n in sel)
        for t in cairns:
            c = sum(rows[t][n][0] for n in sel)
            out += f" {c / r:15.2f}" if r else f" {'-':>15}"
    print(out)

for n in nights:
    line(str(n), [n])
if len(nights) > 1:
    line("1-" + str(nights[-1]), nights[1:])
    line("all", nights)

print()
print("per tool: first snapshot (night 0), mean of nights 1-7, store size after the last night")
print(f"{'tool':>20} {'first s':>8} {'cpu s':>7} {'RSS MiB':>8} {'night s':>8} {'cpu s':>7} {'RSS MiB':>8} {'store MiB':>10}")
for t in tools:
    first = rows[t][nights[0]]
    rest = [rows[t][n] for n in nights[1:]] or [first]
    mean = lambda i: sum(r[i] for r in rest) / len(rest)
    print(f"{t:>20} {first[1]:8.2f} {first[2]:7.2f} {first[3] / 1024:8.0f} {mean(1):8.2f} {mean(2):7.2f}"
          f" {max(r[3] for r in rest) / 1024:8.0f} {mib(rows[t][nights[-1]][4]):10.1f}")
PY
  echo
  echo "nights:"
  tail -n +2 "$work/generate.log" | sed 's/^/  /'
  echo
  echo "commands (W=$work; warm page cache; sync before each timed step):"
  echo "  benches/sqlite.sh $size_mb ${runs[*]}"
  echo "  target/release/examples/sqlite_gen create W/app.db --size-mb $size_mb --seed $seed"
  echo "  target/release/examples/sqlite_gen night W/app.db --night K --seed $seed --churn $churn   # before the snapshots of night K = 1..$nights"
  if [ "${stores[0]}" = default ]; then
    echo "  target/release/cairn --store W/cairn-default init   # this cairn had no --sqlite-page-run"
  else
    echo "  target/release/cairn --store W/cairn-RUN init --sqlite-page-run RUN   # RUN in ${stores[*]}"
  fi
  echo "  /usr/bin/time -f '%e %U %S %M' target/release/cairn --json --store W/cairn-RUN snapshot W/app.db   # bytes added: .summary.bytes_added"
  if [ -n "$restic" ]; then
    echo "  RESTIC_PASSWORD=bench restic init --repo W/restic --cache-dir W/restic-cache"
    echo "  /usr/bin/time -f '%e %U %S %M' restic --repo W/restic --cache-dir W/restic-cache backup W/app.db --quiet   # bytes added: growth of du -sb W/restic"
  fi
} | tee "$result"
echo "written to $result"
