//! `Queues`: what the job service counts in memory, under one mutex held across each store
//! transaction so it always equals the store: the PENDING seqs of each version in submit order,
//! PENDING jobs per tenant (for `jobs.max_pending_per_tenant`), the runs in flight, and the bytes
//! the store's file holds. Rebuilt from the store at open and after each re-open.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::maintenance::Recovered;
use super::store::{reserve_cost, Changed};
use crate::messages::VersionKey;

#[derive(Default)]
pub(crate) struct Queues {
    /// PENDING seqs of each version, in submit order.
    pub pending: HashMap<VersionKey, VecDeque<u64>>,
    /// The tenant of each PENDING seq, and how many each tenant has.
    tenant_of: HashMap<u64, Arc<str>>,
    per_tenant: HashMap<Arc<str>, usize>,
    /// Runs in flight per version.
    pub running: HashMap<VersionKey, usize>,
    /// Seqs of the runs in flight: a re-open leaves them RUNNING (they settle as usual).
    pub in_flight: HashSet<u64>,
    /// redb's allocation when last measured, plus each change's cost since.
    pub stored_bytes: u64,
    /// Held for the results of the live jobs.
    pub reserved_bytes: u64,
}

impl Queues {
    /// The PENDING jobs a store (re-)opened with, and what it holds; runs in flight are kept.
    pub fn rebuild(&mut self, recovered: &Recovered) {
        self.pending.clear();
        self.tenant_of.clear();
        self.per_tenant.clear();
        for record in &recovered.pending {
            self.push(record.key(), record.id.seq, &record.tenant);
        }
        self.stored_bytes = recovered.allocated_bytes;
        self.reserved_bytes = recovered.reserved_bytes;
    }

    pub fn pending_total(&self) -> usize {
        self.tenant_of.len()
    }

    pub fn tenant_pending(&self, tenant: &str) -> usize {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }

    pub fn push(&mut self, key: VersionKey, seq: u64, tenant: &str) {
        let queue = self.pending.entry(key).or_default();
        // Submit order, also for a job put back after a failed try.
        let at = queue.partition_point(|&queued| queued < seq);
        if queue.get(at) == Some(&seq) {
            return;
        }
        queue.insert(at, seq);
        let tenant: Arc<str> = match self.per_tenant.get_key_value(tenant) {
            Some((name, _)) => name.clone(),
            None => Arc::from(tenant),
        };
        *self.per_tenant.entry(tenant.clone()).or_default() += 1;
        self.tenant_of.insert(seq, tenant);
    }

    pub fn remove(&mut self, key: &VersionKey, seq: u64) {
        if let Some(queue) = self.pending.get_mut(key) {
            queue.retain(|&queued| queued != seq);
            if queue.is_empty() {
                self.pending.remove(key);
            }
        }
        self.forget_tenant(seq);
    }

    /// Every PENDING seq of `key`, taken out of the queues.
    pub fn drain(&mut self, key: &VersionKey) -> Vec<u64> {
        let seqs: Vec<u64> = self.pending.remove(key).map(Vec::from).unwrap_or_default();
        for &seq in &seqs {
            self.forget_tenant(seq);
        }
        seqs
    }

    fn forget_tenant(&mut self, seq: u64) {
        let Some(tenant) = self.tenant_of.remove(&seq) else {
            return;
        };
        if let Some(count) = self.per_tenant.get_mut(&tenant) {
            *count -= 1;
            if *count == 0 {
                self.per_tenant.remove(&tenant);
            }
        }
    }

    pub fn depths(&self) -> HashMap<VersionKey, usize> {
        self.pending
            .iter()
            .map(|(key, queue)| (key.clone(), queue.len()))
            .collect()
    }

    /// A changed job's bytes; a job that ended gives its result's reserve back.
    pub fn account(&mut self, changed: &Changed) {
        self.stored_bytes = self
            .stored_bytes
            .saturating_sub(changed.bytes_before)
            .saturating_add(changed.record.stored_bytes);
        if changed.record.status.is_final() {
            self.reserved_bytes = self
                .reserved_bytes
                .saturating_sub(reserve_cost(changed.record.result_reserve));
        }
    }

    pub fn start_run(&mut self, key: &VersionKey, seq: u64) {
        *self.running.entry(key.clone()).or_default() += 1;
        self.in_flight.insert(seq);
    }

    pub fn end_run(&mut self, key: &VersionKey, seq: u64) {
        if let Some(running) = self.running.get_mut(key) {
            *running = running.saturating_sub(1);
        }
        self.in_flight.remove(&seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_counted_as_jobs_come_and_go() {
        let mut queues = Queues::default();
        let a = VersionKey::new("m".to_string(), "1".to_string());
        let b = VersionKey::new("n".to_string(), "1".to_string());
        queues.push(a.clone(), 3, "t");
        queues.push(a.clone(), 1, "t");
        queues.push(b.clone(), 2, "u");
        // A job pushed twice (put back after a try) counts once.
        queues.push(a.clone(), 1, "t");
        assert_eq!(queues.pending[&a], [1, 3]);
        assert_eq!(
            (
                queues.pending_total(),
                queues.tenant_pending("t"),
                queues.tenant_pending("u")
            ),
            (3, 2, 1)
        );
        queues.remove(&a, 1);
        assert_eq!(queues.tenant_pending("t"), 1);
        assert_eq!(queues.drain(&a), [3]);
        assert_eq!(queues.tenant_pending("t"), 0);
        queues.remove(&b, 2);
        assert_eq!(queues.pending_total(), 0);
        assert!(queues.per_tenant.is_empty() && queues.pending.is_empty());
        queues.start_run(&a, 7);
        assert!(queues.in_flight.contains(&7));
        queues.end_run(&a, 7);
        assert_eq!((queues.running[&a], queues.in_flight.len()), (0, 0));
    }
}
