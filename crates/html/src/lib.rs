//! The one page layout of Gatehouse: every server-rendered page (login flows, the user page,
//! the outpost's error pages) is an askama template wrapped by [`page`], which styles and
//! hardens it. Templates escape every value by default and are checked when the crate is
//! compiled, so a page cannot forget to escape. Shared by the server and the standalone outpost
//! so both look and behave alike.
//!
//! # Layout
//! - `templates/layout.html`: the document around every page, with the one stylesheet.
//! - `templates/error.html`: the body of [`error_page`]: what happened and what to do.
//! - `templates/confirm.html`: the body of [`confirm_page`]: a question and the one button
//!   whose POST does it (state changes never happen on a GET another site can trigger).

use askama::Template;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The document around a page's body.
#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    title: &'a str,
    /// Rendered by a template, so already escaped.
    body: &'a str,
    wide: bool,
}

/// A complete page around `body`, as markup (without the headers [`page`] adds).
pub fn layout(title: &str, body: &impl Template, wide: bool) -> askama::Result<String> {
    let body = body.render()?;
    Layout {
        title,
        body: &body,
        wide,
    }
    .render()
}

/// A page response with the headers every page carries: no caching, no framing, no scripts
/// from elsewhere.
pub fn page(status: StatusCode, title: &str, body: &impl Template) -> Response {
    respond(status, title, body, false)
}

/// A wide page (tables, app grids).
pub fn wide_page(status: StatusCode, title: &str, body: &impl Template) -> Response {
    respond(status, title, body, true)
}

fn respond(status: StatusCode, title: &str, body: &impl Template, wide: bool) -> Response {
    let mut response = match layout(title, body, wide) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, title, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be built; the server log has the details.",
            )
                .into_response()
        }
    };
    harden(&mut response);
    response
}

fn harden(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Login pages carry codes, tokens and `rd` targets in their URLs: never leak them to the
    // next site through the Referer header (RFC 9700 §4.2).
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
}

/// What to do next, under an error message: text with at most one link in it, so that a hint
/// can point somewhere without being raw HTML.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hint<'a> {
    lead: &'a str,
    link: Option<(&'a str, &'a str)>,
    tail: &'a str,
}

impl<'a> Hint<'a> {
    /// A link to `href` reading `text`.
    pub fn link(href: &'a str, text: &'a str) -> Hint<'a> {
        Hint {
            link: Some((href, text)),
            ..Hint::default()
        }
    }

    /// Text before the link.
    pub fn after(self, lead: &'a str) -> Hint<'a> {
        Hint { lead, ..self }
    }

    /// Text after the link.
    pub fn then(self, tail: &'a str) -> Hint<'a> {
        Hint { tail, ..self }
    }
}

impl<'a> From<&'a str> for Hint<'a> {
    fn from(lead: &'a str) -> Hint<'a> {
        Hint {
            lead,
            ..Hint::default()
        }
    }
}

impl<'a> From<&'a String> for Hint<'a> {
    fn from(lead: &'a String) -> Hint<'a> {
        Hint::from(lead.as_str())
    }
}

/// The body of an error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorBody<'a> {
    title: &'a str,
    message: &'a str,
    hint: Hint<'a>,
}

/// An error page that says what happened and what to do.
pub fn error_page<'a>(
    status: StatusCode,
    title: &str,
    message: &str,
    hint: impl Into<Hint<'a>>,
) -> Response {
    let body = ErrorBody {
        title,
        message,
        hint: hint.into(),
    };
    page(status, title, &body)
}

/// The body of a confirmation page.
#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmBody<'a> {
    title: &'a str,
    question: &'a str,
    action: &'a str,
    fields: &'a [(&'a str, &'a str)],
    button: &'a str,
}

/// A page asking `question` with a button that POSTs `fields` (e.g. an anti-forgery token) to
/// `action`: what a GET that would change state shows instead.
pub fn confirm_page(
    title: &str,
    question: &str,
    action: &str,
    fields: &[(&str, &str)],
    button: &str,
) -> Response {
    let body = ConfirmBody {
        title,
        question,
        action,
        fields,
        button,
    };
    page(StatusCode::OK, title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_escape_title_message_and_hint() -> askama::Result<()> {
        let html = layout(
            "<x-title>",
            &ErrorBody {
                title: "<x-title>",
                message: "a & <b>",
                hint: Hint::link("/x?a=1&b=\"2\"", "<go>")
                    .after("<before>")
                    .then("<after>"),
            },
            false,
        )?;
        for raw in ["<x-title>", "<b>", "<go>", "<before>", "<after>", "b=\"2\""] {
            assert!(!html.contains(raw), "{raw} unescaped in {html}");
        }
        let lt_gt = |s: &str| s.replace('<', "&#60;").replace('>', "&#62;");
        assert!(html.contains(&format!(
            "<title>{} · Gatehouse</title>",
            lt_gt("<x-title>")
        )));
        assert!(html.contains(&format!(
            "<p class=error role=alert>a &#38; {}</p>",
            lt_gt("<b>")
        )));
        assert!(html.contains(&format!(
            "{}<a href=\"/x?a=1&#38;b=&#34;2&#34;\">{}</a>{}",
            lt_gt("<before>"),
            lt_gt("<go>"),
            lt_gt("<after>")
        )));
        Ok(())
    }

    #[test]
    fn pages_carry_the_hardening_headers() {
        let response = error_page(StatusCode::NOT_FOUND, "Gone", "Nothing here.", "Go back.");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let headers = response.headers();
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(headers[CONTENT_SECURITY_POLICY]
            .to_str()
            .is_ok_and(|csp| csp.contains("frame-ancestors 'none'")));
    }
}
