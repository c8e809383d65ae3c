//! Shared support of the property tests (`crates/*/tests/fuzz.rs`, issue #13): the seed corpora
//! under `fuzz/corpus/<target>/seeds.txt`, a generator of adversarial URLs around an allowed
//! origin, and the path normalisation an upstream may apply. Each test binary includes this file
//! with `#[path]`, so the attack strings are written once; a binary uses only part of it.
#![allow(dead_code, clippy::panic)]

use proptest::prelude::*;

/// The seed inputs of `target`: one per line, taken literally; blank lines and lines starting
/// with `#` are left out. Control characters cannot stand in a line file: the generators add
/// them.
pub(crate) fn seeds(target: &str) -> Vec<String> {
    let path = format!(
        "{}/../../fuzz/corpus/{target}/seeds.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Pieces that confuse URL parsers or the humans reading them: user info, backslashes,
/// scheme-relative prefixes, encoded dots and slashes, whitespace and control characters,
/// unicode look-alikes, fragments and queries that hide a host.
const PIECES: &[&str] = &[
    "@",
    "\\",
    "/",
    "//",
    "///",
    "\\\\",
    "/\\",
    "%2f",
    "%2F",
    "%5c",
    "%2e",
    "%2E",
    ".",
    "..",
    "%2e%2e",
    ":",
    ":443",
    ":8443",
    ":80",
    "#",
    "?",
    "&",
    "%00",
    "%0d%0a",
    "\r\n",
    "\t",
    " ",
    "%09",
    "%23",
    "%3f",
    "%40",
    "。",
    "．",
    "\u{ff0f}",
    "\u{2044}",
    "\u{200b}",
    "ⓔⓥⓘⓛ",
    "xn--",
    "[::1]",
    "127.0.0.1",
    "0x7f000001",
    "evil.net",
    ".evil.net",
    "evil.net.",
    "javascript:",
    "data:",
    "https:",
    "http:",
    "ftp:",
    "user:pass@",
    ";",
    "%252f",
    "%",
];

/// A URL built around `origin` (`https://host[:port]`) and hostile pieces: prefixes, suffixes on
/// the host, user info, other schemes and hosts. Most are not same-origin; a validator must tell
/// which ones are.
pub(crate) fn adversarial_url(origin: &'static str) -> impl Strategy<Value = String> {
    let host = origin.split("://").nth(1).unwrap_or(origin);
    let piece = prop::sample::select(PIECES);
    let pieces = prop::collection::vec(piece, 0..6).prop_map(|p| p.concat());
    let filler = "[a-zA-Z0-9._~-]{0,8}";
    (
        prop::sample::select(
            &[
                "", "https://", "http://", "//", "///", "\\\\", "/\\", "https:", "https:/",
                "HTTPS://",
            ][..],
        ),
        prop::sample::select(vec![host.to_owned(), host.to_uppercase(), String::new()]),
        pieces.clone(),
        filler,
        pieces,
        prop::sample::select(&["", "/", "/steal", "/a?b=c", "#frag", "/../x"][..]),
    )
        .prop_map(|(scheme, host, mid, fill, tail, path)| {
            format!("{scheme}{host}{mid}{fill}{tail}{path}")
        })
}

/// `(scheme, host, port)` of `url` when it is an absolute http(s) URL with a host, lowercased,
/// with the scheme's default port filled in: what a browser would connect to.
pub(crate) fn origin_of(url: &str) -> Option<(String, String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    Some((
        parsed.scheme().to_owned(),
        parsed.host_str()?.to_ascii_lowercase(),
        parsed.port_or_known_default()?,
    ))
}

/// The path an upstream may end up serving for `raw`: percent-decoded once, backslashes as
/// slashes, `;` parameters cut from each segment (as Tomcat and Spring do), dot segments
/// resolved. A skip path must be judged on this, not on what the outpost saw.
pub(crate) fn normalised_path(raw: &str) -> String {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(path).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        let segment = segment.split(';').next().unwrap_or_default();
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path under `prefix` made of segments and separators that may, once normalised, climb out
/// of it: dot segments plain, percent-encoded and with `;` parameters, encoded slashes and
/// backslashes.
pub(crate) fn traversal_path(prefix: &'static str) -> impl Strategy<Value = String> {
    let segment = prop::sample::select(
        &[
            "..", ".", "..;", "..;x=1", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2e%2e;", "..%00",
            "admin", "public", "a", "", "%2e", "..%2f..", "..\\..",
        ][..],
    );
    let separator = prop::sample::select(&["/", "%2f", "%2F", "\\", "%5c", "%5C", "//"][..]);
    prop::collection::vec((segment, separator), 1..6).prop_map(move |parts| {
        let body: String = parts.iter().map(|(s, sep)| format!("{s}{sep}")).collect();
        format!("{prefix}{body}admin")
    })
}
