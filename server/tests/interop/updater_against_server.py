#!/usr/bin/env python3
"""Run python-tuf's ngclient.Updater against a running keyshare server.

Usage: updater_against_server.py [--out DIR] [--metadata-dir DIR] BASE_URL ROOT_FILE TARGET [TARGET...]

BASE_URL is the server (http://127.0.0.1:PORT); ROOT_FILE the trusted root
to bootstrap from (metadata/1.root.json as the operator pinned it). With a
fresh metadata cache, the Updater refreshes from BASE_URL/metadata/
(the root chain, timestamp, snapshot, targets and delegated roles), then
resolves and downloads every TARGET from BASE_URL/targets/, which verifies
length and hashes against the signed metadata. The bytes are compared with
what the server serves for the consistent-snapshot name
targets/<dir>/<sha256>.<basename>. With --out, each target is also copied
to DIR/<TARGET> for the caller to inspect, and the audit chain head the
verified timestamp carries (the `x-keyshare-audit` field, which python-tuf
keeps in `unrecognized_fields`) to DIR/x-keyshare-audit.json. With
--metadata-dir, the Updater's metadata cache is that directory and is kept
between runs, as a long-lived client's is: ROOT_FILE bootstraps it only
while it holds no root.json, and later runs start from what the earlier
ones verified (so a new snapshot must list every role the cached one did,
at the same or a newer version).

Prints one line per target (`ok: TARGET sha256 LENGTH`) and the versions
the client ended at (`versions: root=R timestamp=T snapshot=S targets=G`);
exits 0 only if everything passed, else prints `FAIL: ...` on stderr and
exits 1.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import urllib.request
from pathlib import Path

from tuf.ngclient import Updater


def fail(msg: str) -> int:
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    return 1


def main(argv: list[str]) -> int:
    out: Path | None = None
    keep: Path | None = None
    while len(argv) >= 2 and argv[0] in ("--out", "--metadata-dir"):
        if argv[0] == "--out":
            out = Path(argv[1])
        else:
            keep = Path(argv[1])
        argv = argv[2:]
    if len(argv) < 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    base = argv[0].rstrip("/")
    root = Path(argv[1]).read_bytes()
    targets = argv[2:]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp_md, tempfile.TemporaryDirectory() as dl_dir:
        md_dir = str(keep) if keep is not None else tmp_md
        bootstrap = root
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            if (keep / "root.json").exists():
                bootstrap = None
        try:
            updater = Updater(
                metadata_dir=md_dir,
                metadata_base_url=f"{base}/metadata/",
                target_base_url=f"{base}/targets/",
                target_dir=dl_dir,
                bootstrap=bootstrap,
            )
            updater.refresh()
        except Exception as e:  # noqa: BLE001 - any error is a failure
            return fail(f"refresh from {base}: {type(e).__name__}: {e}")
        trusted = updater._trusted_set
        if out is not None:
            head = trusted.timestamp.unrecognized_fields.get("x-keyshare-audit")
            out.mkdir(parents=True, exist_ok=True)
            (out / "x-keyshare-audit.json").write_text(json.dumps(head))
        print(
            f"versions: root={trusted.root.version} timestamp={trusted.timestamp.version} "
            f"snapshot={trusted.snapshot.version} targets={trusted.targets.version}",
            flush=True,
        )
        for path in targets:
            try:
                info = updater.get_targetinfo(path)
                if info is None:
                    failures += fail(f"{path}: no such target")
                    continue
                got = Path(updater.download_target(info)).read_bytes()
                digest = hashlib.sha256(got).hexdigest()
                parent, _, name = path.rpartition("/")
                url = f"{base}/targets/{parent}/{digest}.{name}" if parent else f"{base}/targets/{digest}.{name}"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    served = resp.read()
                if served != got:
                    failures += fail(f"{path}: {url} serves other bytes than the Updater verified")
                    continue
                if out is not None:
                    dest = out / path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(got)
                print(f"ok: {path} {digest} {len(got)}", flush=True)
            except Exception as e:  # noqa: BLE001 - any error is a failure
                failures += fail(f"{path}: {type(e).__name__}: {e}")
    if failures:
        return fail(f"{failures} target(s) failed against {base}")
    print(f"all {len(targets)} target(s) verified against {base}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
