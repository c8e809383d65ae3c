//! Authentik's duration strings, used for token validities and session lengths.
//!
//! The format is a `;`-separated list of `unit=amount` pairs, e.g. `weeks=4` or
//! `hours=1;minutes=30`. Operators copy these from Authentik configs, so Gatehouse accepts the same
//! spelling in the API and in the declarative config, and keeps the text as written so that a plan
//! compares exactly what the operator typed.

use std::fmt;
use std::str::FromStr;

/// A validated duration together with the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    seconds: i64,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration: write e.g. `hours=1` or `weeks=4`")]
    Empty,
    /// A part was not `unit=amount`.
    #[error("`{0}` is not `unit=amount`: write e.g. `hours=1;minutes=30`")]
    Malformed(String),
    /// The unit is not one of the known ones.
    #[error("unknown unit `{0}`: use weeks, days, hours, minutes, seconds or microseconds")]
    UnknownUnit(String),
    /// The amount is not a non-negative number.
    #[error("`{0}` is not a non-negative number")]
    BadAmount(String),
    /// The total is zero or does not fit.
    #[error("duration must be longer than zero and shorter than 100 years")]
    OutOfRange,
}

impl Duration {
    /// Total length in whole seconds (sub-second parts are truncated).
    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    /// The text as the operator wrote it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A duration of whole seconds, written in the largest unit that divides it.
    pub fn from_seconds(seconds: i64) -> Self {
        let (unit, size) = [
            ("weeks", 604_800),
            ("days", 86_400),
            ("hours", 3_600),
            ("minutes", 60),
        ]
        .into_iter()
        .find(|(_, size)| seconds % size == 0 && seconds >= *size)
        .unwrap_or(("seconds", 1));
        Duration {
            text: format!("{unit}={}", seconds / size),
            seconds,
        }
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(DurationError::Empty);
        }
        let mut micros: f64 = 0.0;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (unit, amount) = part
                .split_once('=')
                .ok_or_else(|| DurationError::Malformed(part.to_owned()))?;
            let amount: f64 = amount
                .trim()
                .parse()
                .ok()
                .filter(|a: &f64| a.is_finite() && *a >= 0.0)
                .ok_or_else(|| DurationError::BadAmount(amount.trim().to_owned()))?;
            let unit_micros = match unit.trim() {
                "weeks" => 604_800e6,
                "days" => 86_400e6,
                "hours" => 3_600e6,
                "minutes" => 60e6,
                "seconds" => 1e6,
                "milliseconds" => 1e3,
                "microseconds" => 1.0,
                other => return Err(DurationError::UnknownUnit(other.to_owned())),
            };
            micros += amount * unit_micros;
        }
        let seconds = micros / 1e6;
        if !(1.0..100.0 * 365.0 * 86_400.0).contains(&seconds) {
            return Err(DurationError::OutOfRange);
        }
        Ok(Duration {
            text: text.to_owned(),
            seconds: seconds as i64,
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentik_spellings_parse_to_seconds() {
        let cases = [
            ("weeks=4", 2_419_200),
            ("hours=1;minutes=30", 5_400),
            ("days=30", 2_592_000),
            ("hours=168", 604_800),
            (" minutes=1.5 ", 90),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                text.parse::<Duration>().map(|d| d.seconds()),
                Ok(seconds),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_name_the_problem() {
        assert_eq!("".parse::<Duration>(), Err(DurationError::Empty));
        assert_eq!(
            "fortnights=2".parse::<Duration>(),
            Err(DurationError::UnknownUnit("fortnights".into()))
        );
        assert_eq!(
            "hours".parse::<Duration>(),
            Err(DurationError::Malformed("hours".into()))
        );
        assert_eq!(
            "hours=-1".parse::<Duration>(),
            Err(DurationError::BadAmount("-1".into()))
        );
        assert_eq!(
            "seconds=0".parse::<Duration>(),
            Err(DurationError::OutOfRange)
        );
        assert_eq!(
            "weeks=1e9".parse::<Duration>(),
            Err(DurationError::OutOfRange)
        );
    }

    #[test]
    fn whole_seconds_are_written_in_the_largest_unit() {
        assert_eq!(Duration::from_seconds(2_419_200).as_str(), "weeks=4");
        assert_eq!(Duration::from_seconds(7_200).as_str(), "hours=2");
        assert_eq!(Duration::from_seconds(61).as_str(), "seconds=61");
    }
}
