#!/usr/bin/env bash
# What encryption costs: cairn on an unencrypted store, cairn on an
# encrypted one and restic (which always encrypts), side by side on the
# same data in the same run: first snapshot, verify --read-data (restic
# check --read-data), and a no-change snapshot, plus the store's size.
#
#   benches/encryption.sh [WORKDIR]     (default ${TMPDIR:-/tmp}/cairn-encryption)
#
# Environment: DATASETS (default "src bulk small sqlite"), SRC_MB (150),
# BULK_MB (500), SMALL_FILES (20000), SQLITE_MB (200), RUNS (2: each cell
# is the best of the runs). Datasets: benches/compare/datasets.sh. Every
# step follows a sync and a read of the data and the tool's store, so
# caches are warm for every tool alike. The encrypted store uses the
# default key derivation (64 MiB x 16 passes, 0.6 s), paid once per
# command as an operator's nightly job pays it; the step `open` (`key
# list`) measures it alone, and the column `c-kdf/p` takes it out. Results: stdout and
# benches/results/DATE-HOST-encryption.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/cairn-encryption}
datasets=${DATASETS:-src bulk small sqlite}
runs=${RUNS:-2}
for tool in restic python3 tar; do
  command -v "$tool" >/dev/null || {
    echo "encryption: needs $tool (apt-get install restic)" >&2
    exit 2
  }
done
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
src_mb=150 bulk_mb=500 small_files=20000 sqlite_mb=200
build_release "$here" gen
rm -rf "$work"
mkdir -p "$work"
data_of() { echo "$work/data/$1"; }
# shellcheck source=benches/compare/datasets.sh
source "$here/benches/compare/datasets.sh"
tsv=$work/measurements.tsv
: >"$tsv"
echo bench >"$work/password"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache XDG_CACHE_HOME=$work/cache

store_of() { echo "$work/stores/$run/$1-$2"; }

# tool, dataset, step, command...: timed after a sync with data and store warm.
measure() {
  local tool=$1 ds=$2 step=$3 store
  shift 3
  store=$(store_of "$tool" "$ds")
  sync
  find "$(data_of "$ds")" "$store" -type f -exec cat {} + >/dev/null 2>&1 || true
  /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$@" >/dev/null 2>"$work/err.txt" || {
    echo "encryption: $tool $ds $step failed: $*" >&2
    tail -5 "$work/err.txt" >&2
    exit 1
  }
  local wall user sys rss size
  read -r wall user sys rss <"$work/time.txt"
  size=$(du -sb "$store" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$ds" "$step" "$wall" "$user" "$sys" "$rss" "$size" >>"$tsv"
  printf '%-7s %-7s %-9s %7.2fs  cpu %7.2fs  %5d MiB RSS  store %6d MiB\n' \
    "$tool" "$ds" "$step" "$wall" "$(echo "$user + $sys" | bc)" $((rss / 1024)) $((size / 1048576))
}

# tool, dataset, step: one step of one tool.
step() {
  local tool=$1 ds=$2 s path
  s=$(store_of "$tool" "$ds")
  path=$(data_of "$ds")
  case $tool:$3 in
    plain:init) "$cairn" --store "$s" init -q ;;
    crypt:init) "$cairn" --store "$s" --password-file "$work/password" init --encrypt -q ;;
    restic:init) restic -r "$s" init -q ;;
    plain:first | plain:nochange) measure plain "$ds" "$3" "$cairn" --store "$s" snapshot -q "$path" ;;
    crypt:first | crypt:nochange)
      measure crypt "$ds" "$3" "$cairn" --store "$s" --password-file "$work/password" snapshot -q "$path"
      ;;
    restic:first | restic:nochange) measure restic "$ds" "$3" restic -r "$s" backup -q --host bench "$path" ;;
    plain:check) measure plain "$ds" check "$cairn" --store "$s" verify --read-data -q ;;
    crypt:check) measure crypt "$ds" check "$cairn" --store "$s" --password-file "$work/password" verify --read-data -q ;;
    restic:check) measure restic "$ds" check restic -r "$s" check -q --read-data ;;
    # What unlocking costs every command: the key derivation, alone.
    crypt:open) measure crypt "$ds" open "$cairn" --store "$s" --password-file "$work/password" key list ;;
  esac
}

for run in $(seq 1 "$runs"); do
  echo "# run $run of $runs"
  mkdir -p "$work/stores/$run"
  for ds in $datasets; do
    make_data "$ds"
    for st in init first nochange check; do
      for tool in plain crypt restic; do
        step "$tool" "$ds" "$st"
      done
    done
    step crypt "$ds" open
  done
  rm -rf "$work/stores/$run" "$work/cache" "$work/restic-cache"
done

results=$here/benches/results/$(date +%Y-%m-%d)-$(hostname)-encryption.txt
{
  echo "# encryption cost: cairn unencrypted (plain), cairn encrypted (crypt), restic; $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $(nproc) cores"
  echo "# cairn $(git -C "$here" rev-parse --short HEAD) (release); $(restic version | head -1)"
  echo "# caches warm; every step after a sync; best of $runs runs; wall seconds (cpu = user + sys)"
  python3 - "$tsv" <<'PY'
import collections, sys
best = {}
for line in open(sys.argv[1]):
    tool, ds, step, wall, user, sys_, rss, size = line.split("\t")
    key = (ds, step, tool)
    row = (float(wall), float(user) + float(sys_), int(rss) // 1024, int(size) / 1048576)
    if key not in best or row[0] < best[key][0]:
        best[key] = row
print(f"{'dataset':8} {'step':9} {'plain':>8} {'crypt':>8} {'restic':>8} {'crypt/plain':>12} {'c-kdf/p':>8} {'crypt/restic':>13} {'cpu c/p':>8} {'store MiB p/c/r':>18}")
steps = ["first", "nochange", "check"]
for ds, step in sorted({(k[0], k[1]) for k in best if k[1] in steps}, key=lambda k: (k[0], steps.index(k[1]))):
    p, c, r = (best.get((ds, step, t)) for t in ("plain", "crypt", "restic"))
    if not (p and c and r):
        continue
    kdf = best.get((ds, "open", "crypt"), (0,))[0]
    print(f"{ds:8} {step:9} {p[0]:8.2f} {c[0]:8.2f} {r[0]:8.2f} {c[0]/p[0]:12.2f} {(c[0]-kdf)/p[0]:8.2f} {c[0]/r[0]:13.2f} {c[1]/p[1]:8.2f} {p[3]:6.1f}/{c[3]:5.1f}/{r[3]:5.1f}")
for ds in sorted({k[0] for k in best}):
    if (ds, "open", "crypt") in best:
        print(f"{ds:8} key derivation alone (cairn key list): {best[(ds, 'open', 'crypt')][0]:.2f} s")
PY
} | tee "$results"
