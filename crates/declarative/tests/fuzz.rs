//! Property tests of the declarative file parser (issue #13, fuzzing): arbitrary text and
//! mangled real documents give a typed error or a document, never a panic. The seed corpus
//! `fuzz/corpus/declarative/` and the examples run first; `PROPTEST_CASES` bounds the rest.
// Test code: a failed unwrap is a failed test (helpers sit outside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use gatehouse_declarative::document::Located;
use gatehouse_declarative::parse;
use proptest::prelude::*;

fn parse_case(text: &str) {
    let located = Located {
        source: "fuzz.yaml".into(),
        text: text.to_owned(),
    };
    let env = BTreeMap::from([("PASSWORD".to_owned(), "s3cret".to_owned())]);
    let _ = parse(&located, &env);
}

fn seeds() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
    let text = std::fs::read_to_string(format!("{root}fuzz/corpus/declarative/seeds.txt")).unwrap();
    let mut seeds: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if let Ok(dir) = std::fs::read_dir(format!("{root}examples")) {
        for entry in dir.flatten() {
            if let Ok(t) = std::fs::read_to_string(entry.path()) {
                seeds.push(t);
            }
        }
    }
    seeds
}

#[test]
fn declarative_seeds_never_panic() {
    for seed in seeds() {
        parse_case(&seed);
    }
}

proptest! {
    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        parse_case(&text);
    }

    /// A real document cut or with a piece spliced in never panics the parser.
    #[test]
    fn mangled_documents_never_panic(which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), piece in "[ \n:{}\\[\\]&*!$-]{0,6}|.{0,10}") {
        let all = seeds();
        let doc = which.get(&all);
        let mut cut = at.index(doc.len() + 1);
        while !doc.is_char_boundary(cut) {
            cut -= 1;
        }
        parse_case(&format!("{}{piece}{}", &doc[..cut], &doc[cut..]));
        parse_case(&doc[..cut]);
    }
}
