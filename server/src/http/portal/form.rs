//! The portal's form posts: where they may come from, their CSRF token,
//! and their translation into the admin API's request types (through
//! JSON, so the API's parser and its error paths are the portal's too).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::session::same_secret;
use super::AppState;
use crate::http::body::{parse_json, Body};
use crate::http::ApiError;

/// The media type of every portal form.
const FORM: &str = "application/x-www-form-urlencoded";

/// A posted form: its fields in order (a name may repeat).
#[derive(Debug, Default, Clone)]
pub(crate) struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// The field `name`, when given and not blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// The fields as the form shows them again after a refusal: never the
    /// CSRF token, the sign-in token, or a value holding a PEM private key
    /// (pasted by mistake where a public key or certificate goes).
    pub(crate) fn values(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter(|(n, _)| n != "csrf" && n != "token")
            .filter(|(_, v)| !v.contains("PRIVATE KEY"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

/// Refuses a post that a browser says comes from another site: a
/// `Sec-Fetch-Site` other than `same-origin`, or an `Origin` other than
/// the server's own. `Origin: null` (what Chromium sends for a form post
/// under `Referrer-Policy: no-referrer`) counts only with
/// `Sec-Fetch-Site: same-origin`. (A client that sends neither header is
/// no browser, and has to carry the session's token like everyone.)
pub(crate) fn same_origin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "refused: this form was not sent from the portal's own pages",
        )
    };
    let headers = req.headers();
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if site.is_some_and(|s| s != b"same-origin") {
        return Err(refused());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() == b"null" {
            if site.is_none() {
                return Err(refused());
            }
        } else {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(refused)?;
            let scheme = if state.portal.secure { "https" } else { "http" };
            if origin.to_str().ok() != Some(format!("{scheme}://{host}").as_str()) {
                return Err(refused());
            }
        }
    }
    Ok(())
}

/// Reads a form posted in session `csrf`'s name: the origin checked
/// first, then the body (a form, at most the body limit), then its
/// `csrf` field against the session's, in constant time.
pub(crate) async fn read(
    req: &HttpRequest,
    state: &AppState,
    body: Body,
    csrf: Option<&str>,
) -> Result<Form, ApiError> {
    same_origin(req, state)?;
    let bytes = body.bytes_of(FORM, state.body_limit).await?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| ApiError::invalid(".", format!("not a form: {e}")))?;
    let form = Form { fields };
    if let Some(expected) = csrf {
        let given = form
            .fields
            .iter()
            .find(|(n, _)| n == "csrf")
            .map_or("", |(_, v)| v.as_str());
        if !same_secret(given, expected) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "refused: the form's anti-forgery token is missing or wrong; reload the page and try again",
            ));
        }
    }
    Ok(form)
}

/// How a form field becomes a request field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum As {
    /// A string.
    Text,
    /// An array of strings, one a line.
    Lines,
    /// A number.
    Number,
    /// A boolean (a checkbox: present is true).
    Flag,
    /// An array of strings, one a PEM block (`-----BEGIN` to `-----END
    /// …-----`); text between blocks is ignored.
    PemBlocks,
}

/// The PEM blocks of `text`, each from its `-----BEGIN ` line to the end
/// of its `-----END …-----` line; an unterminated block runs to the end.
pub(crate) fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("-----BEGIN ") {
        let block = &rest[at..];
        let end = block
            .find("-----END ")
            .and_then(|e| {
                let after = &block[e + "-----END ".len()..];
                after
                    .find("-----")
                    .map(|close| e + "-----END ".len() + close + "-----".len())
            })
            .unwrap_or(block.len());
        blocks.push(format!("{}\n", block[..end].trim()));
        rest = &block[end..];
    }
    blocks
}

/// The request type `T` from the form's `fields` (absent or blank fields
/// are left out), through the API's strict JSON parser: a refusal names
/// the request field, as the API's would. A field named `a.b` is member
/// `b` of object `a` (made when one of its fields is given).
pub(crate) fn request<T: DeserializeOwned>(
    form: &Form,
    fields: &[(&str, As)],
) -> Result<T, ApiError> {
    parse(object(form, fields)?)
}

/// `object` as the request type `T`, through the API's strict JSON parser.
pub(crate) fn parse<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&Value::Object(object)).map_err(ApiError::internal)?;
    parse_json(&bytes)
}

/// The JSON object [`request`] parses, for a request that needs a field a
/// form cannot give as it is.
pub(crate) fn object(form: &Form, fields: &[(&str, As)]) -> Result<Map<String, Value>, ApiError> {
    let mut object = Map::new();
    for (name, how) in fields {
        let value = match how {
            As::Flag => {
                if form.get(name).is_some() {
                    Value::Bool(true)
                } else {
                    continue;
                }
            }
            _ => {
                let Some(text) = form.get(name) else { continue };
                match how {
                    As::Text | As::Flag => Value::String(text.trim().to_owned()),
                    As::Lines => Value::Array(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| Value::String(l.to_owned()))
                            .collect(),
                    ),
                    As::Number => match text.trim().parse::<u64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => return Err(ApiError::invalid(name, "must be a whole number")),
                    },
                    As::PemBlocks => {
                        Value::Array(pem_blocks(text).into_iter().map(Value::String).collect())
                    }
                }
            }
        };
        match name.split_once('.') {
            Some((parent, member)) => {
                let parent = object
                    .entry(parent.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(members) = parent {
                    members.insert(member.to_owned(), value);
                }
            }
            None => {
                object.insert((*name).to_owned(), value);
            }
        }
    }
    Ok(object)
}

/// The form field an error is about, among `fields`: the first segment of
/// its JSON path, or the field its message starts with (`id: ...`), or
/// the one serde says is missing; for an object's error (`root`), its
/// first member among `fields` (`root.sha256`).
pub(crate) fn field_of(e: &ApiError, fields: &[&str]) -> Option<String> {
    let from_path = e.field().map(|p| {
        p.split(['.', '['])
            .next()
            .unwrap_or(p)
            .trim_start_matches('.')
            .to_owned()
    });
    let message = e.message();
    let from_message = message
        .strip_prefix("invalid ")
        .unwrap_or(message)
        .split_once(": ")
        .map(|(head, _)| head.split(['.', '[']).next().unwrap_or(head).to_owned());
    // serde's "missing field `name`" (a required field left blank).
    let missing = message
        .split_once("missing field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    [from_path, from_message, missing]
        .into_iter()
        .flatten()
        .find_map(|f| {
            fields
                .iter()
                .find(|&&field| {
                    field == f
                        || field
                            .strip_prefix(f.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                })
                .map(|&field| field.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::pem_blocks;

    #[test]
    fn pem_blocks_are_split_out_of_the_text_around_them() {
        let a = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let b = "-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----";
        let text = format!("root CA:\n{a}\r\n\n  {b}  \ntrailing words");
        assert_eq!(pem_blocks(&text), vec![format!("{a}\n"), format!("{b}\n")]);
        assert_eq!(pem_blocks("no block here"), Vec::<String>::new());
        // An unterminated block is kept whole, for the parser to refuse.
        assert_eq!(
            pem_blocks("-----BEGIN CERTIFICATE-----\nAAAA"),
            vec!["-----BEGIN CERTIFICATE-----\nAAAA\n".to_owned()]
        );
    }
}
