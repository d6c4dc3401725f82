//! Evaluating an X.509 certificate chain against a namespace's identity
//! rules: chain building to the namespace's CAs, revoked certificates and
//! keys, the rules' subject and validity checks.

use openssl::stack::Stack;
use openssl::x509::X509;
use time::OffsetDateTime;

use crate::hash::Sha256Hex;
use crate::keys::public_key_fingerprint;
use crate::trust::x509::name_text;

use super::reason::{Listed, Reason};
use super::tally::{Contribution, PrincipalId};
use super::{check_signing_window, Documented, TrustSet};

impl TrustSet {
    pub(super) fn evaluate_chain(
        &self,
        ns: &Documented,
        chain: &[Vec<u8>],
        signed_at: OffsetDateTime,
    ) -> std::result::Result<Vec<Contribution>, Reason> {
        let namespace = &ns.doc.namespace;
        let not_trusted = |detail: String| Reason::ChainNotTrusted {
            namespace: namespace.clone(),
            detail,
        };
        let mut certs = Vec::with_capacity(chain.len());
        for (i, der) in chain.iter().enumerate() {
            let cert = X509::from_der(der);
            let _ = openssl::error::ErrorStack::get();
            let cert = cert.map_err(|_| {
                not_trusted(format!("certificate {i} of the chain is not DER X.509"))
            })?;
            for hash in [Some(Sha256Hex::of(der)), reencoded_hash(&cert)]
                .into_iter()
                .flatten()
            {
                if let Some(reason) = self.revoked_cert(&hash, signed_at) {
                    return Err(reason);
                }
            }
            // A revoked key is revoked in every certificate that carries it
            // (for the namespace that revoked it, in every certificate
            // presented for the namespace's artifacts).
            if let Some(reason) = cert_key_fingerprint(&cert).and_then(|fp| {
                self.revoked_key(&fp, signed_at)
                    .or_else(|| ns.revoked_key(&fp, signed_at))
            }) {
                return Err(reason);
            }
            certs.push(cert);
        }
        let mut certs = certs.into_iter();
        let Some(leaf) = certs.next() else {
            return Err(not_trusted("no certificate was presented".into()));
        };
        let leaf_fingerprint = leaf
            .public_key()
            .and_then(|k| public_key_fingerprint(&k))
            .map_err(|e| not_trusted(format!("leaf public key: {e}")))?;
        if ns.doc.identities.is_empty() {
            return Err(not_trusted(format!(
                "namespace `{namespace}` lists no X.509 identities"
            )));
        }
        let mut intermediates = Stack::new().map_err(|e| not_trusted(format!("openssl: {e}")))?;
        for cert in certs {
            intermediates
                .push(cert)
                .map_err(|e| not_trusted(format!("openssl: {e}")))?;
        }

        // Report the failure that got furthest: window > subject > chain.
        let mut failure: Option<(u8, Reason)> = None;
        let mut consider = |rank: u8, reason: Reason| {
            if failure.as_ref().is_none_or(|(r, _)| rank > *r) {
                failure = Some((rank, reason));
            }
        };
        for identity in &ns.doc.identities {
            let hashes = match identity.verify_chain(&leaf, &intermediates, signed_at) {
                Ok(hashes) => hashes,
                Err(detail) => {
                    consider(
                        1,
                        not_trusted(format!("identity `{}`: {detail}", identity.name)),
                    );
                    continue;
                }
            };
            // The verified chain ends in one of the identity's CA
            // certificates, which was not presented: check it (and its key) too.
            let revoked = hashes.iter().find_map(|c| {
                self.revoked_cert(&c.sha256, signed_at).or_else(|| {
                    c.key.as_ref().and_then(|fp| {
                        self.revoked_key(fp, signed_at)
                            .or_else(|| ns.revoked_key(fp, signed_at))
                    })
                })
            });
            if let Some(reason) = revoked {
                return Err(reason);
            }
            if !identity.subject.matches(leaf.subject_name()) {
                consider(
                    2,
                    Reason::SubjectMismatch {
                        namespace: namespace.clone(),
                        identity: identity.name.clone(),
                        expected: identity.subject.to_string(),
                        found: name_text(leaf.subject_name()),
                    },
                );
                continue;
            }
            match check_signing_window(
                namespace,
                || Listed::Identity(identity.name.clone()),
                identity.not_before,
                identity.not_after,
                signed_at,
            ) {
                Ok(()) => {
                    return Ok(vec![Contribution {
                        rule: 0,
                        fingerprint: leaf_fingerprint,
                        principal: PrincipalId::Identity(identity.name.clone()),
                        listed: Listed::Identity(identity.name.clone()),
                    }])
                }
                Err(reason) => consider(3, reason),
            }
        }
        Err(failure.map_or_else(
            || not_trusted("no identity matched".into()),
            |(_, reason)| reason,
        ))
    }
}

fn cert_key_fingerprint(cert: &X509) -> Option<Sha256Hex> {
    let fp = cert
        .public_key()
        .and_then(|k| public_key_fingerprint(&k))
        .ok();
    let _ = openssl::error::ErrorStack::get();
    fp
}

fn reencoded_hash(cert: &X509) -> Option<Sha256Hex> {
    cert.digest(openssl::hash::MessageDigest::sha256())
        .ok()
        .map(|d| Sha256Hex::from_digest(&d))
}
