//! Trusted time: RFC 3161 tokens made by OpenSSL's own TSA (`openssl ts
//! -reply`) and by OpenSSL's CMS signer over crafted `TSTInfo`s, verified by
//! `keyshare_policy::timestamp::verify_token`, and the decisions made at
//! their `genTime` (revocations, ephemeral windows). Every refusal is
//! checked for its reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use der::asn1::{GeneralizedTime, Int, OctetString};
use der::{Any, Encode};
use keyshare_policy::hash::Sha256Hex;
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::timestamp::{verify_token, TokenError};
use keyshare_policy::trust::{
    check_tsa_certificate, CaCert, Decision, Peers, Reason, Revocation, Revocations,
    RevokedSubject, SignerRef, TrustSet, TrustedTsa, Tsas, TsasFormat,
};
use time::{Duration, OffsetDateTime};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_tsp::{MessageImprint, TspVersion, TstInfo};

use crate::support::{key, namespace, set_with};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// How the TSA certificate's extended key usage is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Eku {
    Critical,
    NotCritical,
    Missing,
}

/// A CA and a TSA certificate it issued, made with the openssl CLI in a
/// scratch directory.
struct Tsa {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ca_pem: String,
    tsa_pem: String,
}

impl Tsa {
    fn new(name: &str, eku: Eku, days: u32) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let subj = format!("/O=acme/CN={name} TSA CA");
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &args);
        let mut args = vec!["req", "-new"];
        args.extend(ec);
        let subj = format!("/O=acme/CN={name} TSA");
        args.extend(["-keyout", "tsa.key", "-out", "tsa.csr", "-subj", &subj]);
        openssl(&dir, &args);
        let eku_line = match eku {
            Eku::Critical => "extendedKeyUsage=critical,timeStamping\n",
            Eku::NotCritical => "extendedKeyUsage=timeStamping\n",
            Eku::Missing => "",
        };
        std::fs::write(
            dir.join("ext.cnf"),
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{eku_line}"),
        )
        .unwrap();
        let days = days.to_string();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tsa.pem",
                "-days",
                &days,
                "-sha256",
                "-extfile",
                "ext.cnf",
            ],
        );
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        Self {
            ca_pem: read("ca.pem"),
            tsa_pem: read("tsa.pem"),
            dir,
            _dir: tmp,
        }
    }

    /// `org/tsas.json` listing this TSA's CA.
    fn listed(&self) -> Tsas {
        tsas(&[("acme-tsa", &self.ca_pem)])
    }

    /// A token from OpenSSL's TSA (`openssl ts -query` / `-reply`) over
    /// `data`, ESSCertID with `ess_alg` (`sha1`: v1, `sha256`: v2).
    fn openssl_token(&self, data: &[u8], ess_alg: &str) -> Vec<u8> {
        let d = &self.dir;
        std::fs::write(d.join("data.bin"), data).unwrap();
        std::fs::write(
            d.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {dir}\nserial = $dir/tsaserial\n\
                 crypto_device = builtin\nsigner_cert = $dir/tsa.pem\ncerts = $dir/ca.pem\n\
                 signer_key = $dir/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\n\
                 digests = sha256, sha384, sha512\naccuracy = secs:1\ness_cert_id_chain = no\n\
                 ess_cert_id_alg = {ess_alg}\n",
                dir = d.display()
            ),
        )
        .unwrap();
        if !d.join("tsaserial").exists() {
            std::fs::write(d.join("tsaserial"), "01\n").unwrap();
        }
        openssl(
            d,
            &[
                "ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "q.tsq",
            ],
        );
        openssl(
            d,
            &[
                "ts",
                "-reply",
                "-config",
                "ts.cnf",
                "-queryfile",
                "q.tsq",
                "-out",
                "r.tsr",
            ],
        );
        openssl(
            d,
            &[
                "ts",
                "-reply",
                "-in",
                "r.tsr",
                "-token_out",
                "-out",
                "token.der",
            ],
        );
        std::fs::read(d.join("token.der")).unwrap()
    }

    /// A token signed by OpenSSL's CMS signer (with the ESSCertIDv2
    /// attribute, `-cades`) over a `TSTInfo` stamping `data` at `gen_time`:
    /// what a TSA would sign, for certificates `openssl ts -reply` refuses
    /// to sign with and for chosen times.
    fn crafted_token(&self, data: &[u8], gen_time: OffsetDateTime) -> Vec<u8> {
        let digest = openssl::sha::sha256(data);
        let tst = TstInfo {
            version: TspVersion::V1,
            policy: der::oid::ObjectIdentifier::new_unwrap("1.2.3.4.1"),
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
                    parameters: Some(Any::null()),
                },
                hashed_message: OctetString::new(digest.to_vec()).unwrap(),
            },
            serial_number: Int::new(&[0x01, 0x23]).unwrap(),
            gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                u64::try_from(gen_time.unix_timestamp()).unwrap(),
            ))
            .unwrap(),
            accuracy: None,
            ordering: false,
            nonce: None,
            tsa: None,
            extensions: None,
        };
        let d = &self.dir;
        std::fs::write(d.join("tst.der"), tst.to_der().unwrap()).unwrap();
        openssl(
            d,
            &[
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-outform",
                "DER",
                "-econtent_type",
                "1.2.840.113549.1.9.16.1.4",
                "-cades",
                "-md",
                "sha256",
                "-nosmimecap",
                "-signer",
                "tsa.pem",
                "-inkey",
                "tsa.key",
                "-in",
                "tst.der",
                "-out",
                "crafted.der",
            ],
        );
        std::fs::read(d.join("crafted.der")).unwrap()
    }
}

fn tsas(list: &[(&str, &str)]) -> Tsas {
    Tsas {
        format: TsasFormat,
        tsas: list
            .iter()
            .map(|(name, pem)| TrustedTsa {
                name: (*name).to_owned(),
                certificate: CaCert::parse(pem).unwrap(),
                description: None,
            })
            .collect(),
    }
}

fn cert_sha256(pem: &str) -> Sha256Hex {
    CaCert::parse(pem).unwrap().sha256().clone()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A signature's bytes, as a blob signature carries them.
fn signature() -> (InMemorySigner, Vec<u8>) {
    let s = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let sig = s.sign(b"keyshare-blob-signature-v1\nsha256=00\n").unwrap();
    (s, sig)
}

#[test]
fn a_token_from_openssls_own_tsa_is_accepted_with_its_gen_time_and_tsa_name() {
    let tsa = Tsa::new("acme", Eku::Critical, 365);
    let (_, sig) = signature();
    let before = now() - Duration::seconds(2);
    for ess in ["sha1", "sha256"] {
        let token = tsa.openssl_token(&sig, ess);
        let t = verify_token(&token, &sig, &tsa.listed(), &[], now()).unwrap();
        assert!(t.gen_time >= before && t.gen_time <= now() + Duration::seconds(2));
        assert_eq!(t.tsa, "acme-tsa");
        assert!(t.signer.contains("acme TSA"), "{}", t.signer);
        assert_eq!(t.signer_sha256, cert_sha256(&tsa.tsa_pem));
    }
    // The TSA's own certificate listed (a leaf anchor) is as good.
    let token = tsa.openssl_token(&sig, "sha256");
    let leaf = tsas(&[("leaf", &tsa.tsa_pem)]);
    assert_eq!(
        verify_token(&token, &sig, &leaf, &[], now()).unwrap().tsa,
        "leaf"
    );
}

#[test]
fn a_tampered_token_is_refused_as_a_bad_signature() {
    let tsa = Tsa::new("acme", Eku::Critical, 365);
    let (_, sig) = signature();
    let token = tsa.openssl_token(&sig, "sha256");
    // Move genTime one year back: find the GeneralizedTime (tag 0x18, 15
    // bytes) of the TSTInfo and change its year's last digit.
    let pos = token
        .windows(2)
        .position(|w| w == [0x18, 0x0f])
        .expect("a GeneralizedTime");
    let mut tampered = token.clone();
    tampered[pos + 5] = if tampered[pos + 5] == b'0' {
        b'9'
    } else {
        tampered[pos + 5] - 1
    };
    match verify_token(&tampered, &sig, &tsa.listed(), &[], now()) {
        Err(e @ TokenError::BadSignature(_)) => {
            assert!(e.to_string().contains("tampered"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The signature value itself changed.
    let mut tampered = token.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x01;
    assert!(
        matches!(
            verify_token(&tampered, &sig, &tsa.listed(), &[], now()),
            Err(TokenError::BadSignature(_) | TokenError::Malformed(_))
        ),
        "a changed signature value is refused"
    );
}

#[test]
fn a_token_over_other_bytes_is_a_message_imprint_mismatch() {
    let tsa = Tsa::new("acme", Eku::Critical, 365);
    let (_, sig) = signature();
    let (_, other) = signature();
    let token = tsa.openssl_token(&other, "sha256");
    let e = verify_token(&token, &sig, &tsa.listed(), &[], now()).unwrap_err();
    assert!(matches!(e, TokenError::ImprintMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("message imprint mismatch"), "{e}");
}

#[test]
fn a_token_of_a_tsa_the_organization_does_not_list_is_untrusted() {
    let tsa = Tsa::new("acme", Eku::Critical, 365);
    let stranger = Tsa::new("stranger", Eku::Critical, 365);
    let (_, sig) = signature();
    let token = stranger.openssl_token(&sig, "sha256");
    for list in [tsa.listed(), Tsas::default()] {
        let e = verify_token(&token, &sig, &list, &[], now()).unwrap_err();
        assert!(matches!(e, TokenError::UntrustedTsa(_)), "{e:?}");
        assert!(e.to_string().starts_with("untrusted TSA"), "{e}");
    }
}

#[test]
fn a_token_made_after_the_tsa_certificate_expired_is_refused() {
    let tsa = Tsa::new("acme", Eku::Critical, 1);
    let (_, sig) = signature();
    let later = now() + Duration::days(30);
    let token = tsa.crafted_token(&sig, later);
    let e = verify_token(&token, &sig, &tsa.listed(), &[], later).unwrap_err();
    assert!(matches!(e, TokenError::TsaCertNotValid { .. }), "{e:?}");
    assert!(e.to_string().contains("expired TSA certificate"), "{e}");
    // The same TSA's token made inside the certificate's validity verifies.
    let token = tsa.crafted_token(&sig, now());
    verify_token(&token, &sig, &tsa.listed(), &[], now()).unwrap();
    // ... and still a year after the certificate expired: what counts is genTime.
    verify_token(
        &token,
        &sig,
        &tsa.listed(),
        &[],
        now() + Duration::days(365),
    )
    .unwrap();
}

#[test]
fn a_tsa_certificate_without_the_critical_time_stamping_eku_is_refused() {
    let (_, sig) = signature();
    let missing = Tsa::new("plain", Eku::Missing, 365);
    let token = missing.crafted_token(&sig, now());
    let e = verify_token(&token, &sig, &missing.listed(), &[], now()).unwrap_err();
    assert!(
        matches!(e, TokenError::MissingTimestampingEku { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("id-kp-timeStamping"), "{e}");

    let soft = Tsa::new("soft", Eku::NotCritical, 365);
    let token = soft.crafted_token(&sig, now());
    let e = verify_token(&token, &sig, &soft.listed(), &[], now()).unwrap_err();
    assert!(
        matches!(e, TokenError::TimestampingEkuNotCritical { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("not marked critical"), "{e}");

    // The crafted path itself is sound: the same signer with the EKU passes.
    let good = Tsa::new("good", Eku::Critical, 365);
    let token = good.crafted_token(&sig, now());
    verify_token(&token, &sig, &good.listed(), &[], now()).unwrap();
}

#[test]
fn a_revoked_tsa_loses_every_token_whatever_its_gen_time() {
    let tsa = Tsa::new("acme", Eku::Critical, 365);
    let (_, sig) = signature();
    let token = tsa.openssl_token(&sig, "sha256");
    // Revoked a day *after* the token's genTime: refused all the same, since
    // the holder of a compromised TSA key writes any genTime it likes.
    for pem in [&tsa.tsa_pem, &tsa.ca_pem] {
        let revocations = [Revocation {
            subject: RevokedSubject::Certificate(cert_sha256(pem)),
            revoked_at: now() + Duration::days(1),
            reason: "TSA key exposed".into(),
        }];
        let e = verify_token(&token, &sig, &tsa.listed(), &revocations, now()).unwrap_err();
        assert!(matches!(e, TokenError::RevokedTsa { .. }), "{e:?}");
        assert!(e.to_string().starts_with("revoked TSA"), "{e}");
    }
}

#[test]
fn tsa_list_entries_must_be_certificates_of_a_ca_or_a_tsa() {
    let tsa = Tsa::new("acme", Eku::Critical, 365);
    let plain = Tsa::new("plain", Eku::Missing, 365);
    assert!(check_tsa_certificate(&tsa.ca_pem).is_ok());
    assert!(check_tsa_certificate(&tsa.tsa_pem).is_ok());
    let e = check_tsa_certificate(&plain.tsa_pem).unwrap_err();
    assert!(
        e.contains("neither a CA certificate nor a TSA certificate"),
        "{e}"
    );
    let key = std::fs::read_to_string(tsa.dir.join("tsa.key")).unwrap();
    let e = check_tsa_certificate(&key).unwrap_err();
    assert!(e.contains("private key"), "{e}");
    assert!(check_tsa_certificate(
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"
    )
    .is_err());

    // The document refuses them too, naming the entry.
    let doc = tsas(&[("plain", &plain.tsa_pem)]);
    let bytes = serde_json::to_vec(&doc).unwrap();
    let e = Tsas::from_slice(&bytes).unwrap_err().to_string();
    assert!(e.contains("tsas[0].certificate"), "{e}");
    // A good document round-trips; a duplicate name is refused.
    let doc = tsas(&[("a", &tsa.ca_pem), ("b", &tsa.tsa_pem)]);
    assert_eq!(Tsas::from_slice(&doc.to_vec().unwrap()).unwrap(), doc);
    let doc = tsas(&[("a", &tsa.ca_pem), ("a", &tsa.tsa_pem)]);
    assert!(Tsas::from_slice(&serde_json::to_vec(&doc).unwrap()).is_err());
}

fn trust_set(
    signer: &InMemorySigner,
    ephemeral_until: Option<OffsetDateTime>,
    revocations: Revocations,
) -> TrustSet {
    let mut k = key(signer);
    k.ephemeral = ephemeral_until.is_some();
    k.not_after = ephemeral_until;
    let ns = namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![k]);
    set_with(vec![ns], revocations, Peers::default())
}

#[test]
fn a_key_revoked_later_verifies_with_a_token_from_before_and_not_with_one_from_after() {
    let tsa = Tsa::new("acme", Eku::Critical, 3650);
    let (signer, sig) = signature();
    let artifact = "registry.acme.io/team-a/app";
    let t0 = now().replace_nanosecond(0).unwrap();
    let revoked_at = t0 + Duration::days(10);
    let revocations = Revocations {
        revocations: vec![Revocation {
            subject: RevokedSubject::Key(signer.public_key().fingerprint(signer.key_id()).unwrap()),
            revoked_at,
            reason: "laptop stolen".into(),
        }],
        ..Revocations::default()
    };
    let set = trust_set(&signer, None, revocations);
    let verifier_now = t0 + Duration::days(20);
    let signers = [SignerRef::PublicKey(signer.public_key().clone())];

    let before = tsa.crafted_token(&sig, t0);
    let t = verify_token(
        &before,
        &sig,
        &tsa.listed(),
        set.revocations(),
        verifier_now,
    )
    .unwrap();
    assert_eq!(t.gen_time, t0);
    let d = set.decide_attested(artifact, &signers, t.gen_time, verifier_now);
    assert!(d.is_trusted(), "{d}");

    let after = tsa.crafted_token(&sig, revoked_at + Duration::days(1));
    let t = verify_token(&after, &sig, &tsa.listed(), set.revocations(), verifier_now).unwrap();
    match set.decide_attested(artifact, &signers, t.gen_time, verifier_now) {
        Decision::Untrusted {
            reason: Reason::Revoked { signed_at, .. },
        } => assert_eq!(signed_at, revoked_at + Duration::days(1)),
        other => panic!("{other}"),
    }
    // Without a token the decision is as of now: revoked.
    assert!(!set
        .decide(artifact, &signers, verifier_now, verifier_now)
        .is_trusted());
}

#[test]
fn an_ephemeral_keys_signature_verifies_a_year_later_with_its_token() {
    let tsa = Tsa::new("acme", Eku::Critical, 3650);
    let (signer, sig) = signature();
    let artifact = "registry.acme.io/team-a/app";
    let t0 = now().replace_nanosecond(0).unwrap();
    let not_after = t0 + Duration::minutes(10);
    let set = trust_set(&signer, Some(not_after), Revocations::default());
    let signers = [SignerRef::PublicKey(signer.public_key().clone())];
    let year_later = t0 + Duration::days(365);

    let token = tsa.openssl_token(&sig, "sha256");
    let t = verify_token(&token, &sig, &tsa.listed(), set.revocations(), year_later).unwrap();
    let d = set.decide_attested(artifact, &signers, t.gen_time, year_later);
    assert!(d.is_trusted(), "{d}");
    // Without the token: the delegation has ended.
    match set.decide(artifact, &signers, year_later, year_later) {
        Decision::Untrusted {
            reason: Reason::EphemeralExpired { .. },
        } => {}
        other => panic!("{other}"),
    }
    // A token from after the window does not help.
    let late = tsa.crafted_token(&sig, not_after + Duration::minutes(1));
    let t = verify_token(&late, &sig, &tsa.listed(), set.revocations(), year_later).unwrap();
    match set.decide_attested(artifact, &signers, t.gen_time, year_later) {
        Decision::Untrusted {
            reason: Reason::KeyExpired { .. },
        } => {}
        other => panic!("{other}"),
    }
}
