//! `POST /api/v1/timestamp`, the RFC 3161 timestamp authority, from the
//! client's and the attacker's side: requests made by `openssl ts -query`
//! are answered with tokens that `openssl ts -verify` accepts (against the
//! CA that `tsa::setup` made, as `init` does); the nonce is echoed; an
//! unknown policy, a hash other than SHA-2, a malformed, truncated or
//! oversized body are refused with the right PKIStatus and failInfo (or
//! HTTP error) and nothing is recorded; serials are unique and recorded;
//! genTime is the server's clock; the per-address rate limit trips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::http_common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_tsp::{TimeStampReq, TimeStampResp, TstInfo};

use http_common::{send, Answer, Fixture, NOW};
use keyshare_server::config::TsaConfig;
use keyshare_server::store::Store;
use keyshare_server::tsa::{setup, Tsa};
use keyshare_testkit::TestClock;

const URI: &str = "/api/v1/timestamp";
const QUERY: &str = "application/timestamp-query";

struct TsaFixture {
    http: Fixture,
    /// The server clock's start: the real time (whole seconds), since the
    /// certificates are made now and no token is issued outside them.
    now: OffsetDateTime,
    clock: TestClock,
    config: TsaConfig,
    work: tempfile::TempDir,
}

impl TsaFixture {
    fn new() -> Self {
        Self::with(TsaConfig::default())
    }

    fn with(config: TsaConfig) -> Self {
        let mut http = Fixture::new();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let clock = TestClock::at(now);
        http.state.clock = clock.clock();
        let dir = http.dir.path().to_owned();
        // Certificates valid from now (openssl verifies at the real time).
        let (material, made) = setup::prepare(&config, None, &dir, now, true).unwrap();
        assert!(made.key && made.ca && made.cert, "{made:?}");
        let store = Store::open(dir.join("keyshare.db")).unwrap();
        http.state.tsa = Some(Arc::new(Tsa::new(material, &config, store).unwrap()));
        Self {
            http,
            now,
            clock,
            config,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn ca(&self) -> PathBuf {
        self.http.dir.path().join("tsa/ca.pem")
    }

    fn tsa_cert(&self) -> PathBuf {
        self.http.dir.path().join("tsa/tsa.pem")
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn recorded(&self) -> u64 {
        self.http.publisher.read(|s| s.timestamp_count()).unwrap()
    }
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line tool")
}

fn ok(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl failed: {text}");
    text
}

/// `openssl ts -query` for `data` with `extra` arguments; the DER request.
fn query(data: &Path, extra: &[&str]) -> Vec<u8> {
    let out = data.with_extension(format!("{}.tsq", extra.join("").replace('-', "")));
    let mut args = vec!["ts", "-query", "-data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-out", out.to_str().unwrap()]);
    ok(&openssl(&args));
    std::fs::read(out).unwrap()
}

fn post(body: &[u8]) -> TestRequest {
    TestRequest::default()
        .method(Method::POST)
        .uri(URI)
        .peer_addr("192.0.2.1:40000".parse().unwrap())
        .insert_header(("Content-Type", QUERY))
        .set_payload(body.to_vec())
}

/// The reply's status, failInfo bits and token's TSTInfo (when granted).
struct Reply {
    status: u8,
    fail_bits: Vec<usize>,
    text: Option<String>,
    tst: Option<TstInfo>,
    certs: usize,
}

/// `PKIStatusInfo` read independently of the server's types (the
/// `cmpv2` crate's failInfo flags do not map bit numbers).
#[derive(der::Sequence)]
struct StatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    text: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail: Option<der::asn1::BitString>,
}

#[derive(der::Sequence)]
struct Resp {
    status: StatusInfo,
    #[asn1(optional = "true")]
    token: Option<der::Any>,
}

fn reply(answer: &Answer) -> Reply {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/timestamp-reply")
    );
    let resp = Resp::from_der(&answer.body)
        .unwrap_or_else(|e| panic!("{e}: {}", hex::encode(&answer.body)));
    let fail_bits = resp
        .status
        .fail
        .as_ref()
        .map(|bits| {
            bits.bits()
                .enumerate()
                .filter_map(|(i, set)| set.then_some(i))
                .collect()
        })
        .unwrap_or_default();
    let text = resp.status.text.map(|t| t.join(" "));
    // The token as the server's own types read it (`cmpv2`'s failInfo
    // cannot read a rejection's bits).
    let token = resp.token.is_some().then(|| {
        TimeStampResp::from_der(&answer.body)
            .unwrap()
            .time_stamp_token
            .unwrap()
    });
    let (tst, certs) = match token {
        None => (None, 0),
        Some(token) => {
            let sd = SignedData::from_der(&token.content.to_der().unwrap()).unwrap();
            let econtent = sd.encap_content_info.econtent.unwrap();
            let tst = TstInfo::from_der(econtent.value()).unwrap();
            let certs = sd.certificates.map_or(0, |c| c.0.len());
            (Some(tst), certs)
        }
    };
    Reply {
        status: resp.status.status,
        fail_bits,
        text,
        tst,
        certs,
    }
}

fn unix(t: &TstInfo) -> i64 {
    i64::try_from(t.gen_time.to_unix_duration().as_secs()).unwrap()
}

#[actix_web::test]
async fn openssl_verifies_a_token_for_an_openssl_query_with_nonce_time_and_record() {
    let f = TsaFixture::new();
    let app = app!(f.http);
    let data = f.file("artifact.bin", b"a release artifact\n");
    let q = query(&data, &["-sha256", "-cert"]);
    let answer = send(&app, post(&q).to_request()).await;
    let r = reply(&answer);
    assert_eq!(r.status, 0, "granted: {:?}", r.text);
    let tst = r.tst.unwrap();
    assert_eq!(
        unix(&tst),
        f.now.unix_timestamp(),
        "genTime is the server's clock"
    );
    let req = TimeStampReq::from_der(&q).unwrap();
    assert!(req.nonce.is_some(), "openssl sends a nonce by default");
    assert_eq!(tst.nonce, req.nonce, "the nonce is echoed");
    assert_eq!(tst.message_imprint, req.message_imprint);
    assert_eq!(tst.policy.to_string(), f.config.policy);
    assert_eq!(tst.accuracy.as_ref().unwrap().seconds, Some(1));
    assert!(!tst.ordering);
    assert_eq!(r.certs, 2, "certReq: the TSA certificate and its CA");
    // DER: `ordering` FALSE is the default, so it is left out.
    let token = TimeStampResp::from_der(&answer.body)
        .unwrap()
        .time_stamp_token
        .unwrap();
    let sd = SignedData::from_der(&token.content.to_der().unwrap()).unwrap();
    let tst_der = sd.encap_content_info.econtent.unwrap().value().to_vec();
    let tst_file = f.file("tst.der", &tst_der);
    let parsed = ok(&openssl(&[
        "asn1parse",
        "-inform",
        "DER",
        "-in",
        tst_file.to_str().unwrap(),
    ]));
    assert!(!parsed.contains("BOOLEAN"), "{parsed}");
    assert!(parsed.contains("GENERALIZEDTIME"), "{parsed}");

    let reply_file = f.file("reply.tsr", &answer.body);
    let ca = f.ca();
    let tsa = f.tsa_cert();
    ok(&openssl(&[
        "ts",
        "-verify",
        "-data",
        data.to_str().unwrap(),
        "-in",
        reply_file.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
        "-untrusted",
        tsa.to_str().unwrap(),
    ]));
    // Against the query: imprint, nonce and policy checked by openssl.
    let query_file = f.file("query.tsq", &q);
    ok(&openssl(&[
        "ts",
        "-verify",
        "-queryfile",
        query_file.to_str().unwrap(),
        "-in",
        reply_file.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
    ]));
    // Another file does not verify with this token.
    let other = f.file("other.bin", b"another artifact\n");
    let out = openssl(&[
        "ts",
        "-verify",
        "-data",
        other.to_str().unwrap(),
        "-in",
        reply_file.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
        "-untrusted",
        tsa.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a token verified for other data");
    // A CA that did not issue the TSA certificate is not trusted.
    let stranger = f.file(
        "stranger.pem",
        keyshare_testkit::ca_pem("stranger").as_bytes(),
    );
    let out = openssl(&[
        "ts",
        "-verify",
        "-data",
        data.to_str().unwrap(),
        "-in",
        reply_file.to_str().unwrap(),
        "-CAfile",
        stranger.to_str().unwrap(),
        "-untrusted",
        tsa.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "verified under another CA");

    // Recorded: serial, genTime, imprint, policy, certificate.
    let serial = hex::encode(tst.serial_number.as_bytes())
        .trim_start_matches('0')
        .to_owned();
    let record = f
        .http
        .publisher
        .read(|s| s.timestamp_record(&serial))
        .unwrap()
        .unwrap_or_else(|| panic!("serial {serial} not recorded"));
    assert_eq!(record.gen_time, f.now);
    assert_eq!(record.hash_alg, "sha256");
    assert_eq!(
        record.hash,
        hex::encode(openssl::sha::sha256(b"a release artifact\n"))
    );
    assert_eq!(record.policy, f.config.policy);
    let tsa_der = openssl::x509::X509::from_pem(&std::fs::read(&tsa).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(record.tsa_cert, hex::encode(openssl::sha::sha256(&tsa_der)));
}

#[actix_web::test]
async fn sha384_and_sha512_without_cert_req_or_nonce_verify_with_the_untrusted_certificate() {
    let f = TsaFixture::new();
    let app = app!(f.http);
    let data = f.file("a.txt", b"hello\n");
    for (alg, extra) in [("-sha384", "-no_nonce"), ("-sha512", "-sha512")] {
        let q = query(&data, &[alg, extra]);
        let answer = send(&app, post(&q).to_request()).await;
        let r = reply(&answer);
        assert_eq!(r.status, 0, "{alg}: {:?}", r.text);
        assert_eq!(r.certs, 0, "no certReq, no certificates");
        let tst = r.tst.unwrap();
        assert_eq!(tst.nonce.is_some(), extra != "-no_nonce");
        let reply_file = f.file(&format!("{alg}.tsr"), &answer.body);
        ok(&openssl(&[
            "ts",
            "-verify",
            "-data",
            data.to_str().unwrap(),
            "-in",
            reply_file.to_str().unwrap(),
            "-CAfile",
            f.ca().to_str().unwrap(),
            "-untrusted",
            f.tsa_cert().to_str().unwrap(),
        ]));
    }
    assert_eq!(f.recorded(), 2);
}

#[actix_web::test]
async fn other_hash_algorithms_and_unknown_policies_are_rejected_and_not_recorded() {
    let f = TsaFixture::new();
    let app = app!(f.http);
    let data = f.file("a.txt", b"hello\n");
    for alg in ["-sha1", "-md5", "-sha224", "-sha3-256"] {
        let q = query(&data, &[alg]);
        let r = reply(&send(&app, post(&q).to_request()).await);
        assert_eq!(r.status, 2, "{alg}: rejection");
        assert_eq!(r.fail_bits, [0], "{alg}: badAlg");
        assert!(r.tst.is_none());
        assert!(r.text.unwrap().contains("SHA-256"));
    }
    let q = query(&data, &["-sha256", "-tspolicy", "1.2.3.4.5"]);
    let answer = send(&app, post(&q).to_request()).await;
    // openssl reads the rejection too.
    let file = f.file("rejected.tsr", &answer.body);
    let text = ok(&openssl(&[
        "ts",
        "-reply",
        "-in",
        file.to_str().unwrap(),
        "-text",
    ]));
    assert!(
        text.contains("Status: Rejected") && text.contains("requested TSA policy is not supported"),
        "{text}"
    );
    let r = reply(&answer);
    assert_eq!(
        (r.status, r.fail_bits.as_slice()),
        (2, &[15][..]),
        "unacceptedPolicy"
    );
    assert!(r.text.unwrap().contains("1.2.3.4.5"));
    // The configured policy, asked for by name, is granted.
    let q = query(&data, &["-sha256", "-tspolicy", &f.config.policy]);
    let r = reply(&send(&app, post(&q).to_request()).await);
    assert_eq!(r.status, 0, "{:?}", r.text);
    assert_eq!(f.recorded(), 1, "only the granted request is recorded");
}

/// A DER TimeStampReq edited from a valid one.
fn edited(q: &[u8], edit: impl FnOnce(&mut TimeStampReq)) -> Vec<u8> {
    let mut req = TimeStampReq::from_der(q).unwrap();
    edit(&mut req);
    req.to_der().unwrap()
}

#[actix_web::test]
async fn malformed_bodies_are_refused_with_bad_data_format_or_an_http_error() {
    let f = TsaFixture::new();
    let app = app!(f.http);
    let data = f.file("a.txt", b"hello\n");
    let q = query(&data, &["-sha256", "-cert"]);
    let mut trailing = q.clone();
    trailing.push(0);
    let mut long_length = q.clone();
    long_length[1] = long_length[1].wrapping_add(1);
    let short_imprint = edited(&q, |r| {
        r.message_imprint.hashed_message = der::asn1::OctetString::new(vec![1u8; 20]).unwrap();
    });
    let ext_der = {
        let ext = x509_cert::ext::Extension {
            extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.2.3.4"),
            critical: false,
            extn_value: der::asn1::OctetString::new(vec![5]).unwrap(),
        };
        edited(&q, |r| r.extensions = Some(vec![ext]))
    };
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("empty", Vec::new(), 5),
        ("garbage", b"not a timestamp query at all".to_vec(), 5),
        ("truncated", q[..q.len() - 3].to_vec(), 5),
        ("trailing data", trailing, 5),
        ("length past the end", long_length, 5),
        ("json", br#"{"hash":"abc"}"#.to_vec(), 5),
        ("short imprint", short_imprint, 5),
        ("extension", ext_der, 16),
    ];
    for (what, body, bit) in cases {
        let r = reply(&send(&app, post(&body).to_request()).await);
        assert_eq!(r.status, 2, "{what}: rejection");
        assert_eq!(r.fail_bits, [bit], "{what}");
        assert!(r.tst.is_none(), "{what}");
    }
    // Every truncation of a valid request, none answered but by a rejection.
    for n in 0..q.len() {
        let r = reply(&send(&app, post(&q[..n]).to_request()).await);
        assert_eq!(
            (r.status, r.fail_bits.as_slice()),
            (2, &[5][..]),
            "{n} bytes"
        );
    }
    assert_eq!(f.recorded(), 0);

    // What never reaches the protocol: JSON errors.
    let big = vec![0x30u8; 4097];
    let answer = send(&app, post(&big).to_request()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = send(
        &app,
        post(&q)
            .insert_header(("Content-Type", "application/octet-stream"))
            .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.error().1.contains(QUERY), "{:?}", answer.error());
    let answer = send(
        &app,
        post(&q)
            .insert_header(("Content-Encoding", "gzip"))
            .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let answer = send(&app, TestRequest::get().uri(URI).to_request()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.recorded(), 0);
}

#[actix_web::test]
async fn serials_are_unique_and_recorded_and_gen_time_follows_the_server_clock() {
    let f = TsaFixture::new();
    let app = app!(f.http);
    let data = f.file("a.txt", b"hello\n");
    let q = query(&data, &["-sha256"]);
    let mut serials = BTreeSet::new();
    // Inside the TSA certificate's validity (made now, for 5 years).
    let times = [
        f.now,
        f.now + time::Duration::days(1500) + time::Duration::seconds(7),
        f.now + time::Duration::days(400) + time::Duration::seconds(3601),
    ];
    for i in 0..150 {
        let t = times[i % times.len()];
        f.clock.set(t);
        let r = reply(&send(&app, post(&q).to_request()).await);
        let tst = r.tst.unwrap();
        assert_eq!(unix(&tst), t.unix_timestamp(), "request {i}");
        let serial = hex::encode(tst.serial_number.as_bytes())
            .trim_start_matches('0')
            .to_owned();
        assert!(
            serials.insert(serial.clone()),
            "serial {serial} issued twice"
        );
        let record = f
            .http
            .publisher
            .read(|s| s.timestamp_record(&serial))
            .unwrap()
            .unwrap();
        assert_eq!(record.gen_time, t);
    }
    assert_eq!(f.recorded(), 150);
}

#[actix_web::test]
async fn the_rate_limit_is_per_client_address() {
    let f = TsaFixture::with(TsaConfig {
        rate_limit: 3,
        ..TsaConfig::default()
    });
    let app = app!(f.http);
    let data = f.file("a.txt", b"hello\n");
    let q = query(&data, &["-sha256"]);
    let from = |addr: &str| post(&q).peer_addr(addr.parse::<SocketAddr>().unwrap());
    for _ in 0..3 {
        let r = reply(&send(&app, from("192.0.2.7:1").to_request()).await);
        assert_eq!(r.status, 0);
    }
    let answer = send(&app, from("192.0.2.7:2").to_request()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error().0, "rate_limited");
    // Another address is not limited; another port of the same is.
    assert_eq!(
        reply(&send(&app, from("192.0.2.8:1").to_request()).await).status,
        0
    );
    // An IPv6 client counts by its /64.
    for i in 0..3 {
        let r = reply(&send(&app, from(&format!("[2001:db8::{i}]:1")).to_request()).await);
        assert_eq!(r.status, 0);
    }
    let answer = send(&app, from("[2001:db8::99]:1").to_request()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // The window slides with the server's clock.
    f.clock.set(f.now + time::Duration::minutes(1));
    assert_eq!(
        reply(&send(&app, from("192.0.2.7:1").to_request()).await).status,
        0
    );
    assert_eq!(f.recorded(), 8);
}

#[actix_web::test]
async fn a_server_without_the_tsa_answers_404() {
    let f = Fixture::new();
    let app = app!(f);
    let answer = send(&app, post(b"\x30\x00").to_request()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.error().0, "tsa_not_configured");
}

#[test]
fn a_chain_whose_first_certificate_is_not_a_tsa_certificate_is_refused() {
    let f = Fixture::new();
    let dir = f.dir.path();
    let config = TsaConfig::default();
    let (mut material, _) =
        setup::prepare(&config, None, dir, OffsetDateTime::now_utc(), true).unwrap();
    // The CA certificate first: no timeStamping usage.
    material.chain.swap(0, 1);
    let store = Store::open(dir.join("keyshare.db")).unwrap();
    let e = Tsa::new(material, &config, store).unwrap_err().to_string();
    assert!(e.contains("timeStamping"), "{e}");
    // A chain file that certifies another key is refused (a configured
    // chain is never rewritten).
    let other = dir.join("other-chain.pem");
    std::fs::write(&other, keyshare_testkit::ca_pem("not the tsa")).unwrap();
    let config = TsaConfig {
        cert_chain: Some(other),
        ..TsaConfig::default()
    };
    let e = setup::prepare(&config, None, dir, OffsetDateTime::now_utc(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not certify the TSA key"), "{e}");
}

#[test]
fn every_tsa_certificate_that_signs_is_in_the_audit_log_once() {
    let f = Fixture::new();
    let dir = f.dir.path();
    let now = OffsetDateTime::now_utc();
    let config = TsaConfig::default();
    let audit = |config: &TsaConfig| {
        let (material, made) = setup::prepare(config, None, dir, now, true).unwrap();
        keyshare_server::tsa::audit_setup(&f.publisher, &material, made, config, NOW).unwrap()
    };
    assert_eq!(audit(&config), Some("tsa.setup"));
    assert_eq!(audit(&config), None, "the same certificate again");
    // Another key and chain, configured (made elsewhere): recorded once.
    let elsewhere = tempfile::tempdir().unwrap();
    setup::prepare(&config, None, elsewhere.path(), now, true).unwrap();
    let other = TsaConfig {
        key: keyshare_server::config::KeyRef::File(elsewhere.path().join("keys/tsa.pem")),
        cert_chain: Some(elsewhere.path().join("tsa/chain.pem")),
        ..TsaConfig::default()
    };
    assert_eq!(audit(&other), Some("tsa.certificate"));
    assert_eq!(audit(&other), None);
    let records = f
        .publisher
        .read(|s| {
            s.audit_query(&keyshare_server::store::AuditFilter {
                action: Some("tsa.*".into()),
                limit: 10,
                ..Default::default()
            })
        })
        .unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["tsa.setup", "tsa.certificate"]);
    let chain = std::fs::read(elsewhere.path().join("tsa/tsa.pem")).unwrap();
    let der = openssl::x509::X509::from_pem(&chain)
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(
        records[1].details["certificate_sha256"],
        hex::encode(openssl::sha::sha256(&der)).as_str()
    );
}

#[actix_web::test]
async fn no_token_is_issued_outside_the_tsa_certificate_validity() {
    let f = TsaFixture::new();
    let app = app!(f.http);
    let data = f.file("a.txt", b"hello\n");
    let q = query(&data, &["-sha256"]);
    for t in [
        f.now + time::Duration::days(6 * 366),
        f.now - time::Duration::seconds(1),
    ] {
        f.clock.set(t);
        let answer = send(&app, post(&q).to_request()).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{t}");
        let resp = Resp::from_der(&answer.body).unwrap();
        assert_eq!(resp.status.status, 2);
        let fail = resp.status.fail.unwrap();
        let bits: Vec<usize> = fail
            .bits()
            .enumerate()
            .filter_map(|(i, set)| set.then_some(i))
            .collect();
        assert_eq!(bits, [25], "systemFailure");
        assert!(resp.token.is_none());
    }
    assert_eq!(f.recorded(), 0);
    f.clock.set(f.now);
    assert_eq!(reply(&send(&app, post(&q).to_request()).await).status, 0);
}

/// The workspace's own verifier (`keyshare_policy::timestamp`, what
/// `keyshare sign-blob` and `verify-blob` use) asks for a token as it does,
/// reads the answer, and trusts the token through an `org/tsas.json` that
/// lists the TSA CA `init` made.
#[actix_web::test]
async fn the_workspace_verifier_trusts_the_tokens_through_org_tsas() {
    use keyshare_policy::timestamp::{request, token_from_response, verify_token};
    let f = TsaFixture::new();
    let app = app!(f.http);
    let signature = b"the bytes of a signature";
    let nonce = [0x41u8, 2, 3, 4, 5, 6, 7, 8];
    let q = request(signature, &nonce).unwrap();
    let answer = send(&app, post(&q).to_request()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let token = token_from_response(&answer.body, signature, &nonce).unwrap();
    let ca = std::fs::read_to_string(f.ca()).unwrap();
    let doc = serde_json::json!({
        "format": "keyshare.tsas/v1",
        "tsas": [{"name": "keyshare", "certificate": ca, "description": "made at init"}],
    });
    let tsas =
        keyshare_policy::trust::Tsas::from_slice(&serde_json::to_vec(&doc).unwrap()).unwrap();
    let trusted = verify_token(&token, signature, &tsas, &[], f.now).unwrap();
    assert_eq!(trusted.gen_time, f.now);
    assert_eq!(trusted.tsa, "keyshare");
    // Over other bytes, or under a list without this CA, it does not count.
    assert!(verify_token(&token, b"another signature", &tsas, &[], f.now).is_err());
    let stranger = serde_json::json!({
        "format": "keyshare.tsas/v1",
        "tsas": [{"name": "other", "certificate": keyshare_testkit::ca_pem("other")}],
    });
    let stranger =
        keyshare_policy::trust::Tsas::from_slice(&serde_json::to_vec(&stranger).unwrap()).unwrap();
    assert!(verify_token(&token, signature, &stranger, &[], f.now).is_err());
}
