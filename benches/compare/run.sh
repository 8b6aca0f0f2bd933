#!/usr/bin/env bash
# cairn next to restic, borg, rustic and bupstash, on the same data, in the
# same run.
#
#   benches/compare/run.sh [WORKDIR]     (default ${TMPDIR:-/tmp}/cairn-compare)
#
# Environment: TOOLS (default "restic borg rustic bupstash cairn"; a peer
# that is not installed is left out with a note), DATASETS (default "src
# bulk small sqlite"), BULK_MB (1024),
# SRC_MB (250), SMALL_FILES (100000), SQLITE_MB (300), NIGHTS (3), RUNS (2:
# the whole comparison is run that many times on fresh data and stores, and
# each cell of the table is the best run's; this machine is noisy, and the
# first tool to allocate after a large write sometimes pays seconds of
# reclaim).
#
# Datasets, generated deterministically without network:
#   src     a source-tree-like corpus of text files from /usr (headers,
#           Python, Perl, docs) by sorted path; each night ~2% of the files
#           get a line inserted in the middle, a few are added, removed and
#           renamed (benches/compare/edit_tree.py)
#   bulk    mixed binaries and text from /usr/bin, /usr/share and /usr/lib
#   small   SMALL_FILES small text files in directories of 100
#   sqlite  the database of examples/sqlite_gen.rs, 1.5% of rows changed a
#           night (the series of benches/sqlite.sh)
# Steps for every tool: init, first snapshot, each nightly snapshot (src,
# sqlite), a no-change snapshot, restore of the latest, a full read check
# (cairn verify --read-data, restic check --read-data, borg check
# --verify-data), forget keep-last 3 + prune (borg prune + compact). Each
# step follows a `sync` and a read of the dataset and the tool's store (so
# caches are warm for every tool alike) and is timed with /usr/bin/time:
# wall, CPU, peak RSS; the sizes of the store and of the tool's local cache
# are taken after it (see cache_of). Ceilings on the same data: a
# plain read, b3sum, `zstd -3 -T<cores>` of a tar stream, and for no-change
# snapshots a `find -printf` walk.
#
# Needs restic and borg (apt-get install restic borgbackup), b3sum (cargo
# install b3sum), zstd, python3, GNU tar and /usr/bin/time; rustic and
# bupstash if they are to run (cargo install rustic-rs bupstash --locked;
# bupstash needs libsodium-dev and pkg-config). It installs nothing and
# stops if a required one is missing. restic and rustic encrypt (they
# cannot not), bupstash too (its key file); borg runs unencrypted
# (--encryption none) with its default lz4; cairn runs unencrypted unless
# CAIRN_ENCRYPT=1 (then with a password file and its default key
# derivation). Results: stdout and benches/results/DATE-HOST-compare.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-${TMPDIR:-/tmp}/cairn-compare}
datasets=${DATASETS:-src bulk small sqlite}
nights=${NIGHTS:-3}
runs=${RUNS:-2}
cores=$(nproc)
tools=${TOOLS:-restic borg rustic bupstash cairn}
for peer in rustic bupstash; do
  case " $tools " in
    *" $peer "*) command -v "$peer" >/dev/null || {
      echo "compare: $peer is not installed (cargo install rustic-rs bupstash --locked): left out" >&2
      tools=${tools//$peer/}
    } ;;
  esac
done
for tool in restic borg b3sum zstd python3 tar; do
  command -v "$tool" >/dev/null || {
    echo "compare: needs $tool (restic, borg: apt-get install restic borgbackup; b3sum: cargo install b3sum)" >&2
    exit 2
  }
done
cd "$here"
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
src_mb=250 bulk_mb=1024 small_files=100000 sqlite_mb=300
# shellcheck source=benches/compare/datasets.sh
source "$here/benches/compare/datasets.sh"
build_release "$here" gen
rm -rf "$work"
mkdir -p "$work"
tsv=$work/measurements.tsv
: >"$tsv"
export RESTIC_PASSWORD=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_BASE_DIR=$work/borg-home
export RUSTIC_PASSWORD=bench
export XDG_CACHE_HOME=$work/xdg-cache
echo bench >"$work/password"
cairn_opts=()
[ "${CAIRN_ENCRYPT:-0}" = 1 ] && cairn_opts=(--password-file "$work/password")

store_of() { echo "$work/stores/$run/$1-$2"; }
# Each tool's local cache, one per tool and dataset (restic's and rustic's
# cache, borg's cache, bupstash's send log and query cache, cairn's cache
# directory). cairn keeps the catalog of a local unencrypted store in the
# store's directory: it is a cache all the same (rebuilt from the index
# objects at will), so it is counted here and not in the store.
cache_of() { echo "$work/caches/$run/$1-$2"; }
# tool, dataset: bytes of its store and of its local cache.
sizes_of() {
  local store cache own=0 total=0 in_store=0
  store=$(store_of "$1" "$2") cache=$(cache_of "$1" "$2")
  [ -e "$store" ] && total=$(du -sb "$store" | cut -f1)
  [ -e "$cache" ] && own=$(du -sb "$cache" | cut -f1)
  if [ "$1" = cairn ] && [ -e "$store" ]; then
    in_store=$(find "$store" -maxdepth 1 -name 'catalog.db*' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  fi
  echo "$((total - in_store)) $((own + in_store))"
}

# Datasets and restored trees are kept (one directory per run, dataset and
# tool) until every step is done. This machine's root file system is ext4
# without a journal: for 60-300 s after many files are deleted, creating a
# file scans past every recently freed inode (recently_deleted() in
# ext4's inode allocator), which made whichever tool restored right after
# another's restore was deleted pay seconds of kernel time (perf: 50% of a
# 100k-file restore in find_inode_bit). Nothing is deleted mid-run now.
data_of() { echo "$work/data/$run/$1"; }
restore_of() { echo "$work/restore/$run/$2-$1"; }

# tool, dataset, step, command...: runs it after a sync with the data and
# the tool's store warm, appends a row.
measure() {
  local tool=$1 ds=$2 step=$3
  shift 3
  sync
  warm "$(data_of "$ds")" "$(store_of "$tool" "$ds")" "$(cache_of "$tool" "$ds")"
  if ! /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    echo "compare: $tool $ds $step failed: $*" >&2
    tail -5 "$work/err.txt" >&2
    exit 1
  fi
  local wall user sys rss size cache
  read -r wall user sys rss <"$work/time.txt"
  read -r size cache < <(sizes_of "$tool" "$ds")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$ds" "$step" "$wall" "$user" "$sys" "$rss" "$size" "$run" "$cache" >>"$tsv"
  printf '%-7s %-7s %-10s %7.2fs  %5d MiB RSS  store %6d MiB  cache %5d MiB\n' "$tool" "$ds" "$step" "$wall" $((rss / 1024)) $((size / 1048576)) $((cache / 1048576))
}

# The steps, one function per tool; all take: dataset, step, path.
cairn_do() {
  local s
  s=$(store_of cairn "$1")
  local c=("$cairn" --cache-dir "$(cache_of cairn "$1")")
  case $2 in
    init) measure cairn "$1" init "${c[@]}" --store "$s" "${cairn_opts[@]}" init -q ;;
    restore) measure cairn "$1" restore "${c[@]}" --store "$s" "${cairn_opts[@]}" restore latest --target "$(restore_of cairn "$1")" -q ;;
    check) measure cairn "$1" check "${c[@]}" --store "$s" "${cairn_opts[@]}" verify --read-data -q ;;
    prune) measure cairn "$1" prune "${c[@]}" --store "$s" "${cairn_opts[@]}" forget --keep-last 3 --prune -q ;;
    *) measure cairn "$1" "$2" "${c[@]}" --store "$s" "${cairn_opts[@]}" snapshot -q "$3" ;;
  esac
}
restic_do() {
  local s
  s=$(store_of restic "$1")
  RESTIC_CACHE_DIR=$(cache_of restic "$1")
  export RESTIC_CACHE_DIR
  case $2 in
    init) measure restic "$1" init restic -r "$s" init -q ;;
    restore) measure restic "$1" restore restic -r "$s" restore latest --target "$(restore_of restic "$1")" -q ;;
    check) measure restic "$1" check restic -r "$s" check -q --read-data ;;
    prune) measure restic "$1" prune restic -r "$s" forget -q --keep-last 3 --prune ;;
    *) measure restic "$1" "$2" restic -r "$s" backup -q --host bench "$3" ;;
  esac
}
borg_do() {
  local s
  s=$(store_of borg "$1")
  BORG_CACHE_DIR=$(cache_of borg "$1")
  export BORG_CACHE_DIR
  case $2 in
    init) measure borg "$1" init borg init -e none "$s" ;;
    restore)
      mkdir -p "$(restore_of borg "$1")"
      local last
      last=$(borg list --short --last 1 "$s")
      (cd "$(restore_of borg "$1")" && measure borg "$1" restore borg extract "$s::$last")
      ;;
    check) measure borg "$1" check borg check --verify-data "$s" ;;
    prune) measure borg "$1" prune sh -c "borg prune --keep-last 3 '$s' && borg compact '$s'" ;;
    *) measure borg "$1" "$2" borg create --compression lz4 "$s::$2" "$3" ;;
  esac
}

rustic_do() {
  local s
  s=$(store_of rustic "$1")
  RUSTIC_CACHE_DIR=$(cache_of rustic "$1")
  export RUSTIC_CACHE_DIR
  case $2 in
    init) measure rustic "$1" init rustic -r "$s" init ;;
    restore) measure rustic "$1" restore rustic -r "$s" restore latest "$(restore_of rustic "$1")" ;;
    check) measure rustic "$1" check rustic -r "$s" check --read-data ;;
    prune) measure rustic "$1" prune rustic -r "$s" forget --keep-last 3 --prune ;;
    *) measure rustic "$1" "$2" rustic -r "$s" backup --host bench "$3" ;;
  esac
}
# bupstash has no read-everything check: `check` gets every item (which
# reads, decrypts and verifies all its data) into /dev/null. Its forget is
# `rm` of all but the 3 newest items, then `gc`.
bupstash_do() {
  local s
  s=$(store_of bupstash "$1")
  mkdir -p "$(cache_of bupstash "$1")"
  BUPSTASH_SEND_LOG=$(cache_of bupstash "$1")/send.log
  BUPSTASH_QUERY_CACHE=$(cache_of bupstash "$1")/query.cache
  export BUPSTASH_KEY=$work/bupstash.key BUPSTASH_SEND_LOG BUPSTASH_QUERY_CACHE
  [ -e "$BUPSTASH_KEY" ] || bupstash new-key -o "$BUPSTASH_KEY"
  case $2 in
    init) rm -f "$BUPSTASH_SEND_LOG"; measure bupstash "$1" init bupstash init -r "$s" ;;
    restore)
      mkdir -p "$(restore_of bupstash "$1")"
      local last
      last=$(bupstash list -r "$s" --format=jsonl1 | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
      measure bupstash "$1" restore bupstash restore -r "$s" --into "$(restore_of bupstash "$1")" "id=$last"
      ;;
    check) measure bupstash "$1" check sh -c "bupstash list -r '$s' --format=jsonl1 | python3 -c 'import json,sys; [print(json.loads(l)[\"id\"]) for l in sys.stdin]' | while read -r id; do bupstash get -r '$s' \"id=\$id\" >/dev/null || exit 1; done" ;;
    prune) measure bupstash "$1" prune sh -c "bupstash list -r '$s' --format=jsonl1 | python3 -c 'import json,sys; ids=[json.loads(l)[\"id\"] for l in sys.stdin]; [print(i) for i in ids[:-3]]' | while read -r id; do bupstash rm -r '$s' \"id=\$id\" >/dev/null || exit 1; done; bupstash gc -r '$s' >/dev/null" ;;
    *) measure bupstash "$1" "$2" bupstash put -q -r "$s" "$3" ;;
  esac
}

ceilings() { # dataset, path
  local p=$2
  measure ceiling "$1" read sh -c "find '$p' -type f -print0 | xargs -0 cat >/dev/null"
  measure ceiling "$1" b3sum sh -c "find '$p' -type f -print0 | xargs -0 b3sum >/dev/null"
  measure ceiling "$1" zstd-3 sh -c "tar -cf - '$p' 2>/dev/null | zstd -q -3 -T$cores -c >/dev/null"
  measure ceiling "$1" walk sh -c "find '$p' -printf '%p %s %T@ %C@ %i\n' >/dev/null"
}

for run in $(seq 1 "$runs"); do
  echo "# run $run of $runs"
  mkdir -p "$work/stores/$run"
  for ds in $datasets; do
    make_data "$ds"
    path=$(data_of "$ds")
    ceilings "$ds" "$path"
    for tool in $tools; do
      "${tool}_do" "$ds" init
    done
    for tool in $tools; do
      "${tool}_do" "$ds" first "$path"
    done
    case $ds in
      src | sqlite)
        for n in $(seq 1 "$nights"); do
          night "$ds" "$n"
          for tool in $tools; do
            "${tool}_do" "$ds" "night$n" "$path"
          done
        done
        ;;
    esac
    for step in nochange restore check prune; do
      for tool in $tools; do
        "${tool}_do" "$ds" "$step" "$path"
      done
    done
  done
done
rm -rf "$work/stores" "$work/caches" "$work/data" "$work/restore"

results=$here/benches/results/$(date +%Y-%m-%d)-$(hostname)-compare.txt
{
  echo "# cairn vs ${tools//cairn/}, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $cores cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "# cairn $(git -C "$here" rev-parse --short HEAD) (release$([ "${CAIRN_ENCRYPT:-0}" = 1 ] && echo ', encrypted')); $(restic version | head -1); $(borg --version); $(command -v rustic >/dev/null && rustic --version); $(command -v bupstash >/dev/null && bupstash version); $(b3sum --version); $(zstd --version | head -1)"
  echo "# commands: cairn snapshot / restore latest / verify --read-data / forget --keep-last 3 --prune;"
  echo "#   restic backup / restore latest / check --read-data / forget --keep-last 3 --prune (encrypted, repository v2, compression auto);"
  echo "#   borg create --compression lz4 / extract / check --verify-data / prune --keep-last 3 + compact (--encryption none);"
  echo "#   rustic backup / restore latest / check --read-data / forget --keep-last 3 --prune (encrypted; its prune keeps packs it marks for 23 h);"
  echo "#   bupstash put / restore --into / get of every item / rm all but the newest 3 + gc (encrypted)"
  echo "# caches warm; every step after a sync; best of $runs runs; wall seconds; ratio = tool / restic in this run"
  python3 "$here/benches/compare/table.py" "$tsv"
} | tee "$results"
