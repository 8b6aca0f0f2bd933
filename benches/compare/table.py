"""Prints the comparison table of benches/compare/run.sh from its TSV.

Rows: tool, dataset, step, wall, user, sys, peak RSS (KiB), store bytes,
run, local cache bytes (absent in runs before 2026-12-07-vm-compare-4,
cairn 8493195: their store bytes were cairn's with its catalog, the
peers' without their caches; such runs print "-" for caches). Each cell is taken from the run with the lowest wall time of that
tool, dataset and step (store sizes are the same in every run).
For each dataset and step: wall seconds of every tool with its ratio to
restic; then CPU, peak RSS and store sizes; then the ceilings. Last, the
goals of issue 21: for every step, cairn against the best peer (wall, peak
RSS, store size, store size with the local cache), with the peer named.
"""
import collections
import sys

rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    fields = line.rstrip("\n").split("\t")
    tool, ds, step, wall, user, sys_, rss, size = fields[:8]
    cache = int(fields[9]) if len(fields) > 9 else None
    row = dict(
        wall=float(wall),
        cpu=float(user) + float(sys_),
        rss=int(rss) // 1024,
        size=int(size),
        cache=cache,
        both=None if cache is None else int(size) + cache,
    )
    best = rows.get((tool, ds, step))
    if best is None or row["wall"] < best["wall"]:
        rows[(tool, ds, step)] = row

TOOLS = [t for t in ["restic", "borg", "rustic", "bupstash", "cairn"] if any(k[0] == t for k in rows)]
PEERS = [t for t in TOOLS if t != "cairn"]
datasets = list(dict.fromkeys(ds for _, ds, _ in rows))


def steps_of(ds):
    return list(dict.fromkeys(s for t, d, s in rows if d == ds and t != "ceiling"))


def cell(tool, ds, step, field, fmt):
    r = rows.get((tool, ds, step))
    base = rows.get(("restic", ds, step))
    if not r or r[field] is None:
        return "-"
    text = fmt(r[field])
    if tool != "restic" and base and base[field]:
        text += f" ({r[field] / base[field]:.2f}x)"
    return text


def table(title, ds, field, fmt, steps):
    print(f"\n{ds}: {title}")
    print(f"  {'step':<10}" + "".join(f"{t:>22}" for t in TOOLS))
    for step in steps:
        print(f"  {step:<10}" + "".join(f"{cell(t, ds, step, field, fmt):>22}" for t in TOOLS))


for ds in datasets:
    steps = [s for s in steps_of(ds) if s != "init"]
    table("wall seconds (ratio to restic)", ds, "wall", lambda v: f"{v:.2f}", steps)
    table("CPU seconds", ds, "cpu", lambda v: f"{v:.2f}", steps)
    table("peak RSS MiB", ds, "rss", lambda v: f"{v}", steps)
    table("store MiB after the step", ds, "size", lambda v: f"{v / 2**20:.1f}", steps)
    table("local cache MiB after the step", ds, "cache", lambda v: f"{v / 2**20:.1f}", steps)
    c = {s: rows[("ceiling", ds, s)]["wall"] for t, d, s in rows if t == "ceiling" and d == ds}
    first = rows.get(("restic", ds, "first"))
    nochange = rows.get(("restic", ds, "nochange"))
    parts = [f"{k} {v:.2f}s" for k, v in c.items()]
    print(f"  ceilings: {', '.join(parts)}")
    if first and "zstd-3" in c:
        print(f"  zstd -3 ceiling / restic first snapshot: {c['zstd-3'] / first['wall']:.2f}x")
    if nochange and "walk" in c:
        print(f"  find walk / restic no-change snapshot: {c['walk'] / nochange['wall']:.2f}x")


def best_peer(ds, step, field):
    """The peer with the lowest `field` on this step, and its value."""
    found = [
        (rows[(t, ds, step)][field], t)
        for t in PEERS
        if (t, ds, step) in rows and rows[(t, ds, step)][field] is not None
    ]
    return min(found) if found else (None, None)


HEADS = ["wall", "peak RSS", "store", "store + cache"]
print("\ncairn / best peer (goal: wall <= 0.8x, RSS and store <= 1.0x; store + cache for information)")
print(f"  {'dataset':<8} {'step':<10} " + " ".join(f"{h:>22}" for h in HEADS))
for ds in datasets:
    for step in [s for s in steps_of(ds) if s != "init"]:
        mine = rows.get(("cairn", ds, step))
        if not mine:
            continue
        cells = []
        for field in ["wall", "rss", "size", "both"]:
            value, peer = best_peer(ds, step, field)
            known = value and mine[field] is not None
            cells.append(f"{mine[field] / value:.2f} ({peer})" if known else "-")
        print(f"  {ds:<8} {step:<10} " + " ".join(f"{c:>22}" for c in cells))
