//! API tokens.

use serde_json::Value;

use keyshare_policy::api::admin as api;

use super::{encode_segment, AdminClient, Result};
use super::{TokenExpiry, TokenKind};

impl AdminClient {
    /// `POST /api/v1/tokens`: the token with its `secret` (shown once).
    pub fn create_token(&self, kind: &TokenKind, description: Option<&str>) -> Result<Value> {
        self.create_token_expiring(kind, description, None)
    }

    /// `POST /api/v1/tokens` with an expiry (`expires_in` or `expires_at`).
    pub fn create_token_expiring(
        &self,
        kind: &TokenKind,
        description: Option<&str>,
        expiry: Option<&TokenExpiry>,
    ) -> Result<Value> {
        let (kind, namespace, namespaces) = match kind {
            TokenKind::OrgAdmin => ("org-admin", None, None),
            TokenKind::Maintainer(ns) => ("maintainer", Some(ns.as_str()), None),
            TokenKind::Ci(list) => ("ci", None, Some(list.iter().map(String::as_str).collect())),
        };
        let (expires_in, expires_at) = match expiry {
            Some(TokenExpiry::In(secs)) => (Some(*secs), None),
            Some(TokenExpiry::At(t)) => (None, Some(t.as_str())),
            None => (None, None),
        };
        let body = api::CreateToken {
            kind: kind.to_owned(),
            namespace,
            namespaces,
            description: description.map(str::to_owned),
            expires_in,
            expires_at,
        };
        self.send("POST", "tokens", &body)
    }

    /// `GET /api/v1/tokens`: `{"tokens": [...]}` (never secrets).
    pub fn tokens(&self) -> Result<Value> {
        self.get("tokens")
    }

    /// `DELETE /api/v1/tokens/{id}`.
    pub fn revoke_token(&self, id: &str) -> Result<()> {
        self.delete(&format!("tokens/{}", encode_segment(id)))
    }
}
