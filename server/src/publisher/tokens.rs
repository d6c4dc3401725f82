//! API tokens: created and revoked with an audit record, authenticated
//! with their last use recorded. Not published. Also the audit record of
//! a server event that publishes nothing ([`Publisher::audit_event`]).

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::datetime::rfc3339;

use crate::store::{NewToken, Token, TokenKind};

use super::{PublishError, Publisher};

impl Publisher {
    /// Creates an API token (audited). The secret is in the result only.
    pub fn create_token(
        &self,
        actor: &str,
        kind: TokenKind,
        description: Option<String>,
        now: OffsetDateTime,
    ) -> Result<NewToken, PublishError> {
        self.create_token_expiring(actor, kind, description, None, now)
    }

    /// [`Publisher::create_token`] with an expiry (`None`: never expires).
    pub fn create_token_expiring(
        &self,
        actor: &str,
        kind: TokenKind,
        description: Option<String>,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<NewToken, PublishError> {
        let mut guard = self.lock();
        guard
            .store
            .transaction_at(now, |tx| -> Result<_, PublishError> {
                let token = tx.create_token_expiring(&kind, description.as_deref(), expires_at)?;
                let mut details = json!({ "kind": kind.name(), "namespaces": kind.namespaces() });
                if let (Some(t), Value::Object(map)) = (token.token.expires_at, &mut details) {
                    map.insert("expires_at".into(), Value::String(rfc3339(t)));
                }
                tx.append_audit(actor, "token.create", &token.token.id, &details)?;
                Ok(token)
            })
    }

    /// The token whose secret is `secret`, if one exists and is not
    /// revoked (whether it expired is the caller's check, with
    /// [`Token::refusal`], so it can say so). When it is accepted at `now`
    /// and its recorded last use is older than
    /// [`store::LAST_USED_RESOLUTION`](crate::store::LAST_USED_RESOLUTION), the use is recorded: at most one
    /// write per token per minute, however many requests it makes. A
    /// failure to record it is logged and does not refuse the request.
    /// Blocking.
    pub fn authenticate(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Token>, PublishError> {
        let mut guard = self.lock();
        let Some(mut token) = guard.store.token_by_secret(secret)? else {
            return Ok(None);
        };
        if token.refusal(now).is_none() && token.last_used_is_stale(now) {
            let id = token.id.clone();
            match guard.store.transaction_at(now, |tx| tx.touch_token(&id)) {
                Ok(_) => token.last_used_at = Some(now),
                Err(e) => tracing::warn!(
                    token = %token.id,
                    error = %e,
                    "cannot record the token's last use"
                ),
            }
        }
        Ok(Some(token))
    }

    /// Records that token `id` was accepted at `now`, unless a use at most
    /// [`store::LAST_USED_RESOLUTION`](crate::store::LAST_USED_RESOLUTION)
    /// earlier is already recorded; returns whether it wrote. For a caller
    /// that already looked the token up and checked it
    /// ([`Publisher::authenticate`] does both). Blocking.
    pub fn record_token_use(&self, id: &str, now: OffsetDateTime) -> Result<bool, PublishError> {
        let mut guard = self.lock();
        Ok(guard.store.transaction_at(now, |tx| tx.touch_token(id))?)
    }

    /// Revokes an API token (audited).
    pub fn revoke_token(
        &self,
        actor: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<(), PublishError> {
        let mut guard = self.lock();
        guard
            .store
            .transaction_at(now, |tx| -> Result<_, PublishError> {
                tx.revoke_token(id)?;
                tx.append_audit(actor, "token.revoke", id, &Value::Null)?;
                Ok(())
            })
    }

    /// Appends one audit record for a server event that publishes nothing
    /// (the timestamp authority's key and certificates being made, say).
    /// `details` must be JSON without floating-point numbers.
    pub fn audit_event(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &Value,
        now: OffsetDateTime,
    ) -> Result<i64, PublishError> {
        let mut guard = self.lock();
        guard
            .store
            .transaction_at(now, |tx| -> Result<_, PublishError> {
                Ok(tx.append_audit(actor, action, subject, details)?.seq)
            })
    }
}
