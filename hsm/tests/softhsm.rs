//! keyshare-hsm against SoftHSM2: key generation, signing with each
//! mechanism, TUF metadata signed in a token, concurrency and errors.
//!
//! All PKCS#11 tests live in this one binary: the module is initialised once
//! per process, so they share one temporary `SOFTHSM2_CONF` with several
//! tokens created up front ([`fixture`]). Each test uses its own token or
//! its own key labels, so they run in parallel.
//!
//! Needs `/usr/lib/softhsm/libsofthsm2.so` and `softhsm2-util` (installed by
//! `scripts/test`); without them the tests fail, they do not skip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use keyshare_hsm::{generate_key, Error, Pin, PinSource, Pkcs11Signer, Pkcs11Uri, Signer};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Envelope, Root};
use keyshare_policy::repo::{build_root, RoleSpec};
use keyshare_policy::sign::{sign, to_bytes};
use keyshare_policy::verify::{verify_root_self, Authority};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
/// Tokens created up front. `wrong-pin` is never logged into successfully:
/// once a token has a logged-in session, SoftHSM answers any later login
/// with CKR_USER_ALREADY_LOGGED_IN.
const TOKENS: &[&str] = &[
    "ecdsa",
    "ed25519",
    "rsa",
    "concurrent",
    "errors",
    "wrong-pin",
    "interop",
    "relogin",
];

struct Fixture {
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} is missing: run scripts/test (it installs softhsm2) or \
             `apt-get install softhsm2`"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        for label in TOKENS {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN])
                .output()
                .expect("softhsm2-util is missing: run scripts/test");
            assert!(
                out.status.success(),
                "softhsm2-util --init-token {label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Before the first C_Initialize, which reads it.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        Fixture { _dir: dir }
    })
}

fn token_uri(token: &str) -> Pkcs11Uri {
    fixture();
    Pkcs11Uri::parse(&format!("pkcs11:token={token}?module-path={MODULE}")).unwrap()
}

fn pin() -> PinSource {
    PinSource::Value(Pin::new(PIN))
}

fn new_signer(token: &str, scheme: Scheme, label: &str) -> Pkcs11Signer {
    let key_uri = generate_key(&token_uri(token), &pin(), scheme, label).unwrap();
    Pkcs11Signer::open(&key_uri, &pin(), Some(scheme)).unwrap()
}

fn root_signed_by(signer: &dyn Signer) -> Vec<u8> {
    let spec = RoleSpec {
        keys: vec![(signer.key_id().clone(), signer.public_key().clone())],
        threshold: NonZeroU32::new(1).unwrap(),
    };
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let root = build_root(
        1,
        expires,
        [
            ("root", &spec),
            ("targets", &spec),
            ("snapshot", &spec),
            ("timestamp", &spec),
        ],
    )
    .unwrap();
    to_bytes(&sign(root, &[signer]).unwrap()).unwrap()
}

/// Signs raw bytes and TUF root metadata with a key generated in `token`
/// and checks both with keyshare-policy's verifiers.
fn check_mechanism(token: &str, scheme: Scheme) {
    let signer = new_signer(token, scheme, "signing-key");
    assert_eq!(signer.scheme(), scheme);
    assert_eq!(signer.public_key().scheme(), Some(scheme));

    let sig = signer.sign(b"keyshare").unwrap();
    let key = signer.public_key();
    assert!(key.verify(signer.key_id(), b"keyshare", &sig).unwrap());
    assert!(!key.verify(signer.key_id(), b"keyshare!", &sig).unwrap());

    let bytes = root_signed_by(&signer);
    let envelope: Envelope<Root> = Envelope::parse("root", &bytes).unwrap();
    let authority_root = envelope.signed.clone();
    Authority::from_root(&authority_root, "root")
        .unwrap()
        .verify("root", envelope.clone())
        .unwrap();
    verify_root_self(envelope).unwrap();

    // Reopening by URI (same process, same context) finds the same key.
    let again = Pkcs11Signer::open(signer.uri(), &pin(), None).unwrap();
    assert_eq!(again.key_id(), signer.key_id());
}

#[test]
fn ecdsa_p256_key_generated_in_token_signs_tuf_root() {
    check_mechanism("ecdsa", Scheme::EcdsaP256Sha256);
}

#[test]
fn ed25519_key_generated_in_token_signs_tuf_root() {
    check_mechanism("ed25519", Scheme::Ed25519);
}

#[test]
fn rsa_pss_key_generated_in_token_signs_tuf_root() {
    check_mechanism("rsa", Scheme::RsaPssSha256);
}

#[test]
fn sixteen_threads_signing_through_one_context_all_verify() {
    let signers: Vec<Arc<Pkcs11Signer>> = [
        (Scheme::EcdsaP256Sha256, "c-ecdsa"),
        (Scheme::Ed25519, "c-ed25519"),
        (Scheme::RsaPssSha256, "c-rsa"),
    ]
    .into_iter()
    .map(|(scheme, label)| Arc::new(new_signer("concurrent", scheme, label)))
    .collect();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let signer = Arc::clone(&signers[i % signers.len()]);
            std::thread::spawn(move || {
                for j in 0..25 {
                    let msg = format!("thread {i} message {j}");
                    let sig = signer.sign(msg.as_bytes()).unwrap();
                    assert!(
                        signer
                            .public_key()
                            .verify(signer.key_id(), msg.as_bytes(), &sig)
                            .unwrap(),
                        "thread {i} message {j}: signature does not verify"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn assert_one_line_without_pin(err: &Error) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(!text.contains(PIN), "{text}");
    assert!(!format!("{err:?}").contains(PIN), "{err:?}");
}

#[test]
fn wrong_pin_is_wrong_pin_error_without_the_pin() {
    let uri = token_uri("wrong-pin");
    let err = generate_key(
        &uri,
        &PinSource::Value(Pin::new("999999")),
        Scheme::Ed25519,
        "k",
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPin { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong-pin"), "{err}");
    assert!(!err.to_string().contains("999999"), "{err}");
    assert_one_line_without_pin(&err);
}

#[test]
fn missing_token_names_the_label() {
    let mut uri = token_uri("no-such-token");
    uri.object = Some("k".into());
    let err = Pkcs11Signer::open(&uri, &pin(), None).unwrap_err();
    assert!(matches!(err, Error::TokenNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-token"), "{err}");
    assert_one_line_without_pin(&err);
}

#[test]
fn missing_key_label_is_key_not_found() {
    let mut uri = token_uri("errors");
    uri.object = Some("no-such-key".into());
    let err = Pkcs11Signer::open(&uri, &pin(), None).unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-key"), "{err}");
    assert_one_line_without_pin(&err);
}

#[test]
fn key_of_another_type_than_asked_is_unsupported() {
    let key_uri = generate_key(
        &token_uri("errors"),
        &pin(),
        Scheme::EcdsaP256Sha256,
        "an-ec-key",
    )
    .unwrap();
    let err = Pkcs11Signer::open(&key_uri, &pin(), Some(Scheme::RsaPssSha256)).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("not RSA"), "{err}");
    assert_one_line_without_pin(&err);
}

#[test]
fn generating_a_second_key_with_the_same_label_is_refused() {
    let uri = token_uri("errors");
    generate_key(&uri, &pin(), Scheme::Ed25519, "twice").unwrap();
    let err = generate_key(&uri, &pin(), Scheme::Ed25519, "twice").unwrap_err();
    assert!(matches!(err, Error::KeyExists { .. }), "{err:?}");
}

#[test]
fn nonexistent_module_path_is_module_not_found() {
    fixture(); // SOFTHSM2_CONF is set before any test touches the environment.
    let uri =
        Pkcs11Uri::parse("pkcs11:token=errors;object=k?module-path=/nonexistent/libpkcs11.so")
            .unwrap();
    let err = Pkcs11Signer::open(&uri, &pin(), None).unwrap_err();
    assert!(matches!(err, Error::ModuleNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/libpkcs11.so"),
        "{err}"
    );
    assert_one_line_without_pin(&err);
}

#[test]
fn uri_without_module_path_is_bad_uri() {
    fixture(); // SOFTHSM2_CONF is set before any test touches the environment.
    let uri = Pkcs11Uri::parse("pkcs11:token=errors;object=k").unwrap();
    let err = Pkcs11Signer::open(&uri, &pin(), None).unwrap_err();
    assert!(matches!(err, Error::BadUri(_)), "{err:?}");
}

#[test]
fn pin_from_uri_pin_source_file_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let mut uri = token_uri("errors");
    uri.pin_source = Some(pin_file);
    let source = uri.pin().unwrap();
    let key_uri = generate_key(&uri, &source, Scheme::EcdsaP256Sha256, "from-pin-file").unwrap();
    assert!(
        key_uri.to_string().contains("pin-source=file:"),
        "{key_uri}"
    );
    let signer = Pkcs11Signer::open(&key_uri, &key_uri.pin().unwrap(), None).unwrap();
    assert_eq!(signer.scheme(), Scheme::EcdsaP256Sha256);
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYSHARE_PYTHON") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")
}

#[test]
fn python_tuf_verifies_a_root_signed_in_the_token() {
    let python = python();
    assert!(
        python.is_file(),
        "{} is missing: run scripts/test (it builds target/pyenv with python-tuf) \
         or set KEYSHARE_PYTHON",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    for (scheme, label) in [
        (Scheme::EcdsaP256Sha256, "py-ecdsa"),
        (Scheme::Ed25519, "py-ed25519"),
        (Scheme::RsaPssSha256, "py-rsa"),
    ] {
        let signer = new_signer("interop", scheme, label);
        let path = dir.path().join(format!("{label}.json"));
        std::fs::write(&path, root_signed_by(&signer)).unwrap();
        let out = Command::new(&python)
            .arg("-c")
            .arg(
                "import sys\n\
                 from tuf.api.metadata import Metadata\n\
                 from tuf.api.serialization.json import CanonicalJSONSerializer\n\
                 md = Metadata.from_bytes(open(sys.argv[1], 'rb').read())\n\
                 payload = CanonicalJSONSerializer().serialize(md.signed)\n\
                 md.signed.verify_delegate('root', payload, md.signatures)\n",
            )
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python-tuf refused the {label} root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn signing_after_the_token_was_logged_out_logs_in_again() {
    let signer = new_signer("relogin", Scheme::EcdsaP256Sha256, "relogin-key");
    signer.sign(b"before").unwrap();
    // Log the whole application out of the token, behind the signer's back.
    let ctx = keyshare_hsm::pkcs11::module(Path::new(MODULE)).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == "relogin")
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    let sig = signer.sign(b"after").unwrap();
    assert!(signer
        .public_key()
        .verify(signer.key_id(), b"after", &sig)
        .unwrap());
}

#[test]
fn module_path_that_is_not_a_library_is_module_load_error() {
    fixture(); // SOFTHSM2_CONF is set before any test touches the environment.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake-pkcs11.so");
    std::fs::write(&fake, "not a shared library").unwrap();
    let mut uri = Pkcs11Uri::parse("pkcs11:token=errors;object=k").unwrap();
    uri.module_path = Some(fake);
    let err = Pkcs11Signer::open(&uri, &pin(), None).unwrap_err();
    assert!(matches!(err, Error::ModuleLoad { .. }), "{err:?}");
    assert_one_line_without_pin(&err);
}

#[test]
fn signer_opened_with_pin_value_never_shows_the_pin() {
    let key_uri = generate_key(
        &token_uri("errors"),
        &pin(),
        Scheme::Ed25519,
        "pin-value-key",
    )
    .unwrap();
    let with_pin = Pkcs11Uri::parse(&format!("{key_uri}&pin-value={PIN}")).unwrap();
    assert!(with_pin.pin_value.is_some());
    let source = with_pin.pin().unwrap();
    let signer = Pkcs11Signer::open(&with_pin, &source, None).unwrap();
    assert!(!format!("{signer:?}").contains(PIN), "{signer:?}");
    assert!(!signer.uri().to_string().contains(PIN));
    assert!(!format!("{source:?}").contains(PIN));
}
