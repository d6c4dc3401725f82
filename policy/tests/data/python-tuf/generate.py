#!/usr/bin/env python3
"""Generate the python-tuf interop fixtures next to this script.

Each fixture is a complete consistent-snapshot TUF repository written with
python-tuf's Metadata API, in the layout python-tuf's ngclient reads:

    <fixture>/metadata/N.root.json          every root version, 1..latest
    <fixture>/metadata/timestamp.json
    <fixture>/metadata/V.snapshot.json
    <fixture>/metadata/V.<targets role>.json
    <fixture>/targets/<dir>/<sha256>.<basename>
    <fixture>/expected.json                 what a client must find in it

Run with the interop venv (scripts/test creates it):

    target/pyenv/bin/python policy/tests/data/python-tuf/generate.py

The script deletes and rewrites every fixture directory it owns, then checks
each one with python-tuf's own ngclient.Updater (through an in-memory fetcher).
Ed25519 and ECDSA keys are derived from fixed seeds, so keys (and Ed25519
signatures) are the same on every run; ECDSA signatures and RSA keys are
random, so those fixtures change whenever they are regenerated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, Key, SSlibKey
from tuf.api.exceptions import DownloadHTTPError
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

HERE = Path(__file__).resolve().parent
EXPIRES = datetime(2100, 1, 1, tzinfo=timezone.utc)
# Pretty, non-canonical form on purpose: readers must re-canonicalize `signed`.
SERIALIZER = JSONSerializer(compact=False)
FIXTURES = (
    "basic-ed25519",
    "basic-ecdsa",
    "basic-rsa",
    "basic-rsa-pkcs1v15",
    "delegations",
    "hashed-bins",
    "rotated-root",
    "custom-fields",
)

# --- keys ---------------------------------------------------------------------

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_rsa_cache: dict[str, CryptoSigner] = {}


def signer(name: str, kind: str = "ed25519") -> CryptoSigner:
    """Return the signer called `name` (same name, same key within a run).

    Ed25519 and ECDSA P-256 keys come from a seed derived from the name, so
    they are stable across runs. RSA keys cannot be seeded with pyca/cryptography
    and come from CryptoSigner.generate_rsa() (RSA-3072, rsassa-pss-sha256).
    """
    seed = hashlib.sha256(f"keyshare-fixture:{kind}:{name}".encode()).digest()
    if kind == "ed25519":
        priv = Ed25519PrivateKey.from_private_bytes(seed)
    elif kind == "ecdsa":
        scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
        priv = ec.derive_private_key(scalar, ec.SECP256R1())
    elif kind == "rsa":
        if name not in _rsa_cache:
            _rsa_cache[name] = CryptoSigner.generate_rsa()
        return _rsa_cache[name]
    elif kind == "rsa-pkcs1v15":
        key = f"pkcs1v15:{name}"
        if key not in _rsa_cache:
            _rsa_cache[key] = CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256")
        return _rsa_cache[key]
    else:
        raise ValueError(f"unknown key kind {kind}")
    # Same as CryptoSigner.generate_ed25519()/generate_ecdsa(), but seeded.
    return CryptoSigner(priv, SSlibKey.from_crypto(priv.public_key()))


def pubkey(s: CryptoSigner, extra: dict[str, Any] | None = None) -> Key:
    """Public key of `s` as it goes into metadata, with optional unknown fields."""
    k = s.public_key
    return SSlibKey(k.keyid, k.keytype, k.scheme, dict(k.keyval), extra or {})


# --- repository writer ----------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(md: Metadata, signers: list[CryptoSigner]) -> Metadata:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    return md


def new_root(keys: dict[str, list[CryptoSigner]], version: int = 1) -> Root:
    """Root with one role entry per top-level role, threshold = number of keys."""
    root = Root(version=version, expires=EXPIRES, consistent_snapshot=True)
    for role, signers in keys.items():
        for s in signers:
            root.add_key(pubkey(s), role)
        root.roles[role].threshold = len(signers)
    return root


class Repo:
    """Collects the pieces of one fixture and writes them out."""

    def __init__(self, name: str):
        self.name = name
        self.dir = HERE / name
        # Root versions in order, each with the signers that sign it.
        self.roots: list[tuple[Root, list[CryptoSigner]]] = []
        # Targets roles in snapshot order: name -> (Targets, signers, delegator).
        self.targets: dict[str, tuple[Targets, list[CryptoSigner], str]] = {}
        self.target_data: dict[str, bytes] = {}
        self.snapshot_signers: list[CryptoSigner] = []
        self.timestamp_signers: list[CryptoSigner] = []
        self.snapshot_version = 1
        self.timestamp_version = 1
        # Unknown fields to add to MetaFiles: key "snapshot.json" is the
        # timestamp's entry, others are snapshot entries ("targets.json", ...).
        self.meta_fields: dict[str, dict[str, Any]] = {}
        self.snapshot_fields: dict[str, Any] = {}
        self.timestamp_fields: dict[str, Any] = {}
        # Paths a compliant client must NOT resolve (e.g. terminating cut-off).
        self.absent: dict[str, str] = {}

    def add_targets_role(
        self,
        role: str,
        targets: Targets,
        signers: list[CryptoSigner],
        delegator: str = "root",
    ) -> None:
        self.targets[role] = (targets, signers, delegator)

    def add_target(
        self,
        role: str,
        path: str,
        data: bytes,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record target file `path` with content `data` in role `role`."""
        tf = TargetFile.from_data(path, data, ["sha256"])
        tf.unrecognized_fields = extra or {}
        self.targets[role][0].targets[path] = tf
        self.target_data[path] = data

    def write(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        mdir = self.dir / "metadata"
        mdir.mkdir(parents=True)

        def put(filename: str, md: Metadata) -> bytes:
            data = md.to_bytes(SERIALIZER)
            (mdir / filename).write_bytes(data)
            return data

        for root, signers in self.roots:
            put(f"{root.version}.root.json", sign(Metadata(root), signers))

        meta: dict[str, MetaFile] = {}
        for role, (targets, signers, _) in self.targets.items():
            targets.expires = EXPIRES
            data = put(f"{targets.version}.{role}.json", sign(Metadata(targets), signers))
            meta[f"{role}.json"] = self._metafile(f"{role}.json", targets.version, data)

        snapshot = Snapshot(
            version=self.snapshot_version,
            expires=EXPIRES,
            meta=meta,
            unrecognized_fields=self.snapshot_fields,
        )
        data = put(
            f"{snapshot.version}.snapshot.json", sign(Metadata(snapshot), self.snapshot_signers)
        )

        timestamp = Timestamp(
            version=self.timestamp_version,
            expires=EXPIRES,
            snapshot_meta=self._metafile("snapshot.json", snapshot.version, data),
            unrecognized_fields=self.timestamp_fields,
        )
        put("timestamp.json", sign(Metadata(timestamp), self.timestamp_signers))

        for path, data in self.target_data.items():
            parent, _, base = path.rpartition("/")
            dest = self.dir / "targets" / parent / f"{sha256_hex(data)}.{base}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)

        (self.dir / "expected.json").write_text(
            json.dumps(self.expected(), indent=2, sort_keys=True) + "\n"
        )

    def _metafile(self, filename: str, version: int, data: bytes) -> MetaFile:
        mf = MetaFile(version, len(data), {"sha256": sha256_hex(data)})
        mf.unrecognized_fields = self.meta_fields.get(filename, {})
        return mf

    def expected(self) -> dict[str, Any]:
        targets = {}
        for role, (md, _, _) in self.targets.items():
            for path, tf in md.targets.items():
                if path in self.absent:
                    continue
                targets[path] = {
                    "length": tf.length,
                    "sha256": tf.hashes["sha256"],
                    "role": role,
                }
        return {
            "root_versions": [r.version for r, _ in self.roots],
            "timestamp_version": self.timestamp_version,
            "snapshot_version": self.snapshot_version,
            "roles": {
                role: {"version": md.version, "delegated_by": parent}
                for role, (md, _, parent) in self.targets.items()
            },
            "targets": targets,
            "absent": self.absent,
        }


def trust_doc(namespace: str, note: str = "") -> bytes:
    """Small JSON target content, one per namespace."""
    doc = {
        "namespace": namespace,
        "trust": {"roots": [f"{namespace}-root-ca"], "pins": []},
    }
    if note:
        doc["note"] = note
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


# --- fixtures -----------------------------------------------------------------


def basic(kind: str) -> Repo:
    """One key of `kind` per top-level role, one target in targets."""
    repo = Repo(f"basic-{kind}")
    keys = {r: [signer(f"{r}-1", kind)] for r in ("root", "timestamp", "snapshot", "targets")}
    repo.roots.append((new_root(keys), keys["root"]))
    repo.add_targets_role("targets", Targets(expires=EXPIRES), keys["targets"])
    repo.add_target("targets", "namespaces/team-a/trust.json", trust_doc("team-a"))
    repo.snapshot_signers = keys["snapshot"]
    repo.timestamp_signers = keys["timestamp"]
    return repo


def top_level(repo: Repo) -> dict[str, list[CryptoSigner]]:
    """Ed25519 top-level roles (root v1) for the fixtures beyond the basic ones."""
    keys = {r: [signer(f"{repo.name}-{r}-1")] for r in ("root", "timestamp", "snapshot", "targets")}
    repo.roots.append((new_root(keys), keys["root"]))
    repo.add_targets_role("targets", Targets(expires=EXPIRES), keys["targets"])
    repo.snapshot_signers = keys["snapshot"]
    repo.timestamp_signers = keys["timestamp"]
    return keys


def delegations() -> Repo:
    """targets -> team-a (paths, threshold 2), team-b (hash prefix), legacy;
    team-a -> team-a-ci (terminating)."""
    repo = Repo("delegations")
    top_level(repo)
    team_a = [signer("team-a-1"), signer("team-a-2")]
    team_b = [signer("team-b-1")]
    legacy = [signer("legacy-1")]
    team_a_ci = [signer("team-a-ci-1")]

    b_path = "namespaces/team-b/trust.json"
    b_prefix = sha256_hex(b_path.encode())[:2]
    top_targets = repo.targets["targets"][0]
    top_targets.delegations = Delegations(
        keys={k.public_key.keyid: pubkey(k) for k in team_a + team_b + legacy},
        roles={
            # `*` never matches across "/": the ci sub-directory needs its own
            # pattern for lookups to reach team-a (and through it team-a-ci).
            "team-a": DelegatedRole(
                "team-a",
                [k.public_key.keyid for k in team_a],
                2,
                False,
                paths=["namespaces/team-a/*", "namespaces/team-a/ci/*"],
            ),
            "team-b": DelegatedRole(
                "team-b",
                [k.public_key.keyid for k in team_b],
                1,
                False,
                path_hash_prefixes=[b_prefix],
            ),
            # Listed after team-a: only reached when team-a's walk backtracks.
            "legacy": DelegatedRole(
                "legacy",
                [k.public_key.keyid for k in legacy],
                1,
                False,
                paths=["namespaces/*/ci/*"],
            ),
        },
    )
    a_targets = Targets(
        expires=EXPIRES,
        delegations=Delegations(
            keys={k.public_key.keyid: pubkey(k) for k in team_a_ci},
            roles={
                "team-a-ci": DelegatedRole(
                    "team-a-ci",
                    [k.public_key.keyid for k in team_a_ci],
                    1,
                    True,
                    paths=["namespaces/team-a/ci/*"],
                ),
            },
        ),
    )
    repo.add_targets_role("team-a", a_targets, team_a, "targets")
    repo.add_targets_role("team-b", Targets(expires=EXPIRES), team_b, "targets")
    repo.add_targets_role("legacy", Targets(expires=EXPIRES), legacy, "targets")
    repo.add_targets_role("team-a-ci", Targets(expires=EXPIRES), team_a_ci, "team-a")

    repo.add_target("targets", "namespaces/index.json", trust_doc("index"))
    repo.add_target("team-a", "namespaces/team-a/trust.json", trust_doc("team-a"))
    repo.add_target("team-b", b_path, trust_doc("team-b"))
    repo.add_target("team-a-ci", "namespaces/team-a/ci/trust.json", trust_doc("team-a-ci"))
    repo.add_target("legacy", "namespaces/team-c/ci/trust.json", trust_doc("team-c-ci"))
    # Reachable only through legacy, but the terminating team-a-ci delegation
    # (visited first) cuts the search off: a client must not find it.
    shadowed = "namespaces/team-a/ci/shadowed.json"
    repo.add_target("legacy", shadowed, trust_doc("shadowed"))
    repo.absent[shadowed] = (
        "held by legacy, but team-a-ci (terminating, visited first) ends the search"
    )
    return repo


def hashed_bins() -> Repo:
    """targets -> 16 succinct hash bins bin-0..bin-f; 20 targets spread over them."""
    repo = Repo("hashed-bins")
    top_level(repo)
    bins = [signer("bins-1")]
    succinct = SuccinctRoles([k.public_key.keyid for k in bins], 1, 4, "bin")
    repo.targets["targets"][0].delegations = Delegations(
        keys={k.public_key.keyid: pubkey(k) for k in bins},
        succinct_roles=succinct,
    )
    for name in succinct.get_roles():
        repo.add_targets_role(name, Targets(expires=EXPIRES), bins, "targets")
    for i in range(20):
        path = f"namespaces/team-{i:02d}/trust.json"
        repo.add_target(succinct.get_role_for_target(path), path, trust_doc(f"team-{i:02d}"))
    return repo


def rotated_root() -> Repo:
    """root v1 -> v2 (new root key, new timestamp key) -> v3 (version bump).

    v2 is signed by the old and the new root key, v3 by the v2 root key only.
    The other roles use versions above 1 so file names must follow the meta.
    """
    repo = Repo("rotated-root")
    old = {r: [signer(f"{repo.name}-{r}-1")] for r in ("root", "timestamp", "snapshot", "targets")}
    new = dict(
        old, root=[signer(f"{repo.name}-root-2")], timestamp=[signer(f"{repo.name}-timestamp-2")]
    )
    repo.roots.append((new_root(old, 1), old["root"]))
    repo.roots.append((new_root(new, 2), old["root"] + new["root"]))
    repo.roots.append((new_root(new, 3), new["root"]))
    repo.add_targets_role("targets", Targets(version=2, expires=EXPIRES), new["targets"])
    repo.add_target(
        "targets", "namespaces/team-a/trust.json", trust_doc("team-a", "after rotation")
    )
    repo.snapshot_signers = new["snapshot"]
    repo.timestamp_signers = new["timestamp"]
    repo.snapshot_version = 3
    repo.timestamp_version = 4
    return repo


def custom_fields() -> Repo:
    """Unknown fields everywhere python-tuf keeps them (unrecognized_fields)."""
    repo = Repo("custom-fields")
    keys = {r: [signer(f"{repo.name}-{r}-1")] for r in ("root", "timestamp", "snapshot", "targets")}
    # JSON values of every kind but floats (canonical JSON has none); the
    # non-ASCII string is \u-escaped in the files but raw UTF-8 when signed.
    extra = {
        "x-keyshare-text": 'Zürich ✓ "quoted" back\\slash',
        # Not in Unicode NFC: signed as is, never normalised.
        "x-keyshare-not-nfc": "\u09a1\u09bc cafe\u0301",
        "x-keyshare-numbers": [0, -7, 4294967296],
        "x-keyshare-flags": {"on": True, "off": False, "none": None},
        "x-keyshare-empty": {"list": [], "object": {}},
    }
    root = Root(
        expires=EXPIRES, consistent_snapshot=True, unrecognized_fields={"x-keyshare-root": extra}
    )
    for role, signers in keys.items():
        for s in signers:
            # Unknown field inside the root key only.
            root.add_key(
                pubkey(
                    s,
                    {"x-keyshare-hsm": {"label": "root-1", "slot": 3}} if role == "root" else None,
                ),
                role,
            )
    # Unknown field inside a role entry of root.
    root.roles["root"].unrecognized_fields = {"x-keyshare-ceremony": "2024-01-01"}
    repo.roots.append((root, keys["root"]))

    team = [signer(f"{repo.name}-team-a-1")]
    top = Targets(
        expires=EXPIRES,
        unrecognized_fields={"x-keyshare-targets": {"owner": "platform"}},
        delegations=Delegations(
            keys={k.public_key.keyid: pubkey(k, {"x-keyshare-owner": "team-a"}) for k in team},
            roles={
                "team-a": DelegatedRole(
                    "team-a",
                    [k.public_key.keyid for k in team],
                    1,
                    False,
                    paths=["namespaces/team-a/*"],
                    unrecognized_fields={"x-keyshare-contact": "team-a@example.invalid"},
                )
            },
            unrecognized_fields={"x-keyshare-delegations": 1},
        ),
    )
    repo.add_targets_role("targets", top, keys["targets"])
    repo.add_targets_role(
        "team-a",
        Targets(expires=EXPIRES, unrecognized_fields={"x-keyshare-team": "a"}),
        team,
        "targets",
    )
    repo.add_target(
        "targets",
        "namespaces/index.json",
        trust_doc("index"),
        {"custom": {"kind": "index"}, "x-keyshare-target": extra},
    )
    repo.add_target(
        "team-a",
        "namespaces/team-a/trust.json",
        trust_doc("team-a"),
        {"custom": {"kind": "trust", "namespace": "team-a"}, "x-keyshare-size-class": "small"},
    )
    repo.snapshot_signers = keys["snapshot"]
    repo.timestamp_signers = keys["timestamp"]
    repo.snapshot_fields = {"x-keyshare-snapshot": [1, "two", None]}
    repo.timestamp_fields = {"x-keyshare-timestamp": {"issuer": "keyshare-test"}}
    repo.meta_fields = {
        "snapshot.json": {"x-keyshare-meta": "in timestamp"},
        "team-a.json": {"x-keyshare-meta": {"in": "snapshot"}},
    }
    return repo


BUILDERS: dict[str, Callable[[], Repo]] = {
    "basic-ed25519": lambda: basic("ed25519"),
    "basic-ecdsa": lambda: basic("ecdsa"),
    "basic-rsa": lambda: basic("rsa"),
    "basic-rsa-pkcs1v15": lambda: basic("rsa-pkcs1v15"),
    "delegations": delegations,
    "hashed-bins": hashed_bins,
    "rotated-root": rotated_root,
    "custom-fields": custom_fields,
}

# --- self-check with python-tuf's client ----------------------------------------


class DirFetcher(FetcherInterface):
    """Serves a fixture directory to ngclient without a network."""

    def __init__(self, root: Path):
        self.root = root

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.root / url.removeprefix("file:///")
        if not path.is_file():
            raise DownloadHTTPError(f"not found: {url}", 404)
        return iter([path.read_bytes()])


def self_check(repo: Repo) -> None:
    """Refresh with ngclient and resolve every expected (and absent) target."""
    bootstrap = (repo.dir / "metadata" / "1.root.json").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        updater = Updater(
            metadata_dir=tmp,
            metadata_base_url="file:///metadata/",
            target_base_url="file:///targets/",
            target_dir=tmp,
            fetcher=DirFetcher(repo.dir),
            bootstrap=bootstrap,
        )
        updater.refresh()
        assert updater._trusted_set.root.version == repo.roots[-1][0].version
        expected = repo.expected()
        for path, want in expected["targets"].items():
            info = updater.get_targetinfo(path)
            assert info is not None, f"{repo.name}: {path} not found"
            assert info.length == want["length"] and info.hashes["sha256"] == want["sha256"]
            downloaded = Path(updater.download_target(info)).read_bytes()
            assert downloaded == repo.target_data[path]
        for path in expected["absent"]:
            assert updater.get_targetinfo(path) is None, f"{repo.name}: {path} found"


def main(argv: list[str]) -> int:
    names = argv or list(FIXTURES)
    for name in names:
        repo = BUILDERS[name]()
        repo.write()
        self_check(repo)
        size = sum(p.stat().st_size for p in repo.dir.rglob("*") if p.is_file())
        roles, targets = len(repo.targets), len(repo.target_data)
        print(f"{name}: {targets} targets, {roles} targets roles, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
