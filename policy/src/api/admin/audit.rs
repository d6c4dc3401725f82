//! The audit log: `GET /api/v1/audit`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The query of `GET /api/v1/audit`: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema, utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records with a larger sequence number (0: from the start).
    #[serde(default)]
    pub after: i64,
    /// Only records with a smaller sequence number (paging newest first).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub before: Option<i64>,
    /// At most this many (the server's default 100, cap 1000).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub limit: Option<u32>,
    /// Only records written at or after this RFC 3339 time.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only this action (`key.add`), or a prefix ending in `.*` (`key.*`).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only this actor (`token:<id>`, `system`, ...).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only records about this namespace.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = "^(asc|desc)$"))]
    pub order: Option<String>,
}

impl AuditQuery {
    /// The query's parameters, as a client sends them (`after` only when
    /// it is not 0, which means from the start).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if self.after != 0 {
            pairs.push(("after", self.after.to_string()));
        }
        if let Some(b) = self.before {
            pairs.push(("before", b.to_string()));
        }
        for (name, value) in [
            ("since", &self.since),
            ("action", &self.action),
            ("actor", &self.actor),
            ("namespace", &self.namespace),
            ("order", &self.order),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.clone()));
            }
        }
        if let Some(l) = self.limit {
            pairs.push(("limit", l.to_string()));
        }
        pairs
    }
}

/// One record of the audit log as `GET /api/v1/audit` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Sequence number, from 1.
    pub seq: i64,
    /// When (RFC 3339).
    pub time: String,
    /// Who (`token:<id>`, `system`, `oidc:<issuer>#<subject>`).
    pub actor: String,
    /// What (`key.add`, ...).
    pub action: String,
    /// On what.
    pub subject: String,
    /// The change's details.
    pub details: Value,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// The answer to `GET /api/v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecords {
    /// The records, in the order asked.
    pub records: Vec<AuditRecord>,
}

/// The answer to `GET /api/v1/audit/verify`: the server's own check of
/// its log against the audit heads it published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum AuditVerification {
    /// The chain is intact and agrees with every published head checked.
    Intact(AuditIntact),
    /// A published head contradicts the log, or names records it lost.
    HeadMismatch(AuditHeadMismatch),
    /// A record does not chain to the one before.
    Broken(AuditBroken),
}

/// [`AuditVerification::Intact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditIntact {
    /// `true`.
    pub ok: bool,
    /// Number of records (the last sequence number).
    pub records: i64,
    /// Hash of the last record.
    pub hash: String,
    /// How many published heads the log was checked against.
    pub published_heads: usize,
    /// The head the current timestamp carries, if any.
    pub published_head: Option<AuditPublishedHead>,
}

/// An audit head as a timestamp published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPublishedHead {
    /// The last record's sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// The timestamp's version.
    pub timestamp_version: u64,
}

/// [`AuditVerification::HeadMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditHeadMismatch {
    /// `false`.
    pub ok: bool,
    /// The first sequence number that does not agree.
    pub first_bad_seq: u64,
    /// What is wrong, for people.
    pub reason: String,
    /// Where the head came from (`published in timestamp v12`).
    pub published_in: String,
    /// The head's sequence number.
    pub head_seq: u64,
    /// The hash the head published.
    pub expected: String,
    /// The log's hash at `head_seq` (null when the log no longer has it).
    pub found: Option<String>,
}

/// [`AuditVerification::Broken`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditBroken {
    /// `false`.
    pub ok: bool,
    /// The first sequence number that does not verify.
    pub first_bad_seq: i64,
    /// What is wrong, for people.
    pub reason: String,
}
