//! Bearer-token authentication and the authorization matrix of
//! `docs/server.md`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use crate::store::{Token, TokenKind};

/// The authenticated caller: an active token presented as
/// `Authorization: Bearer <secret>`.
///
/// Extraction fails with 401 (and `WWW-Authenticate: Bearer`) when the
/// header is missing or malformed, or the secret is unknown, revoked or
/// expired (the message says which of the last two, naming the token's
/// id, which only the secret's holder learns). The secret itself is
/// dropped once looked up. Accepting a token records its last use, at
/// most once a minute ([`crate::publisher::Publisher::authenticate`]).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token (never its secret).
    pub token: Token,
}

impl Caller {
    /// The actor recorded in the audit log: `token:<id>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token.id)
    }
}

/// The bearer secret of a request, or why there is none.
pub(super) fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
    let malformed = || ApiError::unauthorized("Authorization header is not `Bearer <token>`");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, secret) = value.split_once(' ').ok_or_else(malformed)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || secret.is_empty()
        || secret.len() > 16 * 1024
        || secret.contains(char::is_whitespace)
    {
        return Err(malformed());
    }
    Ok(secret.to_owned())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let secret = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let secret = secret?;
            let state = state.ok_or_else(|| ApiError::internal("AppState is not registered"))?;
            let publisher = state.publisher.clone();
            let now = state.now();
            let token = web::block(move || publisher.authenticate(&secret, now))
                .await??
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
            if let Some(why) = token.refusal(now) {
                return Err(ApiError::unauthorized(why));
            }
            Ok(Self { token })
        })
    }
}

/// What a call does, for [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Read calls: `GET` namespaces, revocations, peers, roots, resolve.
    Read,
    /// Create or delete a namespace.
    ManageNamespaces,
    /// Keys, identities, sub-delegations or threshold of this namespace.
    WriteNamespace(&'a str),
    /// Revocations, peers, organization roots.
    WriteOrgDocuments,
    /// Withdraw a namespace's own revocation of a key (an org admin's
    /// correction; maintainers can revoke, not un-revoke).
    WithdrawNamespaceRevocation,
    /// Create, list or revoke tokens.
    Tokens,
    /// List or verify the audit log.
    Audit,
    /// Submit a new root (a root ceremony's result).
    RotateRoot,
    /// Export an air-gap bundle.
    Export,
}

/// The authorization matrix of `docs/server.md`: `Ok` when `token` may do
/// `action`, 403 otherwise (401 for a revoked token). CI tokens may do none
/// of these: they are for the CI delegation endpoints only.
pub fn authorize(token: &Token, action: Action<'_>) -> Result<(), ApiError> {
    if !token.is_active() {
        return Err(ApiError::unauthorized("unknown or revoked token"));
    }
    let allowed = match (&token.kind, action) {
        (TokenKind::OrgAdmin, _) => true,
        (TokenKind::Maintainer(_), Action::Read) => true,
        (TokenKind::Maintainer(mine), Action::WriteNamespace(ns)) => mine.as_str() == ns,
        (TokenKind::Maintainer(_), _) => false,
        (TokenKind::Ci(_), _) => false,
    };
    if allowed {
        return Ok(());
    }
    let what = match action {
        Action::Read => "read the organization's trust state".to_owned(),
        Action::ManageNamespaces => "create or delete namespaces".to_owned(),
        Action::WriteNamespace(ns) => format!("change namespace `{ns}`"),
        Action::WriteOrgDocuments => "change revocations, peers or organization roots".to_owned(),
        Action::WithdrawNamespaceRevocation => {
            "withdraw a revocation (only org admins may; maintainers may revoke keys of their own namespace)".to_owned()
        }
        Action::Tokens => "manage tokens".to_owned(),
        Action::Audit => "read the audit log".to_owned(),
        Action::RotateRoot => "submit a new root".to_owned(),
        Action::Export => "export an air-gap bundle".to_owned(),
    };
    let holder = match &token.kind {
        TokenKind::OrgAdmin => "an org-admin token".to_owned(),
        TokenKind::Maintainer(ns) => format!("a maintainer token of namespace `{ns}`"),
        TokenKind::Ci(_) => "a CI token".to_owned(),
    };
    Err(ApiError::forbidden(format!(
        "token `{}` is {holder}, which may not {what}",
        token.id
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use actix_web::http::StatusCode;
    use keyshare_policy::trust::NamespaceName;
    use time::macros::datetime;

    use super::*;

    fn token(kind: TokenKind, revoked: bool) -> Token {
        Token {
            id: "tok-0123456789abcdef".into(),
            kind,
            description: None,
            created_at: datetime!(2030-01-01 0:00 UTC),
            revoked_at: revoked.then_some(datetime!(2030-01-02 0:00 UTC)),
            expires_at: None,
            last_used_at: None,
        }
    }

    fn ns(s: &str) -> NamespaceName {
        NamespaceName::parse(s).unwrap()
    }

    /// The matrix of docs/server.md, row by row: (action, org-admin,
    /// maintainer of `a`, maintainer of `b`, CI token for `a`).
    #[test]
    fn authorization_matrix_is_the_documented_one() {
        const Y: Option<StatusCode> = None;
        const F: Option<StatusCode> = Some(StatusCode::FORBIDDEN);
        let rows: [(Action<'_>, [Option<StatusCode>; 4]); 9] = [
            (Action::Read, [Y, Y, Y, F]),
            (Action::ManageNamespaces, [Y, F, F, F]),
            (Action::WriteNamespace("a"), [Y, Y, F, F]),
            (Action::WriteOrgDocuments, [Y, F, F, F]),
            (Action::WithdrawNamespaceRevocation, [Y, F, F, F]),
            (Action::Tokens, [Y, F, F, F]),
            (Action::Audit, [Y, F, F, F]),
            (Action::RotateRoot, [Y, F, F, F]),
            (Action::Export, [Y, F, F, F]),
        ];
        let tokens = [
            TokenKind::OrgAdmin,
            TokenKind::Maintainer(ns("a")),
            TokenKind::Maintainer(ns("b")),
            TokenKind::Ci(vec![ns("a")]),
        ];
        for (action, expected) in rows {
            for (kind, want) in tokens.iter().zip(expected) {
                let got = authorize(&token(kind.clone(), false), action)
                    .err()
                    .map(|e| e.status());
                assert_eq!(got, want, "{action:?} with {kind:?}");
                // A revoked token of any kind gets 401 for everything.
                let revoked = authorize(&token(kind.clone(), true), action).unwrap_err();
                assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
            }
        }
    }

    #[test]
    fn forbidden_message_names_token_and_action_but_no_secret() {
        let e = authorize(
            &token(TokenKind::Maintainer(ns("b")), false),
            Action::WriteNamespace("a"),
        )
        .unwrap_err();
        assert_eq!(e.code(), "forbidden");
        assert!(e.message().contains("tok-0123456789abcdef"));
        assert!(e.message().contains("`a`"));
    }
}
