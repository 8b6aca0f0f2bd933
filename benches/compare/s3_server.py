"""The loopback S3 server's side of benches/compare/s3.sh, without boto3.

  s3_server.py bucket ENDPOINT NAME       creates bucket NAME (moto checks
                                          no signature: a plain PUT does)
  s3_server.py size ENDPOINT NAME         "BYTES OBJECTS" in bucket NAME
  s3_server.py count LOG OFFSET NAME      the requests for bucket NAME that
                                          moto_server logged in LOG after
                                          byte OFFSET, by kind:
                                          "get put list delete head post other errors"
  s3_server.py own FILE                   the `requests` cairn reports in the
                                          --json document in FILE, as one word
                                          (get/put/list/delete/head/MiB down/MiB up),
                                          "-" when there is none

moto_server (werkzeug) logs one line per request on stderr, as
  127.0.0.1 - - [06/Dec/2026 05:29:11] "GET /bucket?list-type=2&prefix=a/ HTTP/1.1" 200 -
with path-style addressing (every tool here uses it for an IP endpoint), so
the bucket is the first path segment. Kinds: a GET of the bucket itself with
a listing query (list-type, prefix, delimiter, marker, continuation) or none
is a LIST, any other GET of the bucket (location, versioning) is "other", a
GET of a key is a GET; POST is a multipart create/complete or a multi-object
delete. `errors` counts answers >= 400 among them (a HEAD that finds
nothing, a conditional PUT that finds the object there), which S3 bills too.
"""
import json
import re
import sys
import urllib.request
import xml.etree.ElementTree as ET

LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')
KINDS = ["get", "put", "list", "delete", "head", "post", "other", "errors"]
LISTING = ("list-type", "prefix", "delimiter", "marker", "continuation-token")


def kind_of(method, target):
    path, _, query = target.partition("?")
    key = path.lstrip("/").partition("/")[2]
    if method == "GET" and not key:
        if not query or any(q in query for q in LISTING):
            return "list"
        return "other"
    return {"GET": "get", "PUT": "put", "DELETE": "delete", "HEAD": "head", "POST": "post"}.get(
        method, "other"
    )


def count(log, offset, bucket):
    counts = dict.fromkeys(KINDS, 0)
    with open(log, "rb") as fh:
        fh.seek(offset)
        for raw in fh:
            m = LINE.search(raw.decode("utf-8", "replace"))
            if not m:
                continue
            method, target, status = m.groups()
            if target.lstrip("/").partition("/")[0].partition("?")[0] != bucket:
                continue
            counts[kind_of(method, target)] += 1
            if int(status) >= 400:
                counts["errors"] += 1
    print(" ".join(str(counts[k]) for k in KINDS))


def own(path):
    """cairn's own count: `summary.requests` of a snapshot, `requests` of
    restore and verify."""
    try:
        doc = json.load(open(path))
    except (OSError, ValueError):
        print("-")
        return
    found = find_requests(doc)
    if found is None:
        print("-")
        return
    mib = lambda n: f"{found.get(n, 0) / 2**20:.1f}"
    counts = "/".join(str(found.get(k, 0)) for k in ["get", "put", "list", "delete", "head"])
    print(f"{counts}/{mib('bytes_down')}/{mib('bytes_up')}")


def find_requests(doc):
    if isinstance(doc, dict):
        if isinstance(doc.get("requests"), dict):
            return doc["requests"]
        children = doc.values()
    elif isinstance(doc, list):
        children = doc
    else:
        return None
    for child in children:
        found = find_requests(child)
        if found is not None:
            return found
    return None


def create_bucket(endpoint, name):
    req = urllib.request.Request(f"{endpoint}/{name}", data=b"", method="PUT")
    with urllib.request.urlopen(req) as resp:
        if resp.status != 200:
            sys.exit(f"creating bucket {name}: HTTP {resp.status}")


def size(endpoint, name):
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    total = objects = 0
    token = None
    while True:
        url = f"{endpoint}/{name}?list-type=2"
        if token:
            url += "&continuation-token=" + urllib.request.quote(token, safe="")
        with urllib.request.urlopen(url) as resp:
            root = ET.fromstring(resp.read())
        for item in root.iter(ns + "Contents"):
            total += int(item.find(ns + "Size").text)
            objects += 1
        token = root.findtext(ns + "NextContinuationToken")
        if root.findtext(ns + "IsTruncated") != "true" or not token:
            break
    print(total, objects)


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    if verb == "bucket":
        create_bucket(*args)
    elif verb == "size":
        size(*args)
    elif verb == "own":
        own(*args)
    elif verb == "count":
        count(args[0], int(args[1]), args[2])
    else:
        sys.exit(__doc__)
