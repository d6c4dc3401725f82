#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! `keyshare-server serve` with `tls.cert`/`tls.key`: HTTPS only, with the
//! configured certificate chain, TLS 1.2 or later; plain HTTP on the port
//! fails; bad certificate or key files stop `serve` with one line.
//!
//! The certificates are made here with the openssl crate: a root CA, an
//! intermediate CA and a server certificate for `localhost`/`127.0.0.1`.
//! The cert file holds the server certificate and the intermediate, and the
//! client trusts only the root, so the chain must be served whole.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use serde_json::Value;

/// The longest any single wait in these tests may take.
use crate::bin_common;

use bin_common::{assert_one_line_error, keyshare, run_within};

/// Runs a command to completion, bounded by this file's deadline.
fn run(cmd: Command) -> Output {
    run_within(cmd, DEADLINE)
}

const DEADLINE: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// `init` into `dir`; returns the org-admin token.
fn init(dir: &Path) -> String {
    bin_common::parse_init(&run(keyshare(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
    ])))
    .token
}

// ---- certificates ----

struct Issued {
    cert: X509,
    key: PKey<Private>,
}

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `cn`, signed by `issuer` (self-signed without one); a
/// CA when `ca`, else a TLS server certificate for localhost/127.0.0.1.
fn issue(cn: &str, issuer: Option<&Issued>, ca: bool) -> Issued {
    let key = p256();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial
        .rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(issuer.map(|i| &*i.cert), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

/// The files a server needs, and the root a client trusts.
struct TlsFiles {
    root: X509,
    cert: PathBuf,
    key: PathBuf,
}

/// Root CA → intermediate CA → server certificate; writes the chain
/// (server certificate, then the intermediate) and the server key (PKCS#8
/// PEM, mode 0600) under `dir`.
fn make_tls_files(dir: &Path) -> TlsFiles {
    use std::os::unix::fs::PermissionsExt;
    let root = issue("keyshare test root CA", None, true);
    let intermediate = issue("keyshare test intermediate CA", Some(&root), true);
    let leaf = issue("localhost", Some(&intermediate), false);
    fs::create_dir_all(dir).unwrap();
    let cert = dir.join("chain.pem");
    let mut chain = leaf.cert.to_pem().unwrap();
    chain.extend(intermediate.cert.to_pem().unwrap());
    fs::write(&cert, chain).unwrap();
    let key = dir.join("key.pem");
    fs::write(&key, leaf.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    TlsFiles {
        root: root.cert,
        cert,
        key,
    }
}

// ---- the server ----

/// A running `serve`; killed on drop if still running.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start_tls(dir: &Path, tls: &TlsFiles) -> Self {
        let log = dir.with_extension("serve.log");
        let mut child = keyshare(&[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("KEYSHARE_TLS_CERT", &tls.cert)
        .env("KEYSHARE_TLS_KEY", &tls.key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            addr: String::new(),
            log,
        };
        let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "serve printed no address; log: {}",
                fs::read_to_string(&server.log).unwrap_or_default()
            )
        });
        server.addr = line
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        server
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    fn terminate(mut self) -> (ExitStatus, String) {
        let status =
            keyshare_testkit::fixture::sigterm_and_wait(&mut self.child, DEADLINE, "serve");
        (status, fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- clients ----

fn connect(addr: &str) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp
}

/// A client that trusts `root` only, verifying the server's name.
fn connector(root: &X509) -> SslConnector {
    let mut c = SslConnector::builder(SslMethod::tls_client()).unwrap();
    c.cert_store_mut().add_cert(root.clone()).unwrap();
    c.build()
}

/// GET `path` over TLS as `host`; returns the status, body and the TLS
/// version negotiated, or the handshake error.
fn tls_get(
    connector: &SslConnector,
    addr: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>, String), String> {
    let mut tls = connector
        .connect(host, connect(addr))
        .map_err(|e| e.to_string())?;
    let version = tls.ssl().version_str().to_owned();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A peer that closes without close_notify after a complete
            // answer is fine; anything else is not.
            Err(e) if parse_response(&raw).is_some() => {
                let _ = e;
                break;
            }
            Err(e) => return Err(format!("reading {path}: {e}")),
        }
    }
    let (status, body) =
        parse_response(&raw).ok_or_else(|| format!("incomplete answer to {path}"))?;
    Ok((status, body, version))
}

/// Status and body of a complete HTTP/1.1 response, or `None`.
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let payload = &raw[split + 4..];
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => (payload.len() == n).then(|| (status, payload.to_vec())),
        None => Some((status, payload.to_vec())),
    }
}

/// Sends a plain HTTP request and returns whatever comes back (until EOF,
/// a reset or the timeout).
fn plain_http(addr: &str, path: &str) -> Vec<u8> {
    let mut tcp = connect(addr);
    let _ = tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    raw
}

#[test]
fn serve_speaks_tls_with_the_configured_chain_and_refuses_plain_http() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = init(&dir);
    let tls = make_tls_files(&dir.join("tls"));
    let server = Server::start_tls(&dir, &tls);
    let trusting = connector(&tls.root);

    let (status, body, version) =
        tls_get(&trusting, &server.addr, "localhost", "/healthz", None).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        version == "TLSv1.2" || version == "TLSv1.3",
        "negotiated {version}"
    );

    let (status, body, _) = tls_get(
        &trusting,
        &server.addr,
        "localhost",
        "/metadata/timestamp.json",
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    let timestamp: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(timestamp["signed"]["_type"], "timestamp", "{timestamp}");
    // init publishes v1, then v2 listing its own TSA in org/tsas.json.
    assert_eq!(timestamp["signed"]["version"], 2, "{timestamp}");

    // The admin API is behind the same listener.
    let (status, _, _) = tls_get(
        &trusting,
        &server.addr,
        "127.0.0.1",
        "/api/v1/namespaces",
        Some(&token),
    )
    .unwrap();
    assert_eq!(status, 200);

    // A client that does not trust the root, or expects another name,
    // refuses the server.
    let stranger = SslConnector::builder(SslMethod::tls_client())
        .unwrap()
        .build();
    let e = tls_get(&stranger, &server.addr, "localhost", "/healthz", None).unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
    let e = tls_get(&trusting, &server.addr, "example.com", "/healthz", None).unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");

    // TLS 1.1 is refused by the server (the client allows it here).
    let mut old = SslConnector::builder(SslMethod::tls_client()).unwrap();
    old.cert_store_mut().add_cert(tls.root.clone()).unwrap();
    old.set_security_level(0);
    old.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
    old.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
    old.set_max_proto_version(Some(SslVersion::TLS1_1)).unwrap();
    let e = tls_get(&old.build(), &server.addr, "localhost", "/healthz", None).unwrap_err();
    assert!(e.contains("protocol version"), "{e}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let answer = plain_http(&server.addr, "/healthz");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );

    // ... and the server goes on serving TLS.
    let (status, _, _) = tls_get(&trusting, &server.addr, "localhost", "/healthz", None).unwrap();
    assert_eq!(status, 200);

    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[test]
fn serve_refuses_bad_tls_files_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir);
    let tls = make_tls_files(&dir.join("tls"));
    let other = make_tls_files(&dir.join("other"));
    let d = dir.to_str().unwrap();
    let serve = |cert: &Path, key: &Path| {
        let mut cmd = keyshare(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"]);
        cmd.env("KEYSHARE_TLS_CERT", cert)
            .env("KEYSHARE_TLS_KEY", key);
        assert_one_line_error(&run(cmd))
    };

    let missing = dir.join("tls/missing.pem");
    let line = serve(&missing, &tls.key);
    assert!(
        line.contains("cannot read tls.cert") && line.contains("missing.pem"),
        "{line}"
    );
    let line = serve(&tls.cert, &missing);
    assert!(
        line.contains("cannot read tls.key") && line.contains("missing.pem"),
        "{line}"
    );

    let line = serve(&tls.key, &tls.key);
    assert!(
        line.contains("tls.cert") && line.contains("no PEM certificate"),
        "{line}"
    );
    let line = serve(&tls.cert, &tls.cert);
    assert!(
        line.contains("tls.key") && line.contains("not a PEM private key"),
        "{line}"
    );

    let line = serve(&tls.cert, &other.key);
    assert!(line.contains("does not match the certificate"), "{line}");
    assert!(!line.contains("PRIVATE KEY"), "{line}");

    let encrypted = dir.join("tls/encrypted.pem");
    let pkey = PKey::private_key_from_pem(&fs::read(&tls.key).unwrap()).unwrap();
    fs::write(
        &encrypted,
        pkey.private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
            .unwrap(),
    )
    .unwrap();
    let line = serve(&tls.cert, &encrypted);
    assert!(line.contains("encrypted"), "{line}");

    // Only one of the two is a configuration error.
    let mut cmd = keyshare(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"]);
    cmd.arg("--tls-cert").arg(&tls.cert);
    let line = assert_one_line_error(&run(cmd));
    assert!(line.contains("tls.cert and tls.key"), "{line}");
}
