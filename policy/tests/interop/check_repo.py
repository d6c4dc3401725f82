#!/usr/bin/env python3
"""Check a TUF repository with python-tuf, the reference implementation.

Usage: check_repo.py REPO_DIR TARGET_PATH [TARGET_PATH...]

REPO_DIR is a consistent-snapshot repository (metadata/N.root.json,
metadata/timestamp.json, metadata/V.snapshot.json, metadata/V.<role>.json,
targets/<dir>/<sha256>.<basename>), e.g. one written by keyshare.

1. Static checks with tuf.api.metadata: every root version against its
   predecessor and itself, then timestamp, snapshot, targets and every
   delegated role listed in snapshot against its delegator (verify_delegate),
   plus the versions, lengths and hashes the referring metadata records.
2. Client checks: python-tuf's ngclient.Updater refreshes from a local HTTP
   server over REPO_DIR, then resolves and downloads every TARGET_PATH and
   compares it with the file in REPO_DIR/targets.

Prints one line per check; exits 0 only if all passed, else prints
`FAIL: <what>` lines on stderr and exits 1. Run it with the interop venv
(KEYSHARE_PYTHON, target/pyenv/bin/python).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater

# What Checker.check returns when the check failed (None can be a result).
FAILED: Any = object()


class Checker:
    """Counts checks; prints `ok:` lines on stdout and `FAIL:` lines on stderr."""

    def __init__(self) -> None:
        self.failures = 0

    def ok(self, what: str) -> None:
        print(f"ok: {what}", flush=True)

    def fail(self, what: str) -> None:
        self.failures += 1
        print(f"FAIL: {what}", file=sys.stderr, flush=True)

    def check(self, what: str, fn: Any, *args: Any) -> Any:
        """Run fn(*args); report `what` as passed, or failed with the error.

        Returns fn's result, or FAILED.
        """
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001 - any error is a failed check
            self.fail(f"{what}: {type(e).__name__}: {e}")
            return FAILED
        self.ok(what)
        return result


def load(path: Path, expected_type: str) -> tuple[Metadata, bytes]:
    data = path.read_bytes()
    md = Metadata.from_bytes(data)
    if md.signed.type != expected_type:
        raise ValueError(f"{path.name}: expected _type {expected_type}, got {md.signed.type}")
    return md, data


def check_meta(md: Metadata, data: bytes, meta: MetaFile) -> None:
    """What a client checks against the referring MetaFile, and expiry."""
    meta.verify_length_and_hashes(data)
    if md.signed.version != meta.version:
        raise ValueError(f"version {md.signed.version}, referring meta says {meta.version}")
    if md.signed.is_expired(datetime.now(timezone.utc)):
        raise ValueError(f"expired at {md.signed.expires}")


def verify_with(delegator: Metadata, role: str, md: Metadata) -> None:
    delegator.signed.verify_delegate(role, md.signed_bytes, md.signatures)


def static_checks(c: Checker, repo: Path) -> int:
    """Part 1: verify every metadata file. Returns the latest root version."""
    mdir = repo / "metadata"

    # Root chain: 1.root.json is the trust anchor, verified by itself;
    # N+1 must be signed by a threshold of root N and of root N+1.
    first = c.check("1.root.json parses", load, mdir / "1.root.json", "root")
    if first is FAILED:
        return 1
    root = first[0]
    c.check("root v1: version is 1", _expect, root.signed.version == 1, "not 1")
    c.check("root v1 signed by root v1", verify_with, root, "root", root)
    n = 2
    while (mdir / f"{n}.root.json").exists():
        new = c.check(f"{n}.root.json parses", load, mdir / f"{n}.root.json", "root")
        if new is FAILED:
            return root.signed.version
        new = new[0]
        c.check(f"root v{n}: version is {n}", _expect, new.signed.version == n, "mismatch")
        c.check(f"root v{n} signed by root v{n - 1}", verify_with, root, "root", new)
        c.check(f"root v{n} signed by root v{n}", verify_with, new, "root", new)
        root, n = new, n + 1
    latest = root.signed
    c.check(
        f"root v{latest.version}: consistent_snapshot is true",
        _expect,
        latest.consistent_snapshot is True,
        "the layout needs consistent snapshots",
    )
    c.check(
        f"root v{latest.version}: not expired",
        _expect,
        not latest.is_expired(),
        f"expired at {latest.expires}",
    )

    # Top-level roles, each signed by the keys the latest root names.
    ts = c.check("timestamp.json parses", load, mdir / "timestamp.json", Timestamp.type)
    if ts is FAILED:
        return root.signed.version
    ts = ts[0]
    c.check("timestamp signed by root", verify_with, root, Timestamp.type, ts)
    c.check(
        "timestamp: not expired",
        _expect,
        not ts.signed.is_expired(),
        f"expired at {ts.signed.expires}",
    )

    snap_meta = ts.signed.snapshot_meta
    snap_file = mdir / f"{snap_meta.version}.snapshot.json"
    snap = c.check(f"{snap_file.name} parses", load, snap_file, Snapshot.type)
    if snap is FAILED:
        return root.signed.version
    snap, snap_data = snap
    c.check("snapshot signed by root", verify_with, root, Snapshot.type, snap)
    c.check("snapshot matches timestamp meta", check_meta, snap, snap_data, snap_meta)

    # Targets roles: walk the delegation graph from targets, loading every
    # role that snapshot lists, each verified by the role that delegates it.
    meta: dict[str, MetaFile] = snap.signed.meta
    if "targets.json" not in meta:
        c.fail("snapshot has no meta for targets.json")
        return root.signed.version
    loaded: dict[str, Metadata] = {}
    queue: list[tuple[str, str, Metadata]] = [("targets", "root", root)]
    verified: set[tuple[str, str]] = set()
    while queue:
        role, parent, delegator = queue.pop(0)
        if (role, parent) in verified:
            continue
        verified.add((role, parent))
        entry = meta.get(f"{role}.json")
        if entry is None:
            c.fail(f"{role}: delegated by {parent} but missing from snapshot meta")
            continue
        if role not in loaded:
            path = mdir / f"{entry.version}.{parse.quote(role, '')}.json"
            got = c.check(f"{path.name} parses", load, path, Targets.type)
            if got is FAILED:
                continue
            md, data = got
            c.check(f"{role} matches snapshot meta", check_meta, md, data, entry)
            loaded[role] = md
        md = loaded[role]
        c.check(f"{role} signed by {parent}", verify_with, delegator, role, md)
        queue.extend((child, role, md) for child in delegated_roles(md))

    for filename in meta:
        role = filename.removesuffix(".json")
        if role not in loaded:
            c.fail(f"snapshot lists {filename}, which no loaded role delegates to")
    c.ok(f"{len(loaded)} targets roles verified")
    return root.signed.version


def delegated_roles(md: Metadata) -> list[str]:
    """Names of the roles a targets role delegates to, succinct bins included."""
    d = md.signed.delegations
    if d is None:
        return []
    if d.roles is not None:
        return list(d.roles)
    return list(d.succinct_roles.get_roles()) if d.succinct_roles else []


def _expect(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def client_checks(c: Checker, repo: Path, targets: list[str], root_version: int) -> None:
    """Part 2: python-tuf's ngclient against the repository over local HTTP."""
    handler = functools.partial(_QuietHandler, directory=str(repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as md_dir, tempfile.TemporaryDirectory() as dl_dir:
            updater = c.check(
                "ngclient: load 1.root.json as trusted root",
                lambda: Updater(
                    metadata_dir=md_dir,
                    metadata_base_url=f"{base}/metadata/",
                    target_base_url=f"{base}/targets/",
                    target_dir=dl_dir,
                    bootstrap=(repo / "metadata" / "1.root.json").read_bytes(),
                ),
            )
            if updater is FAILED or c.check("ngclient: refresh", updater.refresh) is FAILED:
                return
            client_root = updater._trusted_set.root.version
            c.check(
                f"ngclient: trusts root v{root_version}",
                _expect,
                client_root == root_version,
                f"client ended at v{client_root}",
            )
            for path in targets:
                info = c.check(f"ngclient: get_targetinfo {path}", updater.get_targetinfo, path)
                if info is FAILED:
                    continue
                if info is None:
                    c.fail(f"ngclient: {path} not found")
                    continue
                c.check(f"ngclient: download {path}", download_and_compare, updater, info, repo)
    finally:
        server.shutdown()
        server.server_close()


def download_and_compare(updater: Updater, info: Any, repo: Path) -> None:
    """Download through ngclient and compare with targets/<dir>/<sha256>.<base>."""
    got = Path(updater.download_target(info)).read_bytes()
    digest = hashlib.sha256(got).hexdigest()
    parent, _, base = info.path.rpartition("/")
    on_disk = repo / "targets" / parent / f"{digest}.{base}"
    if not on_disk.is_file():
        raise ValueError(f"no file {on_disk.relative_to(repo)} for the downloaded bytes")
    if on_disk.read_bytes() != got:
        raise ValueError(f"{on_disk.relative_to(repo)} differs from the downloaded bytes")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    repo = Path(argv[0]).resolve()
    c = Checker()
    try:
        root_version = static_checks(c, repo)
        client_checks(c, repo, argv[1:], root_version)
    except Exception as e:  # noqa: BLE001 - anything unexpected is a failure
        c.fail(f"unexpected error: {type(e).__name__}: {e}")
    if c.failures:
        print(f"FAIL: {c.failures} check(s) failed for {repo}", file=sys.stderr)
        return 1
    print(f"all checks passed for {repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
