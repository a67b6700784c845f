//! Pacing for the SMTP server: a messages-per-second rate and a rolling hourly cap shared
//! by all concurrent senders. The backoff between attempts of one message is
//! [`crate::retry::Retry`]'s.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

/// Hands out send slots: at most `rate` per second, at most `per_hour` in any hour.
#[derive(Debug)]
pub(crate) struct Limiter {
    interval: Option<Duration>,
    per_hour: Option<u32>,
    state: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    /// The earliest instant the next slot may start (rate limit).
    next: Option<Instant>,
    /// Slots handed out within the last hour before the newest one (hourly cap).
    recent: VecDeque<Instant>,
}

impl Limiter {
    pub(crate) fn new(rate: Option<f64>, per_hour: Option<u32>) -> Self {
        let interval = rate.filter(|r| r.is_finite() && *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
        Limiter { interval, per_hour: per_hour.filter(|n| *n > 0), state: Mutex::new(Slots::default()) }
    }

    /// Waits for this caller's slot. Slots are reserved in call order, so concurrent
    /// callers are spread out instead of all waking at once.
    pub(crate) async fn wait(&self) {
        if self.interval.is_none() && self.per_hour.is_none() {
            return;
        }
        let now = Instant::now();
        let at = self.reserve(now);
        if at > now {
            let wait = at - now;
            if wait > Duration::from_secs(60) {
                tracing::info!(
                    "hourly cap of {} messages reached; waiting {} min for the next slot",
                    self.per_hour.unwrap_or_default(),
                    wait.as_secs().div_ceil(60)
                );
            }
            tokio::time::sleep_until(at.into()).await;
        }
    }

    /// Reserves the next free slot at or after `now` and returns its start.
    fn reserve(&self, now: Instant) -> Instant {
        // A poisoned lock only means another sender panicked mid-update; the slots are
        // still a sound (if slightly conservative) schedule.
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut at = s.next.map_or(now, |next| next.max(now));
        if let Some(cap) = self.per_hour {
            let cap = cap as usize;
            while s.recent.front().is_some_and(|t| *t + HOUR <= at) {
                s.recent.pop_front();
            }
            if s.recent.len() >= cap {
                // The window is full: wait until enough of it has aged out to leave room.
                at = at.max(s.recent[s.recent.len() - cap] + HOUR);
                while s.recent.front().is_some_and(|t| *t + HOUR <= at) {
                    s.recent.pop_front();
                }
            }
            s.recent.push_back(at);
        }
        if let Some(interval) = self.interval {
            s.next = Some(at + interval);
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_spaces_slots_evenly_from_the_first() {
        let l = Limiter::new(Some(4.0), None);
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..4).map(|_| l.reserve(t0) - t0).collect();
        assert_eq!(slots, [0, 250, 500, 750].map(Duration::from_millis));
        // After a quiet spell the next slot is immediate again.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(l.reserve(later), later);
    }

    #[test]
    fn hourly_cap_holds_the_next_message_until_the_oldest_ages_out() {
        let l = Limiter::new(None, Some(3));
        let t0 = Instant::now();
        let m = Duration::from_secs(60);
        assert_eq!(l.reserve(t0), t0);
        assert_eq!(l.reserve(t0 + m), t0 + m);
        assert_eq!(l.reserve(t0 + 2 * m), t0 + 2 * m);
        // Fourth within the hour: waits for the first to leave the window.
        assert_eq!(l.reserve(t0 + 3 * m), t0 + HOUR);
        assert_eq!(l.reserve(t0 + 3 * m), t0 + HOUR + m);
    }

    #[test]
    fn rate_and_hourly_cap_combine() {
        let l = Limiter::new(Some(1.0), Some(2));
        let t0 = Instant::now();
        assert_eq!(l.reserve(t0), t0);
        assert_eq!(l.reserve(t0), t0 + Duration::from_secs(1));
        assert_eq!(l.reserve(t0), t0 + HOUR);
    }
}
