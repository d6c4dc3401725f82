//! CI certificates: issued under the organization's CI CA, valid exactly
//! for the delegation's window, and verifiable with OpenSSL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod ci_common;
mod http_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use actix_web::http::{Method, StatusCode};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509Builder, X509NameBuilder, X509StoreContext, X509};
use serde_json::json;
use time::OffsetDateTime;

use keyshare_policy::sign::Signer;
use keyshare_server::ci::{CiConfig, CiService};
use keyshare_server::config::ci::CaConfig;

use ci_common::{delegation_body, job_key, CiFixture};
use http_common::{request, send, NOW};

/// Writes a self-signed P-256 CI CA (with a subject key identifier) as
/// `ca.pem` and `ca-key.pem` (0600) into `dir`; returns the certificate.
fn write_ca(dir: &Path) -> X509 {
    let ca = keyshare_testkit::CertBuilder::new("Acme CI CA")
        .subject_attr("O", "Acme")
        .serial(7)
        .valid_unix(1_700_000_000, 2_500_000_000)
        .ca()
        .build();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let key_path = dir.join("ca-key.pem");
    std::fs::write(&key_path, ca.key_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    ca.cert
}

#[actix_web::test]
async fn the_certificate_chains_to_the_ci_ca_and_matches_the_delegation_window() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = write_ca(ca_dir.path());
    let fx = CiFixture::with(|c| {
        c.ca = Some(CaConfig {
            cert: ca_dir.path().join("ca.pem"),
            key: ca_dir.path().join("ca-key.pem").display().to_string(),
        });
    });
    let app = app!(fx.f);
    let a = send(
        &app,
        request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
    )
    .await;
    let nonce = a.json()["nonce"].as_str().unwrap().to_owned();
    let key = job_key();
    let mut body = delegation_body(&nonce, "team-a", &key);
    body["ttl_seconds"] = json!(300);
    let a = send(
        &app,
        request(
            Method::POST,
            "/api/v1/ci/delegations",
            Some(&fx.issuer.token()),
            Some(&body),
        )
        .to_request(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let d = a.json();
    let chain = d["certificate_chain_pem"].as_str().unwrap();
    let certs = X509::stack_from_pem(chain.as_bytes()).unwrap();
    assert_eq!(certs.len(), 2, "leaf and CA");
    let leaf = &certs[0];
    assert_eq!(certs[1].to_der().unwrap(), ca.to_der().unwrap());

    // x509-parser: validity is the delegation's window, the key is the job's.
    let der = leaf.to_der().unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let rfc = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert_eq!(
        rfc(parsed.validity().not_before.timestamp()),
        d["not_before"]
    );
    assert_eq!(rfc(parsed.validity().not_after.timestamp()), d["not_after"]);
    assert_eq!(
        parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp(),
        300
    );
    assert_eq!(
        parsed.validity().not_before.timestamp(),
        NOW.unix_timestamp()
    );
    let job_public = key
        .public_key()
        .openssl_key(key.key_id())
        .unwrap()
        .raw_public_key()
        .unwrap();
    assert_eq!(
        parsed.public_key().subject_public_key.data.as_ref(),
        &job_public[..]
    );
    let eku = parsed.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.code_signing);
    assert!(!parsed.is_ca());

    // OpenSSL: the leaf chains to the CA, at a time inside the window.
    let verify_at = |t: OffsetDateTime| {
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca.clone()).unwrap();
        let mut param = X509VerifyParam::new().unwrap();
        param.set_time(t.unix_timestamp());
        store.set_param(&param).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, leaf, &Stack::new().unwrap(), |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error().to_string()))
        })
        .unwrap()
    };
    let (ok, error) = verify_at(NOW + time::Duration::seconds(60));
    assert!(ok, "{error}");
    let (ok, _) = verify_at(NOW + time::Duration::seconds(301));
    assert!(!ok, "valid after the delegation ended");
}

#[test]
fn a_ca_key_that_does_not_match_the_certificate_is_refused() {
    let ca_dir = tempfile::tempdir().unwrap();
    write_ca(ca_dir.path());
    let other = tempfile::tempdir().unwrap();
    write_ca(other.path());
    let f = http_common::Fixture::new();
    let issuer = ci_common::Issuer::start();
    let config = CiConfig {
        ca: Some(CaConfig {
            cert: ca_dir.path().join("ca.pem"),
            key: other.path().join("ca-key.pem").display().to_string(),
        }),
        ..ci_common::config(&issuer)
    };
    let e = CiService::new(
        config,
        f.dir.path(),
        None,
        f.publisher.clone(),
        f.state.clock.clone(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("does not belong"), "{e}");
}

/// The CI CA key in a PKCS#11 token (SoftHSM2), the CA certificate issued
/// by an offline root: the leaf chains leaf → CI CA → root.
#[actix_web::test]
async fn a_ca_key_in_a_pkcs11_token_issues_certificates() {
    use keyshare_hsm::{generate_key, Pin, PinSource, Pkcs11Signer, Pkcs11Uri};
    use keyshare_policy::keys::Scheme;
    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    assert!(
        Path::new(MODULE).is_file(),
        "{MODULE} is missing: `apt-get install softhsm2`"
    );
    let hsm = tempfile::tempdir().unwrap();
    std::fs::create_dir(hsm.path().join("tokens")).unwrap();
    let conf = hsm.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            hsm.path().join("tokens").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "ci-ca",
            "--pin",
            "123456",
            "--so-pin",
            "12345678",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only this test of this binary uses PKCS#11: set before C_Initialize.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let pin_file = hsm.path().join("token.pin");
    std::fs::write(&pin_file, "123456\n").unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = Pkcs11Uri::parse(&format!(
        "pkcs11:token=ci-ca?module-path={MODULE}&pin-source={}",
        pin_file.display()
    ))
    .unwrap();
    let pin = PinSource::Value(Pin::new("123456"));
    let uri = generate_key(&token, &pin, Scheme::EcdsaP256Sha256, "ci-ca").unwrap();
    let ca_key = Pkcs11Signer::open(&uri, &pin, None).unwrap();
    let ca_public = ca_key
        .public_key()
        .openssl_key(ca_key.key_id())
        .unwrap()
        .clone();

    // An offline root issues the CI CA certificate for the token's key.
    let root_key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let cert = |subject: &str, key: &openssl::pkey::PKeyRef<openssl::pkey::Public>, serial: u32| {
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name(subject)).unwrap();
        b.set_issuer_name(&name("Acme Root")).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(1_700_000_000).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(2_500_000_000).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.sign(&root_key, MessageDigest::sha256()).unwrap();
        b.build()
    };
    let root_public = PKey::public_key_from_pem(&root_key.public_key_to_pem().unwrap()).unwrap();
    let root = cert("Acme Root", &root_public, 1);
    let ca = cert("Acme CI CA", &ca_public, 2);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ci-ca.pem"), ca.to_pem().unwrap()).unwrap();

    let fx = CiFixture::with(|c| {
        c.ca = Some(CaConfig {
            cert: dir.path().join("ci-ca.pem"),
            key: uri.to_string(),
        });
    });
    let app = app!(fx.f);
    let a = send(
        &app,
        request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
    )
    .await;
    let nonce = a.json()["nonce"].as_str().unwrap().to_owned();
    let body = delegation_body(&nonce, "team-a", &job_key());
    let a = send(
        &app,
        request(
            Method::POST,
            "/api/v1/ci/delegations",
            Some(&fx.issuer.token()),
            Some(&body),
        )
        .to_request(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let chain = X509::stack_from_pem(
        a.json()["certificate_chain_pem"]
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(root).unwrap();
    let mut param = X509VerifyParam::new().unwrap();
    param.set_time(NOW.unix_timestamp() + 60);
    store.set_param(&param).unwrap();
    let store = store.build();
    let mut untrusted = Stack::new().unwrap();
    untrusted.push(chain[1].clone()).unwrap();
    let mut ctx = X509StoreContext::new().unwrap();
    let (ok, error) = ctx
        .init(&store, &chain[0], &untrusted, |c| {
            Ok((c.verify_cert()?, c.error().to_string()))
        })
        .unwrap();
    assert!(ok, "{error}");
}
