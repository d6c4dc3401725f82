//! Peer redirects with two real servers: the organization delegates
//! `peer.example/**` to a peer service; `decide` follows, verifying the
//! peer against the root pinned in the signed peer map; a wrong pin is
//! refused; a loop between two peers is reported.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::{new_key, Client, Server};

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

    let (code, v) = client.decide_json("peer.example/app", &["--key-id", "partner-release"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["namespace"], "partner");
    assert_eq!(v["via"][0]["peer"], "partner");
    assert_eq!(v["via"][0]["url"], peer.url);

    let (code, v) = client.decide_json("peer.example/app", &["--key-id", "someone"]);
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
    let (code, _) = client.decide_json("peer.example/app", &["--key-id", "partner-2"]);
    assert_eq!(code, 0);

    // Text mode names the peer.
    let run = client.run(&["decide", "peer.example/app", "--key-id", "partner-release"]);
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
    let (code, v) = client.decide_json("peer.example/app", &["--key-id", "evil"]);
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
    let (code, v) = client.decide_json("peer.example/app", &["--key-id", "evil"]);
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
    let (code, v) = client.decide_json("loop.example/app", &["--key-id", "k"]);
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
    let (code, v) = client.decide_json("chain.example/app", &["--key-id", "far-key"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["via"].as_array().unwrap().len(), 2, "{v}");
    let (code, v) = client.decide_json(
        "chain.example/app",
        &["--key-id", "far-key", "--max-peer-depth", "1"],
    );
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("peer_too_deep")),
        "{v}"
    );
    assert_eq!(v["peer"], "c", "{v}");
}
