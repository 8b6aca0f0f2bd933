"""Prints the tables of benches/compare/s3.sh from its TSV.

Rows: tool, dataset, step, wall, user, sys, peak RSS (KiB), run, store
bytes, store objects, server CPU seconds, then the server's request counts
(get put list delete head post other errors) and cairn's own count ("-" for
the other tools). Each cell is taken from the run with the lowest wall time
of that tool, dataset and step. Then the issue's targets (issue 15, section
4): cairn / restic wall <= 0.5 for the first snapshot, restore and full
read check, <= 0.2 for nightly and no-change snapshots; fewer requests than
restic on every step; peak RSS <= 150 MiB.
"""
import collections
import sys

KINDS = ["get", "put", "list", "delete", "head", "post", "other", "errors"]
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    tool, ds, step = f[:3]
    counts = dict(zip(KINDS, map(int, f[11:19])))
    row = dict(
        wall=float(f[3]),
        cpu=float(f[4]) + float(f[5]),
        rss=int(f[6]) // 1024,
        size=int(f[8]),
        objects=int(f[9]),
        server=float(f[10]),
        requests=sum(v for k, v in counts.items() if k != "errors"),
        counts=counts,
        own=f[19],
    )
    best = rows.get((tool, ds, step))
    if best is None or row["wall"] < best["wall"]:
        rows[(tool, ds, step)] = row

TOOLS = [t for t in ["restic", "rustic", "cairn"] if any(k[0] == t for k in rows)]
PEERS = [t for t in TOOLS if t != "cairn"]
datasets = list(dict.fromkeys(ds for _, ds, _ in rows))


def steps_of(ds):
    return list(dict.fromkeys(s for _, d, s in rows if d == ds))


def ratio(ds, step, field, peer):
    c, p = rows.get(("cairn", ds, step)), rows.get((peer, ds, step))
    if not c or not p or not p[field]:
        return None
    return c[field] / p[field]


def table(title, ds, field, fmt):
    heads = TOOLS + [f"cairn/{p}" for p in PEERS]
    print(f"\n{ds}: {title}")
    print(f"  {'step':<9}" + "".join(f"{h:>14}" for h in heads))
    for step in steps_of(ds):
        cells = []
        for tool in TOOLS:
            r = rows.get((tool, ds, step))
            cells.append(fmt(r[field]) if r else "-")
        for peer in PEERS:
            x = ratio(ds, step, field, peer)
            cells.append(f"{x:.2f}x" if x is not None else "-")
        print(f"  {step:<9}" + "".join(f"{c:>14}" for c in cells))


def breakdown(ds):
    print(f"\n{ds}: requests by kind, get/put/list/delete/head/post/other (answers >= 400); cairn's own count get/put/list/delete/head/MiB down/MiB up")
    for step in steps_of(ds):
        parts = []
        for tool in TOOLS:
            r = rows.get((tool, ds, step))
            if not r:
                continue
            c = r["counts"]
            kinds = "/".join(str(c[k]) for k in KINDS[:7])
            parts.append(f"{tool} {kinds} ({c['errors']})")
        own = rows.get(("cairn", ds, step), {}).get("own", "-")
        print(f"  {step:<9} " + "   ".join(parts) + f"   cairn says {own}")


for ds in datasets:
    table("wall seconds", ds, "wall", lambda v: f"{v:.2f}")
    table("requests (the server's log)", ds, "requests", lambda v: f"{v}")
    breakdown(ds)
    table("peak RSS MiB", ds, "rss", lambda v: f"{v}")
    table("CPU seconds of the tool", ds, "cpu", lambda v: f"{v:.2f}")
    table("CPU seconds of the server during the step", ds, "server", lambda v: f"{v:.2f}")
    table("store MiB after the step", ds, "size", lambda v: f"{v / 2**20:.1f}")
    table("store objects after the step", ds, "objects", lambda v: f"{v}")

TARGET = {"first": 0.5, "nochange": 0.2, "restore": 0.5, "check": 0.5}


def target_of(step):
    return 0.2 if step.startswith("night") else TARGET.get(step)


print("\nTargets (issue 15, section 4): cairn / restic wall, requests and peak RSS of cairn")
print(f"  {'dataset':<8}{'step':<10}{'wall':>8}{'target':>8}{'':>6}{'requests':>10}{'':>6}{'rss':>6}{'':>6}"
      + "".join(f"{'wall/' + p:>14}{'req/' + p:>12}" for p in PEERS[1:]))
misses = 0
for ds in datasets:
    for step in steps_of(ds):
        target = target_of(step)
        wall = ratio(ds, step, "wall", "restic")
        req = ratio(ds, step, "requests", "restic")
        c = rows.get(("cairn", ds, step))
        if wall is None or c is None:
            continue
        wall_ok = "" if target is None else ("ok" if wall <= target else "MISS")
        req_ok = "ok" if req is not None and req < 1 else "MISS"
        rss_ok = "ok" if c["rss"] <= 150 else "MISS"
        misses += [wall_ok, req_ok, rss_ok].count("MISS")
        extra = ""
        for peer in PEERS[1:]:
            w, q = ratio(ds, step, "wall", peer), ratio(ds, step, "requests", peer)
            extra += f"{(f'{w:.2f}x' if w is not None else '-'):>14}{(f'{q:.2f}x' if q is not None else '-'):>12}"
        print(f"  {ds:<8}{step:<10}{wall:>7.2f}x{(f'{target}x' if target else '-'):>8}{wall_ok:>6}"
              f"{req:>9.2f}x{req_ok:>6}{c['rss']:>6}{rss_ok:>6}" + extra)
print(f"  {misses} misses")
