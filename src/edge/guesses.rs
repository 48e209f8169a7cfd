//! Failed credentials, counted and slowed: every wrong or missing admin token and tenant key is
//! counted in `auth_failures_total{credential}`; a source address that sent
//! `admin.wrong_tokens_before_penalty` ([`FREE_FAILURES`] by default) wrong admin tokens within
//! [`WINDOW`] is refused (429 `rate_limited`, its
//! token not even compared) for a penalty that doubles with each further failure, from one
//! second up to [`MAX_PENALTY`] (`auth_penalized_total`). A success from the source clears it.
//! The table is bounded ([`MAX_SOURCES`]): when full, sources whose window has passed are
//! forgotten first, then the quietest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Wrong admin tokens a source may send within [`WINDOW`] before it is slowed, by default.
pub const FREE_FAILURES: u32 = 5;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The longest penalty.
pub const MAX_PENALTY: Duration = Duration::from_secs(60);
/// Sources remembered at once.
pub const MAX_SOURCES: usize = 4096;

/// Which credential failed (the `credential` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Admin,
    TenantKey,
}

impl Credential {
    fn as_str(self) -> &'static str {
        match self {
            Credential::Admin => "admin_token",
            Credential::TenantKey => "tenant_key",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
    last: Instant,
}

/// The failure counts and penalties of one server.
pub struct Guesses {
    free_failures: u32,
    sources: Mutex<HashMap<IpAddr, Strikes>>,
    failures: IntCounterVec,
    penalized: IntCounter,
}

impl std::fmt::Debug for Guesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guesses").finish_non_exhaustive()
    }
}

impl Guesses {
    /// Registers `auth_failures_total` (both credentials at 0) and `auth_penalized_total`;
    /// `free_failures` wrong admin tokens a source may send before its penalty.
    pub fn register(registry: &Registry, free_failures: u32) -> prometheus::Result<Self> {
        let failures = IntCounterVec::new(
            Opts::new(
                "auth_failures_total",
                "Requests refused for a wrong or missing credential (admin_token, tenant_key)",
            ),
            &["credential"],
        )?;
        let penalized = IntCounter::new(
            "auth_penalized_total",
            "Admin requests refused unchecked because their source sent too many wrong tokens",
        )?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(penalized.clone()))?;
        for credential in [Credential::Admin, Credential::TenantKey] {
            failures.with_label_values(&[credential.as_str()]);
        }
        Ok(Self {
            free_failures: free_failures.max(1),
            sources: Mutex::default(),
            failures,
            penalized,
        })
    }

    /// An unregistered instance (tests, tools).
    pub fn unregistered() -> Self {
        Self::register(&Registry::new(), FREE_FAILURES)
            .expect("a fresh registry takes the series. This is a bug.")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Strikes>> {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` while `source` is serving a penalty for wrong admin tokens.
    pub fn admin_allowed(&self, source: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Some(source) = source else {
            return Ok(());
        };
        match self.lock().get(&source).and_then(|s| s.blocked_until) {
            Some(until) if until > now => {
                self.penalized.inc();
                Err(until - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure; for admin tokens, strikes `source` (and maybe starts its penalty).
    pub fn failed(&self, credential: Credential, source: Option<IpAddr>, now: Instant) {
        self.failures
            .with_label_values(&[credential.as_str()])
            .inc();
        let (Credential::Admin, Some(source)) = (credential, source) else {
            return;
        };
        let mut sources = self.lock();
        if !sources.contains_key(&source) && sources.len() >= MAX_SOURCES {
            make_room(&mut sources, now);
        }
        let strikes = sources.entry(source).or_insert(Strikes {
            failures: 0,
            window_start: now,
            blocked_until: None,
            last: now,
        });
        if now.duration_since(strikes.window_start) > WINDOW && strikes.blocked_until.is_none() {
            strikes.failures = 0;
            strikes.window_start = now;
        }
        strikes.failures = strikes.failures.saturating_add(1);
        strikes.last = now;
        if strikes.failures >= self.free_failures {
            let doublings = (strikes.failures - self.free_failures).min(16);
            let penalty = Duration::from_secs(1u64 << doublings).min(MAX_PENALTY);
            strikes.blocked_until = Some(now + penalty);
        }
    }

    /// A right admin token from `source`: its strikes are forgotten.
    pub fn succeeded(&self, source: Option<IpAddr>) {
        if let Some(source) = source {
            self.lock().remove(&source);
        }
    }

    /// Sources remembered now.
    pub fn remembered(&self) -> usize {
        self.lock().len()
    }
}

/// Forgets sources whose window and penalty passed; if none did, the one heard from least
/// recently.
fn make_room(sources: &mut HashMap<IpAddr, Strikes>, now: Instant) {
    sources.retain(|_, s| {
        now.duration_since(s.window_start) <= WINDOW || s.blocked_until.is_some_and(|u| u > now)
    });
    if sources.len() >= MAX_SOURCES {
        if let Some(oldest) = sources
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(ip, _)| *ip)
        {
            sources.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_slowed_after_its_free_failures_and_cleared_by_a_success() {
        let guesses = Guesses::unregistered();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            guesses.failed(Credential::Admin, Some(a), t0);
            assert_eq!(guesses.admin_allowed(Some(a), t0), Ok(()));
        }
        guesses.failed(Credential::Admin, Some(a), t0);
        assert_eq!(
            guesses.admin_allowed(Some(a), t0),
            Err(Duration::from_secs(1))
        );
        assert_eq!(
            guesses.admin_allowed(Some(b), t0),
            Ok(()),
            "another source is not slowed"
        );
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(guesses.admin_allowed(Some(a), t1), Ok(()));
        guesses.failed(Credential::Admin, Some(a), t1);
        assert_eq!(
            guesses.admin_allowed(Some(a), t1),
            Err(Duration::from_secs(2)),
            "doubles"
        );
        for _ in 0..20 {
            guesses.failed(Credential::Admin, Some(a), t1);
        }
        assert_eq!(guesses.admin_allowed(Some(a), t1), Err(MAX_PENALTY));
        guesses.succeeded(Some(a));
        assert_eq!(guesses.admin_allowed(Some(a), t1), Ok(()));
        assert_eq!(guesses.penalized.get(), 3);
        assert_eq!(
            guesses.failures.with_label_values(&["admin_token"]).get(),
            26
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let guesses = Guesses::unregistered();
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 1000) {
            let ip = IpAddr::from(i.to_be_bytes());
            guesses.failed(
                Credential::Admin,
                Some(ip),
                t0 + Duration::from_micros(i as u64),
            );
        }
        assert_eq!(guesses.remembered(), MAX_SOURCES);
        guesses.failed(Credential::TenantKey, None, t0);
        assert_eq!(guesses.failures.with_label_values(&["tenant_key"]).get(), 1);
    }
}
