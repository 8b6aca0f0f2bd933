#!/usr/bin/env bash
# `cairn copy` timed: a local store with NIGHTS snapshots of a tree copied to
# a loopback S3 server (moto_server), again with nothing new (the nightly
# off-site cron line on a quiet night), one more night, and back from S3 to
# a fresh local store (issue 17).
#
#   benches/copy.sh [WORKDIR]    (default ${TMPDIR:-/tmp}/cairn-copy-bench)
#
# Environment: DATA (a directory to snapshot, default /usr/share), NIGHTS (3).
# Needs a release build (cargo build --release), moto_server (.ci/run
# installs it under target/s3-server), curl. Installs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/cairn-copy-bench}
data=${DATA:-/usr/share}
nights=${NIGHTS:-3}
cairn=$here/target/release/cairn
[ -x "$here/target/s3-server/bin/moto_server" ] && PATH=$PATH:$here/target/s3-server/bin
for tool in moto_server curl; do
  command -v "$tool" >/dev/null || { echo "copy bench: needs $tool" >&2; exit 2; }
done
[ -x "$cairn" ] || { echo "copy bench: build first: cargo build --release" >&2; exit 2; }
rm -rf "$work" && mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
curl -s -X PUT "http://127.0.0.1:$port/offsite" >/dev/null
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true
local_store=$work/local
remote=s3://offsite/cairn
tree=$work/tree
cp -a "$data" "$tree"
"$cairn" --store "$local_store" init >/dev/null
for n in $(seq "$nights"); do
  # Each night changes a few files.
  find "$tree" -type f -name '*.txt' | sed -n "1,$((n * 20))p" | while read -r f; do echo "night $n" >>"$f"; done
  "$cairn" --store "$local_store" --quiet snapshot "$tree"
done
step() {
  local name=$1; shift
  local start end json
  start=$(date +%s.%N)
  json=$("$@")
  end=$(date +%s.%N)
  printf '%-28s %6.2f s  %s\n' "$name" "$(echo "$end - $start" | bc)" \
    "$(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("snapshots %d copied, %d there; %d blobs, %.1f MiB copied; requests to S3: %s" % (r["snapshots_copied"], r["snapshots_present"], r["blobs_copied"], r["bytes_copied"]/2**20, (r.get("requests_target") or r.get("requests_source") or {})))')"
}
{
  echo "# cairn copy, $(date -u +%FT%TZ) on $(hostname): $(nproc) cores; cairn $(git -C "$here" rev-parse --short HEAD) (release)"
  echo "# data: $data ($(du -sh "$tree" | cut -f1)), $nights snapshots; server: moto_server on 127.0.0.1"
  step "local -> S3, first" "$cairn" --json --store "$local_store" copy --to "$remote" --to-cache-dir "$work/cache-remote"
  step "local -> S3, nothing new" "$cairn" --json --store "$local_store" copy --to "$remote" --to-cache-dir "$work/cache-remote"
  echo "one more night" >>"$(find "$tree" -type f | sed -n 1p)"
  "$cairn" --store "$local_store" --quiet snapshot "$tree"
  step "local -> S3, one night" "$cairn" --json --store "$local_store" copy --to "$remote" --to-cache-dir "$work/cache-remote"
  step "S3 -> new local store" "$cairn" --json --store "$remote" --cache-dir "$work/cache-remote" copy --to "$work/back"
  step "S3 -> local, nothing new" "$cairn" --json --store "$remote" --cache-dir "$work/cache-remote" copy --to "$work/back"
} | tee "$here/benches/results/$(date +%F)-$(hostname)-copy.txt"
