//! The configuration file `init` writes.

/// The text `init` writes as `keyshare.toml`: every default, spelled out.
pub const DEFAULT_FILE: &str = r#"# keyshare-server configuration (see docs/server.md).
# KEYSHARE_* environment variables and command-line flags override it.

listen = "127.0.0.1:8439"

# HTTPS: with both set, serve speaks TLS only (1.2 or later).
# cert is a PEM chain (server certificate first), key an unencrypted PEM key.
# [tls]
# cert = "/path/to/cert.pem"
# key = "/path/to/key.pem"

[log]
format = "text"
level = "info"

# How long signed metadata is valid. A verifier that cannot reach the
# server stops trusting its copy when the timestamp expires: a shorter
# timestamp (down to "2m") bounds how long an offline verifier can miss a
# revocation, at the cost of one small signed file per interval. Roles are
# re-signed resign_before ahead of expiry (default: 6h, or half of the
# timestamp's lifetime when that is shorter; at least 1m).
[expiry]
timestamp = "1d"
snapshot = "7d"
targets = "90d"
root = "365d"
# resign_before = "6h"

[limits]
body_bytes = 65536
# Readers waiting for the next publish at once (long polls of
# metadata/timestamp.json, `keyshare watch`); past it they get 503.
# 0 turns waiting off (every read is answered at once).
max_waiters = 10000

# Air-gap bundles (docs/airgap.md): the validity window of an export when
# --valid-for is not given, and the longest one allowed.
[airgap]
valid_for = "7d"
max_valid_for = "30d"
# Superseded published versions (older snapshots, timestamps, role
# versions) stay served this long, then are deleted; roots and current
# files are kept forever. A duration, or "forever".
[store]
keep_superseded = "1h"
# The store is the SQLite file keyshare.db in this directory, unless url
# names a PostgreSQL database (docs/operations/postgres.md).
# url = "postgres://keyshare@db.example/keyshare"

# Peer services (PUT /api/v1/peers) must be https:// to public hosts.
# Private and loopback addresses (and http:// to loopback) only for tests
# and local sidecars:
# [peers]
# allow_private_addresses = false

# Online keys (targets, snapshot, timestamp, namespaces): a PKCS#8 PEM file
# (`file:PATH` or a path, relative to the data directory) or a key in a
# PKCS#11 token (an RFC 7512 URI with module-path; the PIN from the URI's
# pin-source, else from pin_file). Default: keys/<role>.pem.
# [keys]
# targets = "pkcs11:token=keyshare;object=targets;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
# pin_file = "/etc/keyshare/token.pin"

# The portal (/ui/, docs/portal.md): a session ends after session_idle
# without use, and session_lifetime after sign-in however busy.
[portal]
session_idle = "30m"
session_lifetime = "12h"

# RFC 3161 timestamp authority (docs/tsa.md): POST /api/v1/timestamp.
# init makes its key (keys/tsa.pem, ECDSA P-256), an organization TSA CA
# (key keys/tsa-ca.pem, certificate tsa/ca.pem) and the TSA certificate
# (tsa/tsa.pem; tsa/chain.pem holds it and the CA). key: a PEM file or a
# pkcs11: URI, as under [keys]; cert_chain: PEM, the TSA certificate first.
# policy: the TSA policy OID of every token; the default lies under IANA's
# example arc: set your organization's own. rate_limit: requests per
# client address per rate_window (0: no limit).
[tsa]
enabled = true
# key = "pkcs11:token=keyshare;object=tsa;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
# cert_chain = "tsa/chain.pem"
policy = "1.3.6.1.4.1.32473.3161.1"
accuracy = "1s"
rate_limit = 600
rate_window = "1m"

# CI delegations (docs/ci.md): short-lived signing keys for CI jobs, which
# prove who they are with an OIDC ID token or a scoped CI token
# (`keyshare admin token create --ci NAMESPACE`). Without a [ci] table every
# CI endpoint answers 404 ci_not_configured, for CI tokens too. Uncomment
# [ci] alone to accept CI tokens; for OIDC add the issuers your CI platform
# signs tokens with and the claim rules that map jobs to namespaces, then
# restart serve. Every setting and its default is in docs/ci.md.
# [ci]
# default_ttl = "10m"
# max_ttl = "1h"
# [[ci.issuers]]
# url = "https://token.actions.githubusercontent.com"
# audience = "https://keyshare.example.org"
# [[ci.rules]]
# issuer = "https://token.actions.githubusercontent.com"
# namespaces = ["team-a"]
# claims = { repository = "example/app", ref = "refs/heads/main" }
"#;
