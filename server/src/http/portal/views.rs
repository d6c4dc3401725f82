//! The markup every page shares: the layout, form fields with their
//! labels and errors, and error pages. maud escapes every value it
//! interpolates; nothing here writes unescaped text.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::{assets, html as respond, Who};
use crate::http::ApiError;

/// What a form shows again after a refusal: the values given, and the
/// error next to the field it names (or above the form).
#[derive(Debug, Default, Clone)]
pub(crate) struct FormState {
    /// Which form (several share a page).
    pub(crate) form: &'static str,
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) errors: BTreeMap<String, String>,
    pub(crate) general: Option<String>,
}

impl FormState {
    pub(crate) fn refused(
        form: &'static str,
        values: BTreeMap<String, String>,
        e: &ApiError,
        fields: &[&str],
    ) -> Self {
        let mut state = Self {
            form,
            values,
            ..Self::default()
        };
        match super::form::field_of(e, fields) {
            Some(f) => {
                state.errors.insert(f, e.message().to_owned());
            }
            None => state.general = Some(e.message().to_owned()),
        }
        state
    }

    /// This state when it is of `form`, else an empty one.
    pub(crate) fn of(state: Option<&Self>, form: &'static str) -> Self {
        match state {
            Some(s) if s.form == form => s.clone(),
            _ => Self {
                form,
                ..Self::default()
            },
        }
    }

    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }
}

/// The pages of the navigation: (path, label, org admins only).
const NAV: [(&str, &str, bool); 9] = [
    ("/ui/", "Overview", false),
    ("/ui/namespaces", "Namespaces", false),
    ("/ui/who-can-sign", "Who can sign what", false),
    ("/ui/revocations", "Revocations", true),
    ("/ui/ci", "CI delegations", true),
    ("/ui/peers", "Peers, roots, TSAs", true),
    ("/ui/tokens", "Tokens", true),
    ("/ui/audit", "Audit log", true),
    ("/ui/simulate", "Decision simulator", false),
];

/// A whole page.
pub(crate) fn page(who: Option<&Who>, current: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — keyshare" }
                link rel="stylesheet" href=(assets::css_path());
                script src=(assets::js_path()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "keyshare" }
                    @if let Some(who) = who {
                        nav aria-label="Portal" {
                            ul {
                                @for (path, label, admin_only) in NAV {
                                    @if !admin_only || who.is_admin() {
                                        li {
                                            @if path == current {
                                                a href=(path) aria-current="page" { (label) }
                                            } @else {
                                                a href=(path) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span { "Signed in with " code { (who.caller.token.id) } " ("
                                @match who.own_namespace() {
                                    Some(ns) => { "maintainer of " (ns) },
                                    None => { "org admin" },
                                }
                                ")" }
                            form.inline method="post" action="/ui/sign-out" {
                                (csrf(who))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field of a session's forms.
pub(crate) fn csrf(who: &Who) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.session.csrf); }
}

/// The error of `name`, if any, with the id the field points to.
fn error_of(state: &FormState, name: &str) -> Option<(String, String)> {
    state
        .errors
        .get(name)
        .map(|m| (format!("{}-{name}-error", state.form), m.clone()))
}

/// The ids of a form control, its error if the refusal named it, and
/// what `aria-describedby` lists (the error, then the hint).
struct Field {
    id: String,
    error: Option<(String, String)>,
    hint_id: String,
    described: Option<String>,
}

impl Field {
    fn of(state: &FormState, name: &str, hint: Option<&str>) -> Self {
        let id = format!("{}-{name}", state.form);
        let error = error_of(state, name);
        let hint_id = format!("{id}-hint");
        let described = match (&error, hint) {
            (Some((e, _)), Some(_)) => Some(format!("{e} {hint_id}")),
            (Some((e, _)), None) => Some(e.clone()),
            (None, Some(_)) => Some(hint_id.clone()),
            (None, None) => None,
        };
        Self {
            id,
            error,
            hint_id,
            described,
        }
    }
}

/// A labelled text input; `kind` is `text`, `password` or `number`.
pub(crate) fn input(
    state: &FormState,
    name: &str,
    label: &str,
    hint: Option<&str>,
    kind: &str,
    required: bool,
) -> Markup {
    let Field {
        id,
        error,
        hint_id,
        described,
    } = Field::of(state, name, hint);
    // A password field is never filled back in.
    let value = if kind == "password" {
        ""
    } else {
        state.value(name)
    };
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(h) = hint { span.hint id=(hint_id) { (h) } }
            input type=(kind) id=(id) name=(name) value=(value) required[required]
                aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[described]
                autocomplete=(if kind == "password" { "off" } else { "on" });
            @if let Some((eid, message)) = &error { span.error id=(eid) { (message) } }
        }
    }
}

/// A labelled textarea.
pub(crate) fn textarea(
    state: &FormState,
    name: &str,
    label: &str,
    hint: Option<&str>,
    required: bool,
) -> Markup {
    let Field {
        id,
        error,
        hint_id,
        described,
    } = Field::of(state, name, hint);
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(h) = hint { span.hint id=(hint_id) { (h) } }
            textarea id=(id) name=(name) required[required]
                aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[described] { (state.value(name)) }
            @if let Some((eid, message)) = &error { span.error id=(eid) { (message) } }
        }
    }
}

/// A labelled select of `(value, label)` options.
pub(crate) fn select(
    state: &FormState,
    name: &str,
    label: &str,
    options: &[(&str, &str)],
) -> Markup {
    let id = format!("{}-{name}", state.form);
    let error = error_of(state, name);
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[error.as_ref().map(|(e, _)| e.clone())] {
                @for (value, text) in options {
                    option value=(value) selected[state.value(name) == *value] { (text) }
                }
            }
            @if let Some((eid, message)) = &error { span.error id=(eid) { (message) } }
        }
    }
}

/// The refusal of a form that names no field, above it.
pub(crate) fn general_error(state: &FormState) -> Markup {
    html! {
        @if let Some(m) = &state.general {
            div.notice.bad role="alert" { (m) }
        }
    }
}

/// A page for an error (signed in or not: it shows no navigation).
pub(crate) fn error_page(e: &ApiError) -> HttpResponse {
    let title = match e.status().as_u16() {
        403 => "Not allowed",
        404 => "Not found",
        429 => "Too many attempts",
        s if s >= 500 => "Server error",
        _ => "Refused",
    };
    respond(
        e.status(),
        page(
            None,
            "",
            title,
            html! {
                p.notice.bad role="alert" { (e.message()) }
                p { a href="/ui/" { "Back to the portal" } }
            },
        ),
    )
}
