//! Key-file signer: plain and encrypted PKCS#8 PEM files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyshare_hsm::{Error, KeyFileSigner, Pin, PinSource, Signer};
use keyshare_policy::keys::Scheme;

const SCHEMES: [Scheme; 3] = [
    Scheme::Ed25519,
    Scheme::EcdsaP256Sha256,
    Scheme::RsaPssSha256,
];

#[test]
fn plain_pem_round_trip_signs_and_keeps_key_id() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in SCHEMES {
        let path = dir.path().join(format!("{scheme:?}.pem"));
        let written = KeyFileSigner::generate(&path, scheme, None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{scheme:?}"
        );
        let read = KeyFileSigner::open(&path, None).unwrap();
        assert_eq!(read.key_id(), written.key_id(), "{scheme:?}");
        assert_eq!(read.scheme(), scheme);
        let sig = read.sign(b"m").unwrap();
        assert!(read.public_key().verify(read.key_id(), b"m", &sig).unwrap());
    }
}

#[test]
fn encrypted_pem_round_trip_with_passphrase_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let pass_file = dir.path().join("passphrase");
    std::fs::write(&pass_file, "correct horse\n").unwrap();
    let source = PinSource::File(pass_file);
    for scheme in SCHEMES {
        let path = dir.path().join(format!("{scheme:?}.pem"));
        let written =
            KeyFileSigner::generate(&path, scheme, Some(&Pin::new("correct horse"))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{scheme:?}"
        );
        let read = KeyFileSigner::open(&path, Some(&source)).unwrap();
        assert_eq!(read.key_id(), written.key_id(), "{scheme:?}");
        let sig = read.sign(b"m").unwrap();
        assert!(read.public_key().verify(read.key_id(), b"m", &sig).unwrap());
    }
}

#[test]
fn wrong_passphrase_is_wrong_passphrase_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    KeyFileSigner::generate(&path, Scheme::EcdsaP256Sha256, Some(&Pin::new("right"))).unwrap();
    let err =
        KeyFileSigner::open(&path, Some(&PinSource::Value(Pin::new("wrong-secret")))).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-secret"), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn encrypted_pem_without_passphrase_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    KeyFileSigner::generate(&path, Scheme::Ed25519, Some(&Pin::new("right"))).unwrap();
    let err = KeyFileSigner::open(&path, None).unwrap_err();
    assert!(matches!(err, Error::PassphraseRequired { .. }), "{err:?}");
}

#[test]
fn generate_refuses_to_overwrite_and_writes_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    KeyFileSigner::generate(&path, Scheme::Ed25519, None).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let err = KeyFileSigner::generate(&path, Scheme::Ed25519, None).unwrap_err();
    assert!(matches!(err, Error::KeyFile { .. }), "{err:?}");
}

#[test]
fn not_a_key_file_is_a_key_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, "hello").unwrap();
    let err = KeyFileSigner::open(&path, None).unwrap_err();
    assert!(matches!(err, Error::KeyFile { .. }), "{err:?}");
}
