# The comparison datasets and their nightly edits, shared by
# benches/compare/run.sh (local stores) and benches/compare/s3.sh (S3), so
# that both measure the same data (sourced, not run).
#
# The caller sets $here (the checkout), $work (the work directory), $gen
# (the SQLite generator, from build_release ... gen) and defines
# data_of DATASET (where that dataset lives in the current run).
# Sizes: SRC_MB, BULK_MB, SMALL_FILES, SQLITE_MB, with the caller's defaults
# in src_mb, bulk_mb, small_files and sqlite_mb.
# shellcheck shell=bash

copy_list() { # list file, destination
  mkdir -p "$2"
  tar -cf - --files-from="$1" 2>/dev/null | tar -xf - -C "$2"
}

make_data() { # dataset -> its data_of directory, fresh
  local d
  d=$(data_of "$1")
  rm -rf "$d"
  case $1 in
    src)
      local mb=${SRC_MB:-$src_mb}
      { pick /usr/include $((mb * 2 / 5)); pick /usr/lib/python3 $((mb * 2 / 5)); pick /usr/share/perl $((mb / 5)); } \
        | grep -v -e '\.pyc$' >"$work/src.list" || true
      copy_list "$work/src.list" "$d"
      ;;
    bulk)
      local mb=${BULK_MB:-$bulk_mb}
      { pick /usr/bin $((mb / 5)); pick /usr/share $((mb * 3 / 10)); pick /usr/lib $((mb / 2)); } >"$work/bulk.list"
      copy_list "$work/bulk.list" "$d"
      ;;
    small)
      python3 - "$d" "${SMALL_FILES:-$small_files}" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
for i in range(n):
    path = os.path.join(root, f"d{i // 100:04}")
    os.makedirs(path, exist_ok=True)
    size = rng.randint(1024, 4096)
    with open(os.path.join(path, f"f{i % 100:03}.txt"), "w") as fh:
        fh.write(" ".join(rng.choice(words) for _ in range(size // 5))[:size])
PY
      ;;
    sqlite)
      mkdir -p "$d"
      "$gen" create "$d/app.db" --size-mb "${SQLITE_MB:-$sqlite_mb}" --seed 1 >/dev/null
      ;;
  esac
}

night() { # dataset, night number: the scripted change of that night
  case $1 in
    src) python3 "$here/benches/compare/edit_tree.py" "$(data_of src)" "$2" ;;
    sqlite) "$gen" night "$(data_of sqlite)/app.db" --night "$2" --seed 1 --churn 1.5 >/dev/null ;;
  esac
}

# Reads every file under the given paths, so that the next step starts
# with them in the page cache whatever ran before (this machine's cache is
# small: the tool that ran first otherwise had the data warm, the next one
# read it from disk).
warm() {
  local dir
  for dir in "$@"; do
    [ -e "$dir" ] && find "$dir" -type f -print0 | xargs -0 -r cat >/dev/null
  done
  return 0
}
