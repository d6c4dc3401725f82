//! Where keyshare may send requests on someone else's say-so: peer
//! services named in `org/peers.json`, OIDC issuers and the `jwks_uri` of
//! their discovery documents.
//!
//! Such a URL must be `https://` to a public host. A host that is, or is
//! written as, a private address — loopback, RFC 1918, link-local,
//! unique-local, shared (CGNAT), unspecified, multicast or reserved, or the
//! name `localhost` — is refused, and so is plain `http://`, unless the
//! caller's configuration says private addresses are allowed (tests, a
//! local sidecar); even then plain `http://` is allowed only to a loopback
//! host. Otherwise a signed peer map or a discovery document could make
//! every verifier or the server send requests to services inside the
//! network they run in.
//!
//! This module only reads the URL as written. A host name that *resolves*
//! to a private address must be caught where the name is resolved: the
//! HTTP clients use [`is_private_ip`] on every address they connect to.
//! Host names that are numbers in disguise (`2130706433`, `0x7f.1`, which
//! URL parsers read as IPv4 addresses) are refused as malformed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The scheme of an outbound URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `https://`.
    Https,
    /// `http://`.
    Http,
}

/// The host of an outbound URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    /// An IP address literal (`[...]` for IPv6 in the URL).
    Ip(IpAddr),
}

impl Host {
    /// What kind of private address the host is written as, if it is one
    /// (`localhost` and `*.localhost` count as loopback).
    pub fn private_kind(&self) -> Option<&'static str> {
        match self {
            Self::Name(n) if n == "localhost" || n.ends_with(".localhost") => {
                Some("a loopback name")
            }
            Self::Name(_) => None,
            Self::Ip(ip) => private_kind(*ip),
        }
    }

    /// True for `localhost`, `*.localhost`, `127.0.0.0/8` and `::1`.
    pub fn is_loopback(&self) -> bool {
        match self {
            Self::Name(n) => n == "localhost" || n.ends_with(".localhost"),
            Self::Ip(ip) => canonical(*ip).is_loopback(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// The parts of an outbound URL that decide whether keyshare may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The scheme.
    pub scheme: Scheme,
    /// The host.
    pub host: Host,
    /// The port, when the URL names one.
    pub port: Option<u16>,
}

impl Origin {
    /// Reads `scheme://host[:port]` from the start of `url`, refusing user
    /// info, an empty or malformed host and a bad port.
    pub fn parse(url: &str) -> Result<Self, Refusal> {
        let malformed = |why: &str| Refusal::Malformed(format!("`{url}`: {why}"));
        let lower = url
            .get(..8)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let (scheme, rest) = if lower.starts_with("https://") {
            (Scheme::Https, url.get(8..).unwrap_or_default())
        } else if lower.starts_with("http://") {
            (Scheme::Http, url.get(7..).unwrap_or_default())
        } else {
            return Err(malformed("not an https:// URL"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(malformed("user info is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (v6, after) = v6
                .split_once(']')
                .ok_or_else(|| malformed("unclosed `[`"))?;
            let ip: Ipv6Addr = v6
                .parse()
                .map_err(|_| malformed("not an IPv6 address in `[...]`"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| malformed("junk after `]`"))?,
                ),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (name, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            (
                parse_name(name).ok_or_else(|| malformed("no valid host"))?,
                port,
            )
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| malformed("invalid port"))?,
            ),
        };
        Ok(Self { scheme, host, port })
    }

    /// The port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        })
    }
}

/// A host name, or a dotted-quad IPv4 address; `None` for anything else,
/// including names that URL parsers would read as numbers.
fn parse_name(name: &str) -> Option<Host> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 253
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || name.split('.').any(str::is_empty)
    {
        return None;
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last.bytes().skip(2).all(|b| b.is_ascii_hexdigit()));
    if numeric {
        // Only the plain dotted quad: `2130706433`, `0x7f.1` or `0177.0.0.1`
        // would be read as addresses by some parsers and not by others.
        return name
            .parse::<Ipv4Addr>()
            .ok()
            .map(|ip| Host::Ip(IpAddr::V4(ip)));
    }
    Some(Host::Name(name))
}

/// Why keyshare will not send a request to a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The URL cannot be read (the message names it and the problem).
    Malformed(String),
    /// Plain `http://` (to a non-loopback host, or without private
    /// addresses allowed).
    PlainHttp {
        /// The URL.
        url: String,
    },
    /// The host is written as a private address.
    Private {
        /// The URL.
        url: String,
        /// The host.
        host: String,
        /// What kind of address (`a loopback address`, ...).
        kind: &'static str,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(m) => f.write_str(m),
            Self::PlainHttp { url } => write!(
                f,
                "`{url}`: plain http:// is refused (https:// only; http:// only to a loopback host where private addresses are allowed)"
            ),
            Self::Private { url, host, kind } => {
                write!(f, "`{url}`: host {host} is {kind}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// Checks that keyshare may send requests to `url`: `https://` to a host
/// not written as a private address; with `allow_private`, also private
/// hosts, and `http://` to a loopback host.
pub fn check(url: &str, allow_private: bool) -> Result<Origin, Refusal> {
    let origin = Origin::parse(url)?;
    if origin.scheme == Scheme::Http && !(allow_private && origin.host.is_loopback()) {
        return Err(Refusal::PlainHttp {
            url: url.to_owned(),
        });
    }
    if !allow_private {
        if let Some(kind) = origin.host.private_kind() {
            return Err(Refusal::Private {
                url: url.to_owned(),
                host: origin.host.to_string(),
                kind,
            });
        }
    }
    Ok(origin)
}

/// True when `ip` is not a public unicast address (see [`private_kind`]).
pub fn is_private_ip(ip: IpAddr) -> bool {
    private_kind(ip).is_some()
}

/// An IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64
/// (`64:ff9b::a.b.c.d`) IPv6 address, else the address itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let [s0, s1, s2, s3, s4, s5, _, _] = v6.segments();
            let [.., a, b, c, d] = v6.octets();
            let mapped = [s0, s1, s2, s3, s4, s5] == [0, 0, 0, 0, 0, 0xffff];
            let nat64 = [s0, s1, s2, s3, s4, s5] == [0x64, 0xff9b, 0, 0, 0, 0];
            if mapped || nat64 {
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            } else {
                ip
            }
        }
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, if it is one: loopback,
/// RFC 1918 private, link-local (`169.254/16`, `fe80::/10`), unique-local
/// (`fc00::/7`), shared (CGNAT, `100.64/10`), unspecified (`0.0.0.0/8`,
/// `::`), multicast, or otherwise reserved (`192.0.0/24`, `198.18/15`,
/// `240/4`, site-local `fec0::/10`). IPv4 addresses inside IPv4-mapped and
/// NAT64 IPv6 addresses are judged as IPv4.
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address (RFC 1918)")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared address (CGNAT, RFC 6598)")
            } else if a == 0 {
                Some("an unspecified address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b & 0xfe) == 18) {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let [first, ..] = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a unique-local address")
            } else if first & 0xffc0 == 0xfec0 {
                Some("a reserved address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn private_and_special_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd00::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(is_private_ip(ip), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.255.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(!is_private_ip(ip), "{public}");
        }
    }

    #[test]
    fn urls_must_be_https_to_a_public_host_unless_private_addresses_are_allowed() {
        // (url, allowed by default, allowed with private addresses)
        let table: &[(&str, bool, bool)] = &[
            ("https://keyshare.partner.example", true, true),
            ("https://keyshare.partner.example:8443/base", true, true),
            ("https://8.8.8.8/", true, true),
            ("https://[2001:db8::1]/", true, true),
            ("https://169.254.169.254/", false, true),
            ("https://10.0.0.5/", false, true),
            ("https://127.0.0.1:8443/", false, true),
            ("https://[fd00::1]/", false, true),
            ("https://[::ffff:127.0.0.1]/", false, true),
            ("https://localhost/", false, true),
            ("https://LOCALHOST./", false, true),
            ("https://a.localhost/", false, true),
            ("http://peer.example/", false, false),
            ("http://10.0.0.5/", false, false),
            ("http://127.0.0.1:8080", false, true),
            ("http://localhost:1234", false, true),
            ("http://[::1]:9000/", false, true),
            // Numbers in disguise are not hosts.
            ("https://2130706433/", false, false),
            ("https://0x7f.1/", false, false),
            ("https://0177.0.0.1/", false, false),
            ("https://127.1/", false, false),
            ("https://%31%32%37.0.0.1/", false, false),
            ("https://user@peer.example/", false, false),
            ("ftp://peer.example/", false, false),
            ("https://", false, false),
            ("https://peer.example:0/", false, false),
        ];
        for (url, default, allowed) in table {
            assert_eq!(check(url, false).is_ok(), *default, "{url} by default");
            assert_eq!(check(url, true).is_ok(), *allowed, "{url} allowed");
        }
        assert_eq!(
            check("https://10.0.0.5/", false).unwrap_err().to_string(),
            "`https://10.0.0.5/`: host 10.0.0.5 is a private address (RFC 1918)"
        );
        let origin = check("https://Peer.Example.:8443/x", false).unwrap();
        assert_eq!(origin.host, Host::Name("peer.example".into()));
        assert_eq!(origin.port_or_default(), 8443);
    }
}
