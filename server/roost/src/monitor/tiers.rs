//! Tiers and quotas: which tier a tenant is on, its request rate (a `governor` token bucket per
//! tenant on each node), its API calls and push notifications per UTC day (every node's, from the
//! catalog's hour rows at each roll-up, plus this node's since), and the ceilings a tier puts on the
//! tenant's own limits.
//!
//! The daily counts reset at 00:00 UTC. A node learns the other nodes' counts at each roll-up
//! (`metrics_flush_ms`), so with N nodes a tenant may pass its daily quota by at most what the
//! other nodes served in one roll-up interval.

use super::{Limit, TenantMetrics};
use crate::config::TenantMaxima;
use governor::{clock::Clock as _, Quota, RateLimiter};
use roost_api::Tier;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

type Limiter = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, governor::clock::DefaultClock>;

/// A tier's name: 1 to 32 of a-z, 0-9, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A tenant's rate limiter and daily counts on this node.
#[derive(Default)]
pub struct QuotaState {
    /// The limiter, with the (rate, burst) it was built for.
    limiter: RwLock<Option<(u64, u64, Arc<Limiter>)>>,
    /// The UTC day the counts are of.
    pub(crate) day: AtomicI64,
    /// Every node's API calls of that day as the catalog had them at the last roll-up.
    pub(crate) calls_base: AtomicU64,
    /// This node's API calls since the last roll-up.
    pub(crate) calls_local: AtomicU64,
    /// The same for push notifications.
    pub(crate) push_base: AtomicU64,
    pub(crate) push_local: AtomicU64,
    /// The database's size in bytes, as last measured.
    pub(crate) database_bytes: AtomicU64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the rate: retry after this many seconds.
    Rate(u64),
    /// Over the day's API calls.
    DailyQuota,
}

impl QuotaState {
    /// Moves the counts to today when the day changed.
    fn roll_day(&self, today: i64) {
        if self.day.load(Relaxed) != today {
            self.day.store(today, Relaxed);
            self.calls_base.store(0, Relaxed);
            self.calls_local.store(0, Relaxed);
            self.push_base.store(0, Relaxed);
            self.push_local.store(0, Relaxed);
        }
    }

    /// Calls today, every node (as far as this node knows).
    pub fn calls_today(&self) -> u64 {
        self.roll_day(super::rollup::day_now());
        self.calls_base.load(Relaxed) + self.calls_local.load(Relaxed)
    }

    /// Push notifications today.
    pub fn push_today(&self) -> u64 {
        self.roll_day(super::rollup::day_now());
        self.push_base.load(Relaxed) + self.push_local.load(Relaxed)
    }
}

impl TenantMetrics {
    /// Admits a request under the tier, or says why not (and counts the hit). An admitted request
    /// counts against the day's API calls.
    pub fn admit(&self, tier: &Tier) -> Result<(), Refusal> {
        let q = &self.quota;
        q.roll_day(super::rollup::day_now());
        if q.calls_base.load(Relaxed) + q.calls_local.load(Relaxed) >= tier.api_calls_per_day {
            self.limit(Limit::DailyQuota);
            return Err(Refusal::DailyQuota);
        }
        let limiter = {
            let current = q.limiter.read().unwrap_or_else(|e| e.into_inner());
            match &*current {
                Some((rate, burst, l)) if *rate == tier.requests_per_second && *burst == tier.burst => l.clone(),
                _ => {
                    drop(current);
                    let l = Arc::new(RateLimiter::direct(quota(tier)));
                    *q.limiter.write().unwrap_or_else(|e| e.into_inner()) = Some((tier.requests_per_second, tier.burst, l.clone()));
                    l
                }
            }
        };
        if let Err(not_until) = limiter.check() {
            self.limit(Limit::Rate);
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            return Err(Refusal::Rate(wait.as_secs_f64().ceil().max(1.0) as u64));
        }
        q.calls_local.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Whether `n` more push notifications fit in today's quota (counting a hit when not).
    pub fn push_allowed(&self, tier: &Tier, n: u64) -> bool {
        let ok = self.quota.push_today().saturating_add(n) <= tier.push_per_day;
        if !ok {
            self.limit(Limit::PushQuota);
        }
        ok
    }

    /// Whether the database is over the tier's size (as last measured).
    pub fn over_database(&self, tier: &Tier) -> bool {
        self.quota.database_bytes.load(Relaxed) > tier.database_mb.saturating_mul(1024 * 1024)
    }
}

fn quota(tier: &Tier) -> Quota {
    let rate = NonZeroU32::new(u32::try_from(tier.requests_per_second).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(u32::try_from(tier.burst).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

/// The server's tiers.
#[derive(Debug, Clone)]
pub struct Tiers {
    /// By name.
    pub tiers: std::collections::BTreeMap<String, Tier>,
    /// The default tier's name.
    pub default: String,
}

impl Tiers {
    /// The tiers of a configuration.
    pub fn of_config(config: &crate::Config) -> Self {
        Self { tiers: config.tiers.clone(), default: config.default_tier.clone() }
    }

    /// The tier a tenant's record names (its stored tier, else the default; a stored tier no longer
    /// configured falls back to the default too).
    pub fn of<'a>(&'a self, stored: &'a str) -> (&'a str, &'a Tier) {
        if let Some(t) = self.tiers.get(stored) {
            return (stored, t);
        }
        let t = self.tiers.get(&self.default).expect("the default tier is configured (checked at load)");
        (&self.default, t)
    }

    /// The platform ceilings lowered by a tier.
    pub fn maxima(&self, platform: &TenantMaxima, stored: &str) -> TenantMaxima {
        let (_, t) = self.of(stored);
        let mut m = *platform;
        m.script_cpu_ms = m.script_cpu_ms.min(t.script_cpu_ms.max(10));
        m.script_memory_mb = m.script_memory_mb.min(t.script_memory_mb.max(8));
        m.script_max_concurrent = m.script_max_concurrent.min(t.script_max_concurrent.max(1));
        m.log_retention_days = m.log_retention_days.min(t.log_retention_days.max(1));
        m.log_max_mb = m.log_max_mb.min(t.log_mb.max(1));
        m
    }
}
