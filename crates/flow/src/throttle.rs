//! In-process limits on failed password and code attempts, with back-off and never a lock-out
//! (SPEC L2, ASVS 2.2.1). Only failures count: a user who signs in correctly any number of
//! times is never slowed down.
//!
//! Two scopes, checked before the secret is verified and charged only when it was wrong:
//! - per **account**, counting failures from every address, so many addresses guessing one
//!   password or TOTP code are slowed down together: after [`ACCOUNT`]'s free failures each
//!   further one doubles the wait (1 s, 2 s, 4 s, … up to 5 minutes), like Kanidm's soft lock;
//!   the account stays usable as soon as the wait is over and the count drains with time.
//! - per **client address** (the one `gatehouse-core::client_address` resolved behind trusted
//!   proxies), so one address spraying many accounts is slowed down without touching anyone
//!   else's logins.
//!
//! The database-backed reputation score complements this across replicas.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How one scope forgives and punishes failures.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures allowed before any wait.
    pub free: u32,
    /// One failure is forgotten per this much time.
    pub drain: Duration,
    /// The wait after the first failure over `free`; each further one doubles it.
    pub first_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
}

/// Per account: five free failures, one forgiven a minute, then 1 s doubling up to 5 minutes.
pub const ACCOUNT: Limits = Limits {
    free: 5,
    drain: Duration::from_secs(60),
    first_wait: Duration::from_secs(1),
    max_wait: Duration::from_secs(300),
};

/// Per client address: twenty free failures, one forgiven every three seconds, then 1 s
/// doubling up to 5 minutes.
pub const ADDRESS: Limits = Limits {
    free: 20,
    drain: Duration::from_secs(3),
    first_wait: Duration::from_secs(1),
    max_wait: Duration::from_secs(300),
};

/// Failures of one key.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures not yet forgiven, as of `last`.
    failures: u32,
    /// When the last failure happened.
    last: Instant,
}

/// Failure records of one scope. A mutex over a map: each call holds it for a lookup only,
/// never across an await.
#[derive(Debug)]
struct Scope {
    limits: Limits,
    records: Mutex<HashMap<String, Record>>,
}

impl Scope {
    fn new(limits: Limits) -> Scope {
        Scope {
            limits,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// The record's failures left after draining until `now`.
    fn drained(&self, record: &Record, now: Instant) -> u32 {
        let drain = self.limits.drain.as_millis().max(1);
        let forgiven = now.saturating_duration_since(record.last).as_millis() / drain;
        record
            .failures
            .saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX))
    }

    /// How long `key` must still wait at `now`.
    fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let record = records.get(key)?;
        let over = record
            .failures
            .checked_sub(self.limits.free)?
            .checked_sub(1)?;
        let wait = self
            .limits
            .first_wait
            .saturating_mul(2u32.saturating_pow(over.min(31)))
            .min(self.limits.max_wait);
        let until = record.last + wait;
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: &str, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let failures = records
            .get(key)
            .map(|r| self.drained(r, now))
            .unwrap_or(0)
            .saturating_add(1);
        records.insert(
            key.to_owned(),
            Record {
                failures,
                last: now,
            },
        );
    }

    fn prune(&self, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.retain(|_, r| self.drained(r, now) > 0);
    }
}

/// The limits of one process.
#[derive(Debug)]
pub struct Throttle {
    per_account: Scope,
    per_address: Scope,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(ACCOUNT, ADDRESS)
    }
}

/// What an attempt is charged to: the account (by user id when it exists, else by the name
/// typed, so guesses at unknown names are limited the same way) and the client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    account: String,
    address: String,
}

impl Attempt {
    /// An attempt on the account of `user` (or, when no such user exists, the name
    /// `identifier`) from `address`.
    pub fn new(user: Option<i64>, identifier: &str, address: &str) -> Attempt {
        let account = match user {
            Some(id) => format!("user:{id}"),
            None => format!("name:{}", identifier.to_lowercase()),
        };
        Attempt {
            account,
            address: address.to_owned(),
        }
    }
}

impl Throttle {
    /// A throttle with these limits per account and per client address.
    pub fn new(per_account: Limits, per_address: Limits) -> Throttle {
        Throttle {
            per_account: Scope::new(per_account),
            per_address: Scope::new(per_address),
        }
    }

    /// `Err(wait)` when the attempt must wait that long before its secret is even checked.
    pub fn check(&self, attempt: &Attempt) -> Result<(), Duration> {
        self.check_at(attempt, Instant::now())
    }

    /// Charges a failed attempt to its account and address.
    pub fn failed(&self, attempt: &Attempt) {
        self.failed_at(attempt, Instant::now())
    }

    fn check_at(&self, attempt: &Attempt, now: Instant) -> Result<(), Duration> {
        let waits = [
            self.per_address.wait(&attempt.address, now),
            self.per_account.wait(&attempt.account, now),
        ];
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    fn failed_at(&self, attempt: &Attempt, now: Instant) {
        self.per_address.fail(&attempt.address, now);
        self.per_account.fail(&attempt.account, now);
    }

    /// Forgets keys whose failures have drained, so memory stays bounded.
    pub fn prune(&self) {
        let now = Instant::now();
        self.per_account.prune(now);
        self.per_address.prune(now);
    }
}

/// The message shown for a wait: when to try again, never "locked".
pub fn retry_message(wait: Duration) -> String {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    format!("Too many attempts. Try again in {seconds} seconds.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(user: i64, address: &str) -> Attempt {
        Attempt::new(Some(user), "", address)
    }

    #[test]
    fn successes_never_count() {
        let t = Throttle::default();
        for _ in 0..100 {
            assert!(t.check(&at(1, "192.0.2.1")).is_ok());
        }
    }

    #[test]
    fn failures_from_many_addresses_back_the_account_off_exponentially_then_let_it_in() {
        let t = Throttle::default();
        let start = Instant::now();
        for i in 0..ACCOUNT.free {
            t.failed_at(&at(1, &format!("192.0.2.{i}")), start);
        }
        assert!(t.check_at(&at(1, "198.51.100.1"), start).is_ok());
        t.failed_at(&at(1, "198.51.100.2"), start);
        assert_eq!(
            t.check_at(&at(1, "198.51.100.3"), start),
            Err(Duration::from_secs(1))
        );
        t.failed_at(&at(1, "198.51.100.4"), start);
        assert_eq!(
            t.check_at(&at(1, "198.51.100.3"), start),
            Err(Duration::from_secs(2))
        );
        // Never a lock: after the wait the account is usable again.
        assert!(t
            .check_at(&at(1, "198.51.100.3"), start + Duration::from_secs(2))
            .is_ok());
        // Other accounts are untouched.
        assert!(t.check_at(&at(2, "198.51.100.3"), start).is_ok());
    }

    #[test]
    fn one_address_spraying_accounts_is_slowed_without_touching_other_addresses() {
        let t = Throttle::default();
        let now = Instant::now();
        for user in 0..=i64::from(ADDRESS.free) {
            t.failed_at(&at(user, "203.0.113.66"), now);
        }
        assert!(t.check_at(&at(999, "203.0.113.66"), now).is_err());
        assert!(t.check_at(&at(999, "203.0.113.67"), now).is_ok());
    }

    #[test]
    fn the_wait_is_capped_and_failures_drain() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..60 {
            t.failed_at(&at(1, "192.0.2.1"), now);
        }
        assert_eq!(t.check_at(&at(1, "192.0.2.9"), now), Err(ACCOUNT.max_wait));
        let later = now + ACCOUNT.drain * 60;
        t.per_account.prune(later);
        t.per_address.prune(later);
        assert!(t.check_at(&at(1, "192.0.2.1"), later).is_ok());
        assert_eq!(
            retry_message(Duration::from_millis(1500)),
            "Too many attempts. Try again in 2 seconds."
        );
    }
}
