"""One night of edits to a source-tree-like corpus, deterministic in the night.

About 2% of the files get a line inserted in the middle; 5 files are added,
5 removed and 5 renamed. Used by benches/compare/run.sh.
"""
import os
import random
import sys

root, night = sys.argv[1], int(sys.argv[2])
rng = random.Random(night)
files = sorted(
    os.path.join(d, f) for d, _, names in os.walk(root) for f in names
)
for path in rng.sample(files, max(1, len(files) // 50)):
    with open(path, "rb") as fh:
        data = fh.read()
    middle = len(data) // 2
    line = f"/* night {night}: edited {rng.random()} */\n".encode()
    with open(path, "wb") as fh:
        fh.write(data[:middle] + line + data[middle:])
victims = rng.sample(files, 10)
for path in victims[:5]:
    if os.path.exists(path):
        os.remove(path)
for path in victims[5:]:
    if os.path.exists(path):
        os.rename(path, path + f".renamed{night}")
for i in range(5):
    base = rng.choice(files)
    new = os.path.join(os.path.dirname(base), f"added-{night}-{i}.txt")
    with open(new, "w") as fh:
        fh.write(f"new file {night} {i}\n" * rng.randint(10, 2000))
