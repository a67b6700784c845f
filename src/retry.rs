//! The one retry policy for everything that talks to a server: HTTP fetches
//! ([`crate::source::http`]) and SMTP sends ([`crate::mail`]). Each caller decides what is
//! worth retrying; this decides how often and how long to wait.

use std::time::Duration;

/// How many attempts, and the pause between two of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The pause after the first failure; each later one doubles it.
    pub base: Duration,
    /// The longest pause, whatever `base` or a server's `Retry-After` says: a run should
    /// move on rather than sleep for hours.
    pub max: Duration,
}

impl Retry {
    /// Whether attempt `attempt` (from 1) may be followed by another.
    pub fn again_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }

    /// The pause before attempt `attempt + 1`: the server's `retry_after` when it gave
    /// one, else `base · 2^(attempt-1)`; both capped at `max`. The exponential pause has
    /// jitter in [½, 1] of itself: clients that failed together do not retry together,
    /// and no wait collapses to nothing.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max);
        }
        let full = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.max);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        let retry = Retry { max_attempts: 5, base, max: Duration::from_secs(60) };
        for attempt in 1..6 {
            let full = base * (1 << (attempt - 1));
            let d = retry.delay(attempt, None);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(retry.delay(40, None) <= retry.max);
        assert_eq!(Retry { base: Duration::ZERO, ..retry }.delay(3, None), Duration::ZERO);
    }

    #[test]
    fn a_servers_retry_after_wins_but_is_capped_too() {
        let retry = Retry { max_attempts: 3, base: Duration::from_secs(1), max: Duration::from_secs(30) };
        assert_eq!(retry.delay(1, Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(retry.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(30));
    }

    #[test]
    fn the_last_attempt_is_not_followed_by_another() {
        let retry = Retry { max_attempts: 3, base: Duration::ZERO, max: Duration::ZERO };
        assert!(retry.again_after(1) && retry.again_after(2) && !retry.again_after(3));
        assert!(!Retry { max_attempts: 0, ..retry }.again_after(1), "0 attempts means one");
    }
}
