//! OpenAPI schemas (feature `openapi`) of the leaf types the API's
//! messages are made of, whose serde form is not their Rust shape: strings
//! parsed on the way in (names, patterns, digests, times, PEM), and the
//! objects read through a raw form (a revocation's subject, a peer's
//! pinned root, a TUF key object). The messages themselves derive
//! `utoipa::ToSchema` where they are defined; keyshare-server assembles
//! the document (`GET /api/v1/openapi.json`, `docs/api.md`).

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
    Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::datetime::Rfc3339Time;
use crate::hash::Sha256Hex;
use crate::ids::{KeyId, RoleName};
use crate::keys::Key;
use crate::pattern::ArtifactPattern;
use crate::trust::{
    CaCert, NamespaceName, PeerUrl, PinnedRoot, Principal, RevokedSubject, SubjectName,
};

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// A 64-digit lowercase hex SHA-256 string.
fn sha256(description: &str) -> ObjectBuilder {
    string(description).pattern(Some("^[0-9a-f]{64}$"))
}

/// Implements `ToSchema` for a type under `name` with `schema`.
macro_rules! schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

schema!(
    NamespaceName,
    "NamespaceName",
    string(
        "A namespace name: 1 to 63 of a-z, 0-9 and `-`, not starting with `-`; not a name \
         of the repository's own roles (`root`, `targets`, `snapshot`, `timestamp`, `bins-xx`)."
    )
    .pattern(Some("^[a-z0-9][a-z0-9-]{0,62}$"))
);

schema!(
    ArtifactPattern,
    "ArtifactPattern",
    string(
        "An artifact name pattern: `*` matches within a path segment, `**` across segments \
         (`registry.acme.io/team-a/**`)."
    )
    .min_length(Some(1))
);

schema!(
    Sha256Hex,
    "Sha256Hex",
    sha256("A SHA-256 digest, 64 lowercase hex digits.")
);

schema!(
    KeyId,
    "KeyId",
    string("A key id, opaque: signers name the key by it.")
);

schema!(RoleName, "RoleName", string("A TUF role name (`bins-3f`)."));

schema!(
    Principal,
    "Principal",
    string("Who holds a key, an opaque id: keys with the same principal count once.")
        .pattern(Some("^[A-Za-z0-9:._-]{1,128}$"))
);

schema!(
    PeerUrl,
    "PeerUrl",
    string("A peer service's base URL: `https://` to a public host.")
        .format(Some(SchemaFormat::Custom("uri".into())))
);

schema!(
    Rfc3339Time,
    "Rfc3339Time",
    string("An RFC 3339 time (`2030-01-01T00:00:00Z`).")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);

schema!(
    CaCert,
    "CaCert",
    string("A CA certificate, PEM (a root or an intermediate CA).")
);

schema!(
    SubjectName,
    "SubjectName",
    string("A certificate subject in notation's form, `C=US, O=acme, CN=team-a`.")
);

schema!(
    RevokedSubject,
    "RevokedSubject",
    OneOfBuilder::new()
        .description(Some(
            "What a revocation names: key material by its fingerprint, or a certificate by \
             the SHA-256 of its DER; exactly one of the two."
        ))
        .item(
            ObjectBuilder::new()
                .property(
                    "spki_sha256",
                    sha256("The key's fingerprint (SHA-256 of its DER SubjectPublicKeyInfo)."),
                )
                .required("spki_sha256")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        )
        .item(
            ObjectBuilder::new()
                .property(
                    "certificate_sha256",
                    sha256("The SHA-256 of the certificate's DER."),
                )
                .required("certificate_sha256")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        )
);

schema!(
    PinnedRoot,
    "PinnedRoot",
    OneOfBuilder::new()
        .description(Some(
            "The root a peer is pinned to: the SHA-256 of its root file, or root key ids \
             and how many of them must sign."
        ))
        .item(
            ObjectBuilder::new()
                .property(
                    "sha256",
                    sha256("SHA-256 of the peer's root metadata file."),
                )
                .required("sha256")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        )
        .item(
            ObjectBuilder::new()
                .property(
                    "keyids",
                    ArrayBuilder::new()
                        .items(string("A root key id."))
                        .min_items(Some(1))
                        .unique_items(true)
                )
                .required("keyids")
                .property(
                    "threshold",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                        .minimum(Some(1))
                        .description(Some("Distinct keys needed (at most as many as listed)."))
                )
                .required("threshold")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        )
);

schema!(
    Key,
    "Key",
    ObjectBuilder::new()
        .description(Some(
            "A public key as a TUF key object (`ed25519`, `ecdsa`/`ecdsa-sha2-nistp256`, \
             `rsa` with `rsassa-pss-sha256` or `rsa-pkcs1v15-sha256`)."
        ))
        .property(
            "keytype",
            string("`ed25519`, `ecdsa`, `ecdsa-sha2-nistp256` or `rsa`.")
        )
        .required("keytype")
        .property(
            "scheme",
            string(
                "`ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256` or `rsa-pkcs1v15-sha256`."
            )
        )
        .required("scheme")
        .property(
            "keyval",
            ObjectBuilder::new()
                .property(
                    "public",
                    string("The public key: hex for Ed25519, PEM otherwise.")
                )
                .required("public")
        )
        .required("keyval")
);
