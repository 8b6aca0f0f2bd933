# Shared by the benchmark scripts (sourced, not run): building cairn and
# choosing real files from this machine the same way every time.
# shellcheck shell=bash

# root [gen]: builds cairn (and, with `gen`, the SQLite generator) in
# release mode in the checkout at root; sets $cairn (and $gen) to the
# binaries, for the calling script.
build_release() {
  (cd "$1" && cargo build --locked --release --quiet)
  # shellcheck disable=SC2034
  cairn=$1/target/release/cairn
  if [ "${2:-}" = gen ]; then
    (cd "$1" && cargo build --locked --release --quiet --example sqlite_gen)
    # shellcheck disable=SC2034
    gen=$1/target/release/examples/sqlite_gen
  fi
}

# dir, MiB: regular files under dir, in path order, up to MiB in all.
pick() {
  # awk stops reading at the limit, so find may die of SIGPIPE: expected.
  { find "$1" -type f -size +0 -printf '%p\t%s\n' 2>/dev/null || true; } \
    | LC_ALL=C sort \
    | awk -F'\t' -v limit=$(($2 * 1024 * 1024)) '{ if (total + $2 > limit) exit; total += $2; print $1 }' \
    || true
}
