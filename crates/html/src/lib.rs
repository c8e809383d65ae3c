//! The one page layout of Gatehouse: every server-rendered page (login flows, the user page,
//! the outpost's error pages) is wrapped by [`page`], which escapes, styles and hardens it.
//! Shared by the server and the standalone outpost so both look and behave alike.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
            out
        })
}

const STYLE: &str = r#"
:root{--fg:#111827;--muted:#6b7280;--bg:#f3f4f6;--card:#fff;--accent:#1d4ed8;--accent-fg:#fff;--err:#b91c1c;--border:#d1d5db}
@media (prefers-color-scheme: dark){:root{--fg:#f3f4f6;--muted:#9ca3af;--bg:#111827;--card:#1f2937;--accent:#3b82f6;--border:#374151;--err:#f87171}}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg);margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;justify-content:center;padding:1rem}
main{background:var(--card);padding:2rem;border-radius:14px;box-shadow:0 6px 30px #0000001a;width:100%;max-width:26rem}
main.wide{max-width:52rem}
.brand{font-weight:700;letter-spacing:.02em;color:var(--accent);margin-bottom:1rem}
h1{font-size:1.35rem;margin:.2rem 0 1rem}
label{display:block;margin:.9rem 0 .35rem;font-weight:600}
input[type=text],input[type=password],input[type=email]{width:100%;padding:.65rem .75rem;border:1px solid var(--border);border-radius:9px;font-size:1rem;background:transparent;color:var(--fg)}
input:focus{outline:3px solid #93c5fd;outline-offset:1px}
button{margin-top:1.2rem;width:100%;padding:.75rem;border:0;border-radius:9px;background:var(--accent);color:var(--accent-fg);font-size:1rem;font-weight:600;cursor:pointer}
label.check{font-weight:400;display:flex;gap:.5rem;align-items:center}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent)}
a.button{display:block;box-sizing:border-box;margin-top:.8rem;width:100%;padding:.75rem;border-radius:9px;text-align:center;font-weight:600;text-decoration:none}
a.button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent)}
button.link{background:none;color:var(--accent);width:auto;padding:0;margin:0;font-weight:500}
.error{color:var(--err);margin:.6rem 0}
.muted{color:var(--muted);font-size:.92rem}
code{word-break:break-all;background:var(--bg);padding:.4rem;display:block;border-radius:6px}
ul.apps{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.8rem}
ul.apps a{display:block;padding:1rem;border:1px solid var(--border);border-radius:10px;color:var(--fg);text-decoration:none}
ul.apps a:hover{border-color:var(--accent)}
table{width:100%;border-collapse:collapse;font-size:.92rem} td,th{text-align:left;padding:.45rem;border-bottom:1px solid var(--border)}
nav{display:flex;justify-content:space-between;align-items:center;margin-bottom:1rem}
"#;

/// A complete page around `body`.
pub fn layout(title: &str, body: &str, wide: bool) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Gatehouse</title><style>{STYLE}</style></head>
<body><main{class}><div class="brand">Gatehouse</div>{body}</main></body></html>"#,
        title = escape(title),
        class = if wide { " class=\"wide\"" } else { "" },
    )
}

/// A page response with the headers every page carries: no caching, no framing, no scripts
/// from elsewhere.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let mut response = (status, Html(layout(title, body, false))).into_response();
    harden(&mut response);
    response
}

/// A wide page (tables, app grids).
pub fn wide_page(status: StatusCode, title: &str, body: &str) -> Response {
    let mut response = (status, Html(layout(title, body, true))).into_response();
    harden(&mut response);
    response
}

fn harden(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
}

/// An error page that says what happened and what to do.
pub fn error_page(status: StatusCode, title: &str, message: &str, hint: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p class=error role=alert>{}</p><p class=muted>{}</p>",
            escape(title),
            escape(message),
            hint
        ),
    )
}
