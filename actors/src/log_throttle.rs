//! Rate-limited warnings: a warning that can repeat without bound (a version that keeps failing
//! and restarting) is logged a few times, then at most once per interval, each time with the
//! number held back since the last one. A governor token bucket decides.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub struct LogThrottle {
    limiter: DefaultDirectRateLimiter,
    held_back: AtomicU64,
}

impl std::fmt::Debug for LogThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogThrottle")
            .field("held_back", &self.held_back.load(Ordering::Relaxed))
            .finish()
    }
}

impl LogThrottle {
    /// `burst` lines at once, then one per `interval`.
    pub fn new(burst: u32, interval: Duration) -> Self {
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::direct(quota),
            held_back: AtomicU64::new(0),
        }
    }

    /// The warnings of one version: 3 at once, then one per 10 s.
    pub fn per_version() -> Self {
        Self::new(3, Duration::from_secs(10))
    }

    /// `Some(n)`: log this one, noting `n` held back since the last; `None`: hold it back.
    pub fn admit(&self) -> Option<u64> {
        match self.limiter.check() {
            Ok(()) => Some(self.held_back.swap(0, Ordering::AcqRel)),
            Err(_) => {
                self.held_back.fetch_add(1, Ordering::AcqRel);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_with_the_count_held_back() {
        let throttle = LogThrottle::new(2, Duration::from_millis(200));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..100 {
            assert_eq!(throttle.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.admit(), Some(100));
        assert_eq!(throttle.admit(), None);
    }
}
