//! Property tests of the settings parser (issue #13, fuzzing): settings files in YAML and TOML,
//! and every key's values through the same resolution `gatehouse serve` uses. Whatever the text,
//! the answer is settings or an error naming the file or the key, never a panic; unknown keys
//! and unusable URLs are refused. The seed corpus `fuzz/corpus/settings/` runs first;
//! `PROPTEST_CASES` bounds the generated cases. No database is involved.

#[path = "../../../../fuzz/attack.rs"]
mod attack;

use std::io::Write;

use gatehouse::cli::ServeArgs;
use gatehouse::config::{read_file, resolve, Settings};
use proptest::prelude::*;

/// Each key of the settings file, with the words its errors use to name it; `None` where any
/// text is accepted.
const KEYS: &[(&str, Option<&str>)] = &[
    ("listen", Some("listen address")),
    ("database", None),
    ("data_dir", None),
    ("external_url", Some("external URL")),
    ("log_format", Some("log format")),
    ("flow_state_age", Some("flow state age")),
    ("outpost_grace", Some("outpost grace period")),
    ("outpost_recheck", Some("outpost safety bound")),
    ("outpost_cache_mb", Some("outpost cache budget")),
    ("outpost_break_glass", Some("break-glass entry")),
    ("metrics_listen", Some("metrics")),
    ("trusted_proxies", Some("trusted proxies")),
];

/// The path of the file read and what reading and resolving `text` as a settings file with
/// extension `ext` gives (an error as its full text); `Err` only if the file cannot be made.
type Settled = Result<(String, Result<Settings, String>), String>;

fn settle(text: &str, ext: &str) -> Settled {
    let temp = |e: std::io::Error| format!("temp file: {e}");
    let mut file = tempfile::Builder::new()
        .suffix(&format!(".{ext}"))
        .tempfile()
        .map_err(temp)?;
    file.write_all(text.as_bytes()).map_err(temp)?;
    let path = file.path().to_path_buf();
    let shown = path.display().to_string();
    let read = read_file(&path).map_err(|e| format!("{e:#}"));
    if let Err(e) = &read {
        assert!(
            e.starts_with(&shown),
            "a file error names the file: {e} (for {text:?})"
        );
    }
    let resolved = read.and_then(|_| {
        resolve(&ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .map_err(|e| format!("{e:#}"))
    });
    Ok((shown, resolved))
}

#[test]
fn seed_settings_files_resolve_or_name_the_problem() -> anyhow::Result<()> {
    for seed in attack::seeds("settings") {
        for ext in ["yaml", "toml"] {
            let _resolved = settle(&seed, ext).map_err(anyhow::Error::msg)?;
        }
    }
    let (_, unknown) = settle("unknown_key: 1", "yaml").map_err(anyhow::Error::msg)?;
    assert!(
        unknown.as_ref().is_err_and(|e| e.contains("unknown_key")),
        "an unknown key is refused by name: {:?}",
        unknown.map(|_| ())
    );
    let (_, script) =
        settle("external_url: \"javascript:alert(1)\"", "yaml").map_err(anyhow::Error::msg)?;
    assert!(
        script.as_ref().is_err_and(|e| e.contains("external URL")),
        "{:?}",
        script.map(|_| ())
    );
    let (_, good) = settle(
        "listen = \"127.0.0.1:9000\"\nflow_state_age = \"minutes=30\"",
        "toml",
    )
    .map_err(anyhow::Error::msg)?;
    let good = good.map_err(|e| anyhow::anyhow!("a good file resolves: {e}"))?;
    assert_eq!(good.listen, "127.0.0.1:9000");
    assert_eq!(good.flow_state_age, chrono::Duration::minutes(30));
    Ok(())
}

/// A seed with a piece of text put in at some place.
fn mangled() -> impl Strategy<Value = String> {
    (
        prop::sample::select(attack::seeds("settings")),
        any::<prop::sample::Index>(),
        ".{0,16}",
    )
        .prop_map(|(seed, at, piece)| {
            let mut at = at.index(seed.len() + 1);
            while !seed.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{piece}{}", &seed[..at], &seed[at..])
        })
}

proptest! {
    /// Arbitrary and mangled settings files, read as YAML and as TOML, give settings or an error
    /// naming the file; never a panic.
    #[test]
    fn settings_files_resolve_or_name_the_file(
        text in prop_oneof![".{0,200}", mangled(), "([a-z_]{1,16}: .{0,30}\n){1,4}"],
    ) {
        for ext in ["yaml", "toml"] {
            let _resolved = settle(&text, ext).map_err(TestCaseError::fail)?;
        }
    }

    /// Any value of any key resolves, or the error names the file (a value of the wrong type)
    /// or the key (a value of the right type that is not usable).
    #[test]
    fn every_key_resolves_or_names_itself(
        key in prop::sample::select(KEYS),
        value in prop_oneof![".{0,40}", "-?[0-9]{1,22}", "(days|hours|minutes|seconds)=-?[0-9.]{1,20}", "[0-9.:\\[\\]a-f/]{1,40}"],
        list in any::<bool>(),
    ) {
        let (name, words) = key;
        let quoted = serde_json::to_string(&value).unwrap_or_default();
        let text = if list {
            format!("{name}: [{quoted}]")
        } else {
            format!("{name}: {quoted}")
        };
        let (path, resolved) = settle(&text, "yaml").map_err(TestCaseError::fail)?;
        if let (Err(e), Some(words)) = (&resolved, words) {
            prop_assert!(
                e.starts_with(&path) || e.contains(words),
                "the error for {} names neither the file nor the key: {}", text, e
            );
        }
    }
}
