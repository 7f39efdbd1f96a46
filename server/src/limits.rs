//! Per-caller request rates.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A token bucket per caller name: `per_second` sustained, `burst` at once.
pub struct CallerRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    per_second: u32,
}

impl CallerRateLimiter {
    /// A limiter allowing each caller `per_second` requests per second, `burst` at once
    /// (both at least 1).
    #[must_use]
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            per_second: per_second.get(),
        }
    }

    /// Whether `caller` may make one more request now (and counts it).
    #[must_use]
    pub fn check(&self, caller: &str) -> bool {
        self.limiter.check_key(&caller.to_owned()).is_ok()
    }

    /// The sustained rate.
    #[must_use]
    pub fn per_second(&self) -> u32 {
        self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_burst_then_waits_and_others_are_not_affected() {
        let limiter = CallerRateLimiter::new(1, 3);
        assert!((0..3).all(|_| limiter.check("alice")));
        assert!(!limiter.check("alice"));
        assert!(limiter.check("bob"));
    }
}
