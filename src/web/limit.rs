//! A small fixed-window rate limiter kept in memory: per client address and per
//! subscriber address, so a script cannot flood the subscribe form or anyone's inbox.
//! Counts are lost on restart, which only ever errs on the side of letting a reader in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max` events per key in any window of `per`.
#[derive(Debug)]
pub struct Limiter {
    max: u32,
    per: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

impl Limiter {
    pub fn new(max: u32, per: Duration) -> Self {
        Limiter { max, per, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one event for `key`; false when it is over the limit (and then not counted).
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.per);
        }
        let entry = windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.per {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_for_the_next_window_and_others_are_not_affected() {
        let limiter = Limiter::new(2, Duration::from_secs(60));
        let t = Instant::now();
        assert!(limiter.allow("a", t));
        assert!(limiter.allow("a", t));
        assert!(!limiter.allow("a", t + Duration::from_secs(59)));
        assert!(limiter.allow("b", t));
        assert!(limiter.allow("a", t + Duration::from_secs(60)));
    }
}
