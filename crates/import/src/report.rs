//! The import report: what was carried over, what was not and why, and what the operator must
//! do by hand. Printed after every import; the closing lines say how to apply the result.

use std::fmt;

/// One finding about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The kind of object, e.g. `OAuth2 provider`.
    pub kind: String,
    /// Its name or slug.
    pub name: String,
    /// What happened to it and, when something is left to do, what.
    pub note: String,
}

/// Counts of carried objects per kind, and findings.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `(kind, count)` of objects written to the document, in the order first counted.
    pub carried: Vec<(String, usize)>,
    /// Objects or settings that were left out.
    pub not_carried: Vec<Finding>,
    /// Things carried that need the operator's attention (a secret to fill in, a claim to check).
    pub to_check: Vec<Finding>,
}

impl Report {
    /// Counts one more carried object of `kind`.
    pub fn carried(&mut self, kind: &str) {
        match self.carried.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => self.carried.push((kind.to_owned(), 1)),
        }
    }

    /// Records that `name` (a `kind`) or one of its settings was left out, and why.
    pub fn left_out(&mut self, kind: &str, name: &str, note: impl Into<String>) {
        self.not_carried.push(Finding {
            kind: kind.into(),
            name: name.into(),
            note: note.into(),
        });
    }

    /// Records something carried that the operator must check or complete.
    pub fn check(&mut self, kind: &str, name: &str, note: impl Into<String>) {
        self.to_check.push(Finding {
            kind: kind.into(),
            name: name.into(),
            note: note.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Carried over:")?;
        for (kind, n) in &self.carried {
            writeln!(f, "  {n:>3} {kind}")?;
        }
        for (title, findings) in [
            ("Not carried over:", &self.not_carried),
            ("Check by hand:", &self.to_check),
        ] {
            if findings.is_empty() {
                continue;
            }
            writeln!(f, "{title}")?;
            for x in findings {
                writeln!(f, "  - {} `{}`: {}", x.kind, x.name, x.note)?;
            }
        }
        Ok(())
    }
}
