#!/usr/bin/env python3
"""Time python-tuf's full verification of a TUF repository, in process.

Usage: python_tuf_verify.py REPO_DIR [--rounds N]

REPO_DIR is a consistent-snapshot repository (metadata/N.root.json,
metadata/timestamp.json, metadata/V.snapshot.json, metadata/V.<role>.json).
All files are read into memory first; each round then does what a client's
full refresh does, with python-tuf's TrustedMetadataSet (the verifier inside
ngclient.Updater) and no network:

    1.root.json as trusted root, update_root for 2..N, update_timestamp,
    update_snapshot, update_targets, then update_delegated_targets for every
    delegated role snapshot lists (named delegations and succinct hash bins),
    parents before children.

Prints one JSON line:
    {"impl": "python-tuf", "roles": N, "seconds_per_refresh": X, "rounds": R}
where roles counts the roles whose metadata a refresh verifies (root,
timestamp, snapshot, targets and every delegated role; root once, however
many versions) and seconds_per_refresh is the median over the rounds.
Run it with the interop venv (KEYSHARE_PYTHON, target/pyenv/bin/python).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from urllib import parse

from tuf.api.metadata import Metadata
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
from tuf.ngclient.config import EnvelopeType


def load_repo(repo: Path) -> tuple[list[bytes], bytes, bytes, list[tuple[str, str, bytes]]]:
    """Read every file a refresh needs. Returns (roots, timestamp, snapshot,
    [(role, parent, bytes)] for targets and its delegates, parents first)."""
    mdir = repo / "metadata"
    roots = []
    n = 1
    while (mdir / f"{n}.root.json").exists():
        roots.append((mdir / f"{n}.root.json").read_bytes())
        n += 1
    if not roots:
        raise SystemExit(f"{mdir}/1.root.json not found")
    timestamp = (mdir / "timestamp.json").read_bytes()
    ts = Metadata.from_bytes(timestamp).signed
    snapshot = (mdir / f"{ts.snapshot_meta.version}.snapshot.json").read_bytes()
    meta = Metadata.from_bytes(snapshot).signed.meta

    # Breadth-first over the delegation graph so that every parent is loaded
    # before its children; each role is loaded once, from its first delegator.
    ordered: list[tuple[str, str, bytes]] = []
    queue = [("targets", "root")]
    seen: set[str] = set()
    while queue:
        role, parent = queue.pop(0)
        if role in seen:
            continue
        seen.add(role)
        entry = meta.get(f"{role}.json")
        if entry is None:
            raise SystemExit(f"{role} is delegated by {parent} but not in snapshot")
        data = (mdir / f"{entry.version}.{parse.quote(role, '')}.json").read_bytes()
        ordered.append((role, parent, data))
        delegations = Metadata.from_bytes(data).signed.delegations
        if delegations is None:
            continue
        if delegations.roles is not None:
            children = list(delegations.roles)
        else:
            children = list(delegations.succinct_roles.get_roles())
        queue.extend((child, role) for child in children)

    unreached = {f.removesuffix(".json") for f in meta} - seen
    if unreached:
        raise SystemExit(f"snapshot lists roles no one delegates to: {sorted(unreached)}")
    return roots, timestamp, snapshot, ordered


def refresh(
    roots: list[bytes], timestamp: bytes, snapshot: bytes, targets: list[tuple[str, str, bytes]]
) -> None:
    """One full verification; raises if anything fails to verify."""
    trusted = TrustedMetadataSet(roots[0], EnvelopeType.METADATA)
    for data in roots[1:]:
        trusted.update_root(data)
    trusted.update_timestamp(timestamp)
    trusted.update_snapshot(snapshot)
    for role, parent, data in targets:
        if role == "targets":
            trusted.update_targets(data)
        else:
            trusted.update_delegated_targets(data, role, parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    roots, timestamp, snapshot, targets = load_repo(args.repo_dir)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        refresh(roots, timestamp, snapshot, targets)
        times.append(time.perf_counter() - start)

    result = {
        "impl": "python-tuf",
        "roles": 3 + len(targets),
        "seconds_per_refresh": statistics.median(times),
        "rounds": args.rounds,
    }
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
