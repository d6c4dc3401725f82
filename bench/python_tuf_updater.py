#!/usr/bin/env python3
"""python-tuf's ngclient.Updater doing what `keyshare refresh` does, over HTTP.

Usage: python_tuf_updater.py BASE_URL ROOT_FILE WORK_DIR [--lookups N]

From an empty WORK_DIR: Updater(bootstrap=ROOT_FILE).refresh(); then the
namespace index (org/namespaces.json or its shards org/namespaces/<x>.json,
as listed by top-level targets), org/revocations.json and org/peers.json,
and every namespaces/<ns>/trust.json of the index, each through
get_targetinfo + download_target (hash-checked). That is the refresh
(refresh_seconds). Then N get_targetinfo lookups of trust documents of
pseudo-randomly picked namespaces (lookup_seconds).

Prints one JSON line:
  {"impl": "python-tuf", "trust_documents": D, "refresh_seconds": X,
   "lookup_seconds": Y, "lookups": N}
Run it with the interop venv (KEYSHARE_PYTHON, target/pyenv/bin/python).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from tuf.ngclient import Updater

INDEX = re.compile(r"^org/namespaces(\.json|/[^/]+\.json)$")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("base_url")
    p.add_argument("root_file", type=Path)
    p.add_argument("work_dir", type=Path)
    p.add_argument("--lookups", type=int, default=1000)
    a = p.parse_args()
    md, dl = a.work_dir / "metadata", a.work_dir / "targets"
    md.mkdir(parents=True, exist_ok=True)
    dl.mkdir(parents=True, exist_ok=True)
    base = a.base_url.rstrip("/")

    t0 = time.perf_counter()
    u = Updater(
        metadata_dir=str(md),
        metadata_base_url=base + "/metadata/",
        target_dir=str(dl),
        target_base_url=base + "/targets/",
        bootstrap=a.root_file.read_bytes(),
    )
    u.refresh()

    def fetch(path: str) -> bytes | None:
        info = u.get_targetinfo(path)
        if info is None:
            return None
        out = u.download_target(info, filepath=str(dl / path.replace("/", "_")))
        return Path(out).read_bytes()

    top = json.loads((md / "targets.json").read_bytes())["signed"]["targets"]
    names: list[str] = []
    for path in sorted(top):
        if INDEX.match(path):
            doc = json.loads(fetch(path))
            names.extend(e["name"] for e in doc["namespaces"])
    fetch("org/revocations.json")
    fetch("org/peers.json")
    docs = 0
    for name in names:
        if fetch(f"namespaces/{name}/trust.json") is not None:
            docs += 1
    t1 = time.perf_counter()

    rng = random.Random(1)
    picks = [rng.choice(names) for _ in range(a.lookups)] if names else []
    for name in picks:
        assert u.get_targetinfo(f"namespaces/{name}/trust.json") is not None
    t2 = time.perf_counter()
    print(json.dumps({
        "impl": "python-tuf",
        "trust_documents": docs,
        "refresh_seconds": t1 - t0,
        "lookup_seconds": t2 - t1,
        "lookups": a.lookups,
    }))


if __name__ == "__main__":
    main()
