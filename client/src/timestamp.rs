//! Asking the keyshare server's timestamp authority (`POST
//! /api/v1/timestamp`, RFC 3161 over HTTP: `application/timestamp-query`
//! in, `application/timestamp-reply` out) for a token over a signature.
//!
//! The token is only checked here to answer the request (imprint and
//! nonce); whether its TSA is trusted is for verifiers to decide against
//! `org/tsas.json` ([`keyshare_policy::timestamp::verify_token`]).

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use keyshare_policy::timestamp::{request, token_from_response, TokenError, MAX_TOKEN};

use crate::fetch::{answer_text, server_base, BlockingClient};

/// The request's media type.
pub const QUERY_TYPE: &str = "application/timestamp-query";
/// The answer's media type.
pub const REPLY_TYPE: &str = "application/timestamp-reply";

/// Why no token was obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client could not be set up, or the URL is not one.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, or answered an unexpected status.
    #[error("timestamp request to {url} failed: {message}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The answer is not a token for this request.
    #[error("timestamp answer from {url}: {source}")]
    Token {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        source: TokenError,
    },
}

/// Asks the server at `server` (base URL) for a token over `signature`.
/// `Ok(None)` when the server runs no timestamp authority (404).
/// `server_ca`: extra PEM CA certificates for an HTTPS server with a
/// private CA.
pub fn fetch(
    server: &str,
    server_ca: Option<&[u8]>,
    signature: &[u8],
) -> Result<Option<Vec<u8>>, Error> {
    let base = server_base(server).map_err(Error::Config)?;
    let url = format!("{base}/api/v1/timestamp");
    let mut nonce = [0u8; 8];
    openssl::rand::rand_bytes(&mut nonce).map_err(|e| Error::Config(e.to_string()))?;
    // Positive and minimally encoded as an ASN.1 INTEGER.
    if let Some(first) = nonce.first_mut() {
        *first = (*first & 0x3f) | 0x40;
    }
    let body = request(signature, &nonce).map_err(|source| Error::Token {
        url: url.clone(),
        source,
    })?;
    let http = BlockingClient::for_server(server_ca).map_err(|e| Error::Config(e.to_string()))?;
    let transport = |message: String| Error::Transport {
        url: url.clone(),
        message,
    };
    let (status, bytes) = http
        .send(
            http.client()
                .post(&url)
                .header(CONTENT_TYPE, QUERY_TYPE)
                .header(ACCEPT, REPLY_TYPE)
                .body(body),
            MAX_TOKEN,
        )
        .map_err(transport)?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        return Err(transport(format!(
            "status {status}: {}",
            answer_text(&bytes)
        )));
    }
    token_from_response(&bytes, signature, &nonce)
        .map(Some)
        .map_err(|source| Error::Token {
            url: url.clone(),
            source,
        })
}
