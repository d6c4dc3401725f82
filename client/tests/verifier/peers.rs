//! Peer redirects with two real servers: the organization delegates
//! `peer.example/**` to a peer service; `decide` follows, verifying the
//! peer against the root pinned in the signed peer map; a wrong pin is
//! refused; a loop between two peers is reported; a peer map cannot steer
//! the verifier at loopback or private addresses, nor can a peer redirect
//! it elsewhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::{TcpListener, ToSocketAddrs};

use crate::common::{keyshare_env, new_key, proxy, Canned, Client, Reply, Server};

/// The peers of these tests listen on loopback over plain http: the
/// verifier contacts them only when told to.
const PRIVATE: &str = "--allow-private-peers";

#[test]
fn decide_follows_a_peer_verified_against_the_pinned_root() {
    let org = Server::start();
    let peer = Server::start();
    peer.create_namespace("partner", &["peer.example/**"], 1);
    let (k, _) = new_key();
    peer.add_key("partner", "partner-release", &k, None);
    org.put_peer("partner", "peer.example/**", &peer.url, &peer.root1());

    let client = Client::new();
    client.init(&org.url, &org.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    let (code, v) = client.decide_json(
        "peer.example/app",
        &[PRIVATE, "--key-id", "partner-release"],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["namespace"], "partner");
    assert_eq!(v["via"][0]["peer"], "partner");
    assert_eq!(v["via"][0]["url"], peer.url);

    let (code, v) = client.decide_json("peer.example/app", &[PRIVATE, "--key-id", "someone"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("key_not_listed")),
        "{v}"
    );

    // The peer has its own cache, apart from the organization's.
    let peers = std::fs::read_dir(client.cache().join("peers"))
        .unwrap()
        .count();
    assert_eq!(peers, 1);

    // The peer changes its keys: the next decision sees it (the peer is
    // refreshed on use).
    let (k2, _) = new_key();
    peer.add_key("partner", "partner-2", &k2, None);
    let (code, _) = client.decide_json("peer.example/app", &[PRIVATE, "--key-id", "partner-2"]);
    assert_eq!(code, 0);

    // Text mode names the peer.
    let run = client.run(&[
        "decide",
        "peer.example/app",
        PRIVATE,
        "--key-id",
        "partner-release",
    ]);
    run.assert_ok();
    assert!(run.stdout.contains("via peer partner"), "{run:?}");
}

#[test]
fn a_peer_whose_root_does_not_match_the_pin_is_refused() {
    let org = Server::start();
    let peer = Server::start();
    let impostor = Server::start();
    peer.create_namespace("partner", &["peer.example/**"], 1);
    impostor.create_namespace("partner", &["peer.example/**"], 1);
    let (k, _) = new_key();
    impostor.add_key("partner", "evil", &k, None);
    // The peer map pins the real peer's root, but points at the impostor.
    org.put_peer("partner", "peer.example/**", &impostor.url, &peer.root1());

    let client = Client::new();
    client.init(&org.url, &org.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json("peer.example/app", &[PRIVATE, "--key-id", "evil"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_root_mismatch")),
        "{v}"
    );
    assert_eq!(v["peer"], "partner");
    // Nothing of the impostor is cached.
    assert!(
        !client.cache().join("peers").exists()
            || std::fs::read_dir(client.cache().join("peers"))
                .unwrap()
                .count()
                == 0
    );

    // An unreachable peer is untrusted too, with its own reason.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    org.put_peer("partner", "peer.example/**", &gone, &peer.root1());
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json("peer.example/app", &[PRIVATE, "--key-id", "evil"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_unreachable")),
        "{v}"
    );
}

#[test]
fn a_loop_between_two_peers_is_reported_not_followed() {
    let a = Server::start();
    let b = Server::start();
    a.put_peer("b", "loop.example/**", &b.url, &b.root1());
    b.put_peer("a", "loop.example/**", &a.url, &a.root1());

    let client = Client::new();
    client.init(&a.url, &a.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json("loop.example/app", &[PRIVATE, "--key-id", "k"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("peer_loop")), "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains(&a.url.to_ascii_lowercase()), "{message}");
    assert!(message.contains(&b.url.to_ascii_lowercase()), "{message}");
    assert_eq!(v["via"][0]["peer"], "b", "{v}");
}

#[test]
fn peer_redirects_stop_at_the_depth_limit() {
    let a = Server::start();
    let b = Server::start();
    let c = Server::start();
    c.create_namespace("far", &["chain.example/**"], 1);
    let (k, _) = new_key();
    c.add_key("far", "far-key", &k, None);
    a.put_peer("b", "chain.example/**", &b.url, &b.root1());
    b.put_peer("c", "chain.example/**", &c.url, &c.root1());

    let client = Client::new();
    client.init(&a.url, &a.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json("chain.example/app", &[PRIVATE, "--key-id", "far-key"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["via"].as_array().unwrap().len(), 2, "{v}");
    let (code, v) = client.decide_json(
        "chain.example/app",
        &[PRIVATE, "--key-id", "far-key", "--max-peer-depth", "1"],
    );
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_too_deep")),
        "{v}"
    );
    assert_eq!(v["peer"], "c", "{v}");
}

/// A peer behind a canned server that logs every request: the peer's
/// namespace `partner` with key `partner-release`, listed by `org` for
/// `peer.example/**` at `url_of(canned)`.
fn logged_peer(org: &Server, url_of: impl Fn(&Canned) -> String) -> (Server, Canned) {
    let peer = Server::start();
    peer.create_namespace("partner", &["peer.example/**"], 1);
    let (k, _) = new_key();
    peer.add_key("partner", "partner-release", &k, None);
    let canned = proxy(&peer);
    org.put_peer(
        "partner",
        "peer.example/**",
        &url_of(&canned),
        &peer.root1(),
    );
    (peer, canned)
}

/// A loopback listener that never accepts: after the fact, whether anyone
/// connected to it (a finished handshake waits in the backlog).
struct Silent(TcpListener);

impl Silent {
    fn bind() -> Self {
        Self(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn was_contacted(&self) -> bool {
        self.0.set_nonblocking(true).unwrap();
        match self.0.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn outbound_requests_steered_inward_a_peer_on_a_loopback_port_is_not_contacted_by_default() {
    let org = Server::start();
    let (_peer, canned) = logged_peer(&org, |c| c.url.clone());
    let client = Client::new();
    client.init(&org.url, &org.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    let (code, v) = client.decide_json("peer.example/app", &["--key-id", "partner-release"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_url_refused")),
        "{v}"
    );
    assert_eq!(v["peer"], "partner", "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("plain http://"), "{message}");
    assert!(message.contains("--allow-private-peers"), "{message}");
    assert!(
        canned.log.lock().unwrap().is_empty(),
        "the peer was contacted"
    );
    assert!(
        !client.cache().join("peers").exists(),
        "a peer cache was made"
    );

    // https:// to a loopback, private or link-local address is refused as
    // written, before any connection.
    let silent = Silent::bind();
    for url in [
        format!("https://127.0.0.1:{}", silent.port()),
        format!("https://localhost:{}", silent.port()),
        format!("https://[::ffff:127.0.0.1]:{}", silent.port()),
        "https://169.254.169.254".to_owned(),
        "https://10.0.0.5".to_owned(),
        "https://[fd00::1]".to_owned(),
    ] {
        org.put_peer("partner", "peer.example/**", &url, &org.root1());
        client.run(&["refresh"]).assert_ok();
        let (code, v) = client.decide_json("peer.example/app", &["--key-id", "partner-release"]);
        assert_eq!(
            (code, v["reason"].as_str()),
            (1, Some("peer_url_refused")),
            "{url}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(" is a"),
            "{url}: {v}"
        );
    }
    assert!(
        !silent.was_contacted(),
        "the loopback listener was contacted"
    );

    // Opted in (flag or environment), the same peer works.
    org.put_peer("partner", "peer.example/**", &canned.url, &_peer.root1());
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json(
        "peer.example/app",
        &[PRIVATE, "--key-id", "partner-release"],
    );
    assert_eq!(code, 0, "{v}");
    assert!(!canned.log.lock().unwrap().is_empty());
    let cache = client.cache();
    let run = keyshare_env(
        &[
            "decide",
            "peer.example/app",
            "--key-id",
            "partner-release",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[("KEYSHARE_ALLOW_PRIVATE_PEERS", "1")],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// The machine's host name, if it resolves to loopback addresses only (as
/// `/etc/hosts` usually has it): a name that is not written as a private
/// address but leads to one.
fn loopback_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
        return None;
    }
    let addrs: Vec<_> = (name.as_str(), 0).to_socket_addrs().ok()?.collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

#[test]
fn outbound_requests_steered_inward_a_peer_name_resolving_to_loopback_is_refused_at_connect_time() {
    let Some(name) = loopback_host_name() else {
        eprintln!("skipped: the host name does not resolve to loopback only here");
        return;
    };
    let org = Server::start();
    let silent = Silent::bind();
    let url = format!("https://{name}:{}", silent.port());
    org.put_peer("partner", "peer.example/**", &url, &org.root1());
    let client = Client::new();
    client.init(&org.url, &org.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let (code, v) = client.decide_json("peer.example/app", &["--key-id", "k"]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_url_refused")),
        "{v}"
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{name} resolves to 127.")),
        "{message}"
    );
    assert!(
        !silent.was_contacted(),
        "the loopback listener was contacted"
    );

    // Opted in, the verifier does connect (and then times out: the
    // listener never answers the TLS handshake).
    let (code, v) = client.decide_json(
        "peer.example/app",
        &[PRIVATE, "--key-id", "k", "--timeout", "1"],
    );
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_unreachable")),
        "{v}"
    );
    assert!(
        silent.was_contacted(),
        "the opted-in verifier did not connect"
    );
}

#[test]
fn outbound_requests_steered_inward_a_peer_redirect_to_another_port_is_not_followed() {
    let org = Server::start();
    let (peer, canned) = logged_peer(&org, |c| c.url.clone());
    let client = Client::new();
    client.init(&org.url, &org.root1_sha256());
    client.run(&["refresh"]).assert_ok();

    // The peer (allowed on loopback) redirects its root to another port:
    // the real server, which would answer. Not followed.
    let silent = Silent::bind();
    for to in [
        format!("{}/metadata/1.root.json", peer.url),
        format!("http://127.0.0.1:{}/metadata/1.root.json", silent.port()),
        format!(
            "http://localhost:{}/metadata/1.root.json",
            canned.url.rsplit(':').next().unwrap()
        ),
    ] {
        canned.set("metadata/1.root.json", Reply::Redirect(302, to.clone()));
        let (code, v) = client.decide_json(
            "peer.example/app",
            &[PRIVATE, "--key-id", "partner-release"],
        );
        assert_eq!(
            (code, v["reason"].as_str()),
            (1, Some("peer_url_refused")),
            "{to}: {v}"
        );
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("redirect to"), "{message}");
        assert!(message.contains("same scheme, host and port"), "{message}");
    }
    assert!(!silent.was_contacted(), "the redirect was followed");
    assert!(!client.cache().join("peers").exists() || peer_caches(&client) == 0);

    // A redirect within the peer's own origin is followed.
    canned.set(
        "metadata/1.root.json",
        Reply::Redirect(302, format!("{}/moved/1.root.json", canned.url)),
    );
    canned.set("moved/1.root.json", Reply::Bytes(peer.root1()));
    let (code, v) = client.decide_json(
        "peer.example/app",
        &[PRIVATE, "--key-id", "partner-release"],
    );
    assert_eq!(code, 0, "{v}");
}

fn peer_caches(client: &Client) -> usize {
    std::fs::read_dir(client.cache().join("peers"))
        .map(|d| d.count())
        .unwrap_or(0)
}
