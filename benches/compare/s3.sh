#!/usr/bin/env bash
# cairn next to restic and rustic on S3: the same loopback S3 server, the
# same data, the same run (issue 15, section 4).
#
#   benches/compare/s3.sh [WORKDIR]     (default ${TMPDIR:-/tmp}/cairn-s3-compare)
#
# Environment: DATASETS (default "src bulk small sqlite"), SRC_MB (250),
# BULK_MB (500), SMALL_FILES (20000), SQLITE_MB (150), NIGHTS (2), RUNS (2:
# the whole comparison on fresh data, stores and server, each cell the best
# run's), TOOLS (default "restic rustic cairn"; rustic is left out, and the
# results say so, when it is not installed).
#
# The datasets are benches/compare/run.sh's (benches/compare/datasets.sh),
# smaller, because the server is moto (Python, one core's worth of
# requests). Steps for every tool: init, first snapshot, each nightly
# snapshot (src, sqlite), a no-change snapshot, restore of the latest, a
# full read check (cairn verify --read-data, restic check --read-data,
# rustic check --read-data). Each step follows a `sync` and a read of the
# dataset and of the tool's local cache (warm for every tool alike) and is
# timed with /usr/bin/time (wall, CPU and peak RSS of the tool; the server's
# CPU from /proc). Requests: moto_server logs one line per request (method
# and path); the lines of the tool's bucket logged during the step are
# counted by kind (benches/compare/s3_server.py), and cairn's own count
# (`requests` in its --json output) stands beside them as a cross-check.
# Store size: the bucket's objects listed after the step.
#
# One moto_server on 127.0.0.1 per dataset and run (so its memory does not
# grow over the whole comparison), a bucket per tool in it; every tool
# talks path-style plain HTTP to it with the same credentials. Each tool
# keeps its local cache (cairn --cache-dir, restic and rustic --cache-dir)
# from step to step, as on a host taking nightly snapshots. restic and
# rustic encrypt (they cannot not); cairn does not encrypt. Each tool runs
# with its default concurrency (cairn --connections 8, restic
# s3.connections 5, rustic: opendal's).
#
# Needs restic (apt-get install restic), moto_server (PyPI moto[s3] with
# flask and flask-cors, as .ci/run installs it under target/s3-server; that
# one is used when none is on PATH), python3, GNU tar and /usr/bin/time;
# rustic (cargo install rustic-rs --locked) if present. It installs nothing.
# Results: stdout and benches/results/DATE-HOST-s3-compare.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-${TMPDIR:-/tmp}/cairn-s3-compare}
datasets=${DATASETS:-src bulk small sqlite}
nights=${NIGHTS:-2}
runs=${RUNS:-2}
tools=${TOOLS:-restic rustic cairn}
cd "$here"
[ -x target/s3-server/bin/moto_server ] && PATH=$PATH:$here/target/s3-server/bin
for tool in restic moto_server python3 tar; do
  command -v "$tool" >/dev/null || {
    echo "s3 compare: needs $tool (restic: apt-get install restic; moto_server: .ci/run installs it)" >&2
    exit 2
  }
done
left_out=""
if [[ " $tools " == *" rustic "* ]] && ! command -v rustic >/dev/null; then
  left_out="rustic (not installed: cargo install rustic-rs --locked)"
  tools=${tools//rustic/}
  echo "s3 compare: without $left_out" >&2
fi
# shellcheck source=benches/lib.sh
source "$here/benches/lib.sh"
src_mb=250 bulk_mb=500 small_files=20000 sqlite_mb=150
# shellcheck source=benches/compare/datasets.sh
source "$here/benches/compare/datasets.sh"
build_release "$here" gen
helper=$here/benches/compare/s3_server.py
rm -rf "$work"
mkdir -p "$work"
tsv=$work/measurements.tsv
: >"$tsv"
# Every tool gets the same credentials; moto accepts any.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true RESTIC_PASSWORD=bench

data_of() { echo "$work/data/$run/$1"; }
restore_of() { echo "$work/restore/$run/$2-$1"; }
cache_of() { echo "$work/cache/$run/$1-$2"; }
bucket_of() { echo "$1-$2-r$run"; }

# ---------------------------------------------------------------------------
# The server: one per dataset and run; its stderr is the request log.

server_pid="" endpoint="" server_log=""
start_server() { # dataset
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  server_log=$work/moto-$run-$1.log
  moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>"$server_log" &
  server_pid=$!
  endpoint=http://127.0.0.1:$port
  export AWS_ENDPOINT_URL=$endpoint
  for _ in $(seq 1 300); do
    python3 - "$endpoint" <<'PY' 2>/dev/null && return 0
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
    sleep 0.1
  done
  echo "s3 compare: moto_server did not answer on $endpoint:" >&2
  cat "$server_log" >&2
  exit 1
}
stop_server() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  server_pid=""
  return 0
}
trap stop_server EXIT

# The server's CPU seconds so far (user + system, from /proc).
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat"
}

# ---------------------------------------------------------------------------
# Measuring one step

# tool, dataset, step, command...: runs it after a sync with the data and
# the tool's cache warm, appends a row: tool, dataset, step, wall, user,
# sys, peak RSS KiB, run, store bytes, store objects, server CPU s,
# the server's request counts by kind (s3_server.py count), and the tool's
# own count (cairn's --json `requests`, "-" for the others).
measure() {
  local tool=$1 ds=$2 step=$3
  shift 3
  sync
  warm "$(data_of "$ds")" "$(cache_of "$tool" "$ds")"
  local offset cpu0
  offset=$(stat -c %s "$server_log")
  cpu0=$(server_cpu)
  if ! /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    echo "s3 compare: $tool $ds $step failed: $*" >&2
    tail -5 "$work/err.txt" >&2
    exit 1
  fi
  # werkzeug logs a request as it answers it, so every line is written
  # once the tool has its last answer; a moment for the pipe to drain.
  sleep 0.3
  local wall user sys rss counts cpu own size
  read -r wall user sys rss <"$work/time.txt"
  cpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
  counts=$(python3 "$helper" count "$server_log" "$offset" "$(bucket_of "$tool" "$ds")")
  own=$(python3 "$helper" own "$work/out.txt")
  size=$(python3 "$helper" size "$endpoint" "$(bucket_of "$tool" "$ds")")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$ds" "$step" "$wall" "$user" "$sys" "$rss" \
    "$run" "${size// /$'\t'}" "$cpu" "${counts// /$'\t'}" "$own" >>"$tsv"
  local total
  total=$(echo "$counts" | awk '{ print $1 + $2 + $3 + $4 + $5 + $6 + $7 }')
  printf '%-7s %-7s %-9s %7.2fs  %4d MiB RSS  server %6.2fs CPU  %6d requests (get put list delete head post other errors: %s)  cairn says: %s\n' \
    "$tool" "$ds" "$step" "$wall" $((rss / 1024)) "$cpu" "$total" "$counts" "$own"
}

# The steps, one function per tool; all take: dataset, step, path.
cairn_do() {
  local c=("$cairn" --store "s3://$(bucket_of cairn "$1")/store" --cache-dir "$(cache_of cairn "$1")" --json)
  case $2 in
    init) measure cairn "$1" init "${c[@]}" init ;;
    restore) measure cairn "$1" restore "${c[@]}" restore latest --target "$(restore_of cairn "$1")" ;;
    check) measure cairn "$1" check "${c[@]}" verify --read-data ;;
    *) measure cairn "$1" "$2" "${c[@]}" snapshot "$3" ;;
  esac
}
restic_do() {
  local r=(restic -r "s3:$endpoint/$(bucket_of restic "$1")" --cache-dir "$(cache_of restic "$1")" -q)
  case $2 in
    init) measure restic "$1" init "${r[@]}" init ;;
    restore) measure restic "$1" restore "${r[@]}" restore latest --target "$(restore_of restic "$1")" ;;
    check) measure restic "$1" check "${r[@]}" check --read-data ;;
    *) measure restic "$1" "$2" "${r[@]}" backup --host bench "$3" ;;
  esac
}
# rustic takes its repository from a profile (TOML): opendal's s3 service
# with the server as endpoint, path-style.
rustic_profile() { # dataset -> the profile's path (without .toml), written
  local p=$work/rustic/$(bucket_of rustic "$1")
  mkdir -p "$work/rustic"
  cat >"$p.toml" <<EOF
[repository]
repository = "opendal:s3"
password = "bench"
cache-dir = "$(cache_of rustic "$1")"

[repository.options]
endpoint = "$endpoint"
bucket = "$(bucket_of rustic "$1")"
root = "/"
region = "$AWS_REGION"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
EOF
  echo "$p"
}
rustic_do() {
  local r=(rustic -P "$(rustic_profile "$1")" --no-progress)
  case $2 in
    init) measure rustic "$1" init "${r[@]}" init ;;
    restore) measure rustic "$1" restore "${r[@]}" restore latest "$(restore_of rustic "$1")" ;;
    check) measure rustic "$1" check "${r[@]}" check --read-data ;;
    *) measure rustic "$1" "$2" "${r[@]}" backup --host bench "$3" ;;
  esac
}

# ---------------------------------------------------------------------------

for run in $(seq 1 "$runs"); do
  echo "# run $run of $runs"
  for ds in $datasets; do
    make_data "$ds"
    path=$(data_of "$ds")
    start_server "$ds"
    for tool in $tools; do
      python3 "$helper" bucket "$endpoint" "$(bucket_of "$tool" "$ds")"
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
    for step in nochange restore check; do
      for tool in $tools; do
        "${tool}_do" "$ds" "$step" "$path"
      done
    done
    stop_server
  done
done
# Kept until every step of every run is done (see run.sh: this machine's
# ext4 makes a file creation after mass deletion slow).
rm -rf "$work/data" "$work/restore" "$work/cache"

results=$here/benches/results/$(date +%Y-%m-%d)-$(hostname)-s3-compare.txt
versions="cairn $(git -C "$here" rev-parse --short HEAD) (release); $(restic version | head -1)"
command -v rustic >/dev/null && versions="$versions; $(rustic --version | head -1)"
moto=$(python3 -c 'import importlib.metadata as m; print("moto", m.version("moto"), "werkzeug", m.version("werkzeug"))' 2>/dev/null || echo "moto (version unknown)")
{
  echo "# cairn vs restic and rustic on S3, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "# $versions; server: $moto (moto_server on 127.0.0.1, plain HTTP, path-style)"
  [ -n "$left_out" ] && echo "# left out: $left_out"
  echo "# datasets: src ${SRC_MB:-$src_mb} MiB of text from /usr, bulk ${BULK_MB:-$bulk_mb} MiB of /usr, small ${SMALL_FILES:-$small_files} files of 1-4 KiB, sqlite ${SQLITE_MB:-$sqlite_mb} MiB (examples/sqlite_gen.rs, 1.5% churn a night); $nights nights"
  echo "# commands: cairn --store s3://B/store --cache-dir C snapshot / restore latest / verify --read-data;"
  echo "#   restic -r s3:http://127.0.0.1:PORT/B --cache-dir C backup / restore latest / check --read-data (encrypted, repository v2, compression auto);"
  echo "#   rustic -P PROFILE (opendal:s3, endpoint, bucket, region, keys; cache-dir C) backup / restore latest / check --read-data (encrypted)"
  echo "# caches warm; every step after a sync; best of $runs runs (each cell from the run with the lowest wall time); ratio = cairn / peer in that cell"
  echo "# requests: lines moto_server logged for the tool's bucket during the step"
  python3 "$here/benches/compare/s3_table.py" "$tsv"
  echo
  echo "# every measurement: tool dataset step wall user sys rss_kib run store_bytes objects server_cpu get put list delete head post other errors cairn_own"
  cat "$tsv"
} | tee "$results"
