//! Who may call what: the admin token and the tenants' API keys (matched as SHA-256 digests in
//! constant time, whatever their length), and each tenant's quota: a governor token bucket and
//! a cap on requests in flight, checked before a request's body is read or a queue slot taken.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::app::settings::{Secret, Settings, TenantSettings};

type KeyDigest = [u8; 32];

fn digest(secret: &[u8]) -> KeyDigest {
    Sha256::digest(secret).into()
}

/// Whose key a bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Admin,
    /// The tenant at this index of `[[tenants]]`.
    Tenant(usize),
    Nobody,
}

/// Why a tenant's request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// Over `requests_per_second` / `burst`.
    Rate,
    /// At `max_inflight`.
    Inflight,
}

impl ThrottleReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::Rate => "rate",
            ThrottleReason::Inflight => "inflight",
        }
    }
}

/// A refused request: which tenant, why, and when to try again.
#[derive(Debug, Clone)]
pub struct Throttled {
    pub tenant: Arc<str>,
    pub reason: ThrottleReason,
    /// The quota that refused it, in words.
    pub quota: String,
    pub retry_after: Duration,
}

/// One configured tenant and its quota state.
struct Tenant {
    name: Arc<str>,
    key: KeyDigest,
    rate: Option<(DefaultDirectRateLimiter, String)>,
    max_inflight: Option<usize>,
    inflight: Arc<AtomicUsize>,
    inflight_gauge: IntGauge,
    throttled_rate: IntCounter,
    throttled_inflight: IntCounter,
}

/// An admitted request's hold on its tenant's in-flight count, released when dropped.
pub struct Admission {
    pub tenant: Arc<str>,
    inflight: Arc<AtomicUsize>,
    gauge: IntGauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// The keys and quotas of one server, built once from the settings.
pub struct Access {
    admin: Option<KeyDigest>,
    tenants: Vec<Tenant>,
    /// Failed credentials, counted; sources guessing the admin token, slowed.
    pub guesses: crate::edge::guesses::Guesses,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("admin", &self.admin.is_some())
            .field(
                "tenants",
                &self.tenants.iter().map(|t| &*t.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn rate_limiter(rps: f64, burst: u32) -> Result<DefaultDirectRateLimiter, String> {
    let period = Duration::from_secs_f64(1.0 / rps);
    let burst = NonZeroU32::new(burst).ok_or("burst must be at least 1")?;
    let quota = Quota::with_period(period)
        .ok_or("requests_per_second is too high")?
        .allow_burst(burst);
    Ok(RateLimiter::direct(quota))
}

impl Access {
    /// Resolves every key (environment, files) and registers `tenant_inflight` and
    /// `tenant_throttled_total`, whose series exist at 0 for each tenant from the start.
    pub fn from_settings(settings: &Settings, registry: &Registry) -> Result<Self, String> {
        let inflight = IntGaugeVec::new(
            Opts::new(
                "tenant_inflight",
                "Requests of each tenant being served now",
            ),
            &["tenant"],
        )
        .map_err(|e| e.to_string())?;
        let throttled = IntCounterVec::new(
            Opts::new(
                "tenant_throttled_total",
                "Requests refused with 429 rate_limited, by tenant and quota (rate, inflight)",
            ),
            &["tenant", "reason"],
        )
        .map_err(|e| e.to_string())?;
        registry
            .register(Box::new(inflight.clone()))
            .and_then(|()| registry.register(Box::new(throttled.clone())))
            .map_err(|e| e.to_string())?;
        let tenants = settings
            .tenants
            .iter()
            .map(|t| Self::tenant(t, &inflight, &throttled))
            .collect::<Result<_, _>>()?;
        let guesses = crate::edge::guesses::Guesses::register(
            registry,
            settings.admin.wrong_tokens_before_penalty,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            guesses,
            admin: settings
                .admin
                .token
                .as_ref()
                .map(|t| digest(t.expose().as_bytes())),
            tenants,
        })
    }

    fn tenant(
        settings: &TenantSettings,
        inflight: &IntGaugeVec,
        throttled: &IntCounterVec,
    ) -> Result<Tenant, String> {
        let key: Secret = settings
            .key()
            .map_err(|e| format!("tenant '{}': {e}", settings.name))?;
        let rate = settings
            .rate()
            .map(|(rps, burst)| {
                rate_limiter(rps, burst)
                    .map(|limiter| (limiter, format!("{rps} requests/s, burst {burst}")))
            })
            .transpose()
            .map_err(|e| format!("tenant '{}': {e}", settings.name))?;
        let name = settings.name.as_str();
        Ok(Tenant {
            name: Arc::from(name),
            key: digest(key.expose().as_bytes()),
            rate,
            max_inflight: settings.max_inflight,
            inflight: Arc::new(AtomicUsize::new(0)),
            inflight_gauge: inflight.with_label_values(&[name]),
            throttled_rate: throttled.with_label_values(&[name, ThrottleReason::Rate.as_str()]),
            throttled_inflight: throttled
                .with_label_values(&[name, ThrottleReason::Inflight.as_str()]),
        })
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether inference needs a tenant key.
    pub fn tenants_enabled(&self) -> bool {
        !self.tenants.is_empty()
    }

    /// Whose key `given` is. Every configured key is compared, without an early exit, as a
    /// digest of equal length: the time taken says nothing about which key matched or how long
    /// any key is.
    pub fn holder(&self, given: &str) -> Holder {
        let given = digest(given.as_bytes());
        // 0: nobody, 1: admin, 2 + i: tenant i.
        let mut found = 0u64;
        if let Some(admin) = &self.admin {
            found.conditional_assign(&1, given.ct_eq(admin));
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            found.conditional_assign(&(i as u64 + 2), given.ct_eq(&tenant.key));
        }
        match found {
            0 => Holder::Nobody,
            1 => Holder::Admin,
            n => Holder::Tenant((n - 2) as usize),
        }
    }

    /// Admits one request of tenant `index`, or says which quota refuses it. The in-flight slot
    /// is taken first and given back if the rate refuses, so a refused request costs the tenant
    /// no token it did not use.
    pub fn admit(&self, index: usize) -> Result<Admission, Throttled> {
        let Some(tenant) = self.tenants.get(index) else {
            return Err(Throttled {
                tenant: Arc::from("unknown"),
                reason: ThrottleReason::Inflight,
                quota: "no such tenant".into(),
                retry_after: Duration::from_secs(1),
            });
        };
        let max = tenant.max_inflight.unwrap_or(usize::MAX);
        let taken = tenant
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_err() {
            tenant.throttled_inflight.inc();
            return Err(Throttled {
                tenant: tenant.name.clone(),
                reason: ThrottleReason::Inflight,
                quota: format!("max_inflight {max}"),
                retry_after: Duration::from_secs(1),
            });
        }
        let admission = Admission {
            tenant: tenant.name.clone(),
            inflight: tenant.inflight.clone(),
            gauge: tenant.inflight_gauge.clone(),
        };
        tenant.inflight_gauge.inc();
        if let Some((limiter, quota)) = &tenant.rate {
            if let Err(not_until) = limiter.check() {
                drop(admission);
                tenant.throttled_rate.inc();
                return Err(Throttled {
                    tenant: tenant.name.clone(),
                    reason: ThrottleReason::Rate,
                    quota: quota.clone(),
                    retry_after: not_until.wait_time_from(limiter.clock().now()),
                });
            }
        }
        Ok(admission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(tenants: &str) -> Access {
        let settings = Settings::from_toml(&format!(
            "models = []\n[admin]\ntoken = \"admin-token-0123456789\"\n{tenants}"
        ))
        .expect("valid settings");
        Access::from_settings(&settings, &Registry::new()).expect("access")
    }

    #[test]
    fn keys_identify_their_holder_only_when_whole() {
        let access = access(
            "[[tenants]]\nname = \"a\"\napi_key = \"tenant-a-key-0123456789\"\n\
             [[tenants]]\nname = \"b\"\napi_key = \"tenant-b-key-0123456789\"",
        );
        assert_eq!(access.holder("admin-token-0123456789"), Holder::Admin);
        assert_eq!(access.holder("tenant-a-key-0123456789"), Holder::Tenant(0));
        assert_eq!(access.holder("tenant-b-key-0123456789"), Holder::Tenant(1));
        for wrong in [
            "",
            "tenant-a-key-012345678",
            "tenant-a-key-01234567890",
            "TENANT-A-KEY-0123456789",
        ] {
            assert_eq!(access.holder(wrong), Holder::Nobody, "{wrong:?}");
        }
    }

    #[test]
    fn the_bucket_refuses_past_its_burst_and_says_when_to_retry() {
        let access = access(
            "[[tenants]]\nname = \"a\"\napi_key = \"tenant-a-key-0123456789\"\n\
             requests_per_second = 0.5\nburst = 2",
        );
        let first = access.admit(0).expect("burst 1");
        let second = access.admit(0).expect("burst 2");
        let refused = access.admit(0).err().expect("third is over the burst");
        assert_eq!(refused.reason, ThrottleReason::Rate);
        // One token every 2 s: the next one is 1–2 s away.
        assert!(
            refused.retry_after > Duration::from_millis(1000)
                && refused.retry_after <= Duration::from_secs(2),
            "{:?}",
            refused.retry_after
        );
        drop((first, second));
    }

    #[test]
    fn the_inflight_cap_counts_admissions_until_they_drop() {
        let access = access(
            "[[tenants]]\nname = \"a\"\napi_key = \"tenant-a-key-0123456789\"\nmax_inflight = 2",
        );
        let one = access.admit(0).expect("1 of 2");
        let two = access.admit(0).expect("2 of 2");
        let refused = access.admit(0).err().expect("3 of 2");
        assert_eq!(refused.reason, ThrottleReason::Inflight);
        drop(one);
        let three = access.admit(0).expect("a slot came back");
        drop((two, three));
        assert_eq!(access.tenants[0].inflight.load(Ordering::Acquire), 0);
        assert_eq!(access.tenants[0].inflight_gauge.get(), 0);
        assert_eq!(access.tenants[0].throttled_inflight.get(), 1);
    }
}
