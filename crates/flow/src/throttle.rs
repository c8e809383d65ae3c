//! In-process rate limits on password and code attempts: per (identifier, IP) and per IP, with a
//! wait time instead of a lock-out (SPEC L2). The database-backed reputation score complements
//! this across replicas.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The limits of one process.
pub struct Throttle {
    per_identifier: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<String>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(5, 30)
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl Throttle {
    /// Allows `per_identifier` attempts a minute per (identifier, IP) and `per_ip` per IP.
    pub fn new(per_identifier: u32, per_ip: u32) -> Throttle {
        Throttle {
            per_identifier: RateLimiter::keyed(per_minute(per_identifier)),
            per_ip: RateLimiter::keyed(per_minute(per_ip)),
        }
    }

    /// Counts an attempt; `Err(wait)` when it must wait that long first.
    pub fn attempt(&self, identifier: &str, ip: &str) -> Result<(), Duration> {
        let clock = DefaultClock::default();
        self.per_ip
            .check_key(&ip.to_owned())
            .map_err(|n| n.wait_time_from(clock.now()))?;
        self.per_identifier
            .check_key(&format!("{}\u{0}{ip}", identifier.to_lowercase()))
            .map_err(|n| n.wait_time_from(clock.now()))
    }

    /// Forgets idle keys so memory stays bounded.
    pub fn prune(&self) {
        self.per_identifier.retain_recent();
        self.per_ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixth_attempt_waits_but_other_users_are_unaffected() {
        let t = Throttle::new(5, 100);
        for _ in 0..5 {
            assert!(t.attempt("alice", "10.0.0.1").is_ok());
        }
        assert!(t.attempt("alice", "10.0.0.1").is_err());
        assert!(t.attempt("bob", "10.0.0.1").is_ok());
        assert!(t.attempt("alice", "10.0.0.2").is_ok());
    }
}
