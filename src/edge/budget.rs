//! Byte budgets for request bodies in flight: one for the whole server (HTTP and gRPC bodies
//! alike, `server.max_inflight_body_bytes`) and one per gRPC connection
//! (`grpc.max_connection_body_bytes`). A body charges what it has received (decoded, for a
//! compressed HTTP body) as it arrives and gives it all back when its request is answered, so
//! what strangers send can hold at most the budget in memory; a body that would pass it is
//! refused (`overloaded`, 429 / RESOURCE_EXHAUSTED) instead of buffered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes that may be held at once, and those held now.
#[derive(Debug)]
pub struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` if they fit under the limit; `false` (nothing taken) otherwise.
    pub fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken before.
    pub fn give_back(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// What one body holds of one or two budgets (the server's, a connection's); all of it goes
/// back when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    budgets: [Option<Arc<ByteBudget>>; 2],
    bytes: AtomicUsize,
}

impl Charge {
    /// A charge to `budget` alone.
    pub fn to(budget: Arc<ByteBudget>) -> Self {
        Self {
            budgets: [Some(budget), None],
            bytes: AtomicUsize::new(0),
        }
    }

    /// A charge to both budgets.
    pub fn to_both(first: Arc<ByteBudget>, second: Arc<ByteBudget>) -> Self {
        Self {
            budgets: [Some(first), Some(second)],
            bytes: AtomicUsize::new(0),
        }
    }

    fn budgets(&self) -> impl Iterator<Item = &Arc<ByteBudget>> {
        self.budgets.iter().flatten()
    }

    /// Bytes charged so far.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Charges `bytes` more to every budget, or to none: `Err(limit)` names the budget's limit
    /// that refused them.
    pub fn add(&self, bytes: usize) -> Result<(), usize> {
        for (i, budget) in self.budgets().enumerate() {
            if !budget.try_take(bytes) {
                for taken in self.budgets().take(i) {
                    taken.give_back(bytes);
                }
                return Err(budget.limit());
            }
        }
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        for budget in self.budgets() {
            budget.give_back(bytes);
        }
    }
}

/// `request_body_bytes_in_flight`: the server's budget in use, read at scrape.
pub struct BudgetGauge {
    budget: Arc<ByteBudget>,
    gauge: prometheus::IntGauge,
}

impl BudgetGauge {
    pub fn register(
        registry: &prometheus::Registry,
        budget: Arc<ByteBudget>,
    ) -> prometheus::Result<()> {
        let gauge = prometheus::IntGauge::new(
            "request_body_bytes_in_flight",
            "Request body bytes held now, HTTP and gRPC together (server.max_inflight_body_bytes)",
        )?;
        registry.register(Box::new(Self { budget, gauge }))
    }
}

impl prometheus::core::Collector for BudgetGauge {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.gauge
            .set(i64::try_from(self.budget.used()).unwrap_or(i64::MAX));
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_takes_from_every_budget_or_none_and_gives_back_on_drop() {
        let server = ByteBudget::new(100);
        let connection = ByteBudget::new(30);
        let a = Charge::to_both(server.clone(), connection.clone());
        assert_eq!(a.add(20), Ok(()));
        assert_eq!(a.add(20), Err(30), "the connection's budget refuses");
        assert_eq!((server.used(), connection.used()), (20, 20));
        let b = Charge::to(server.clone());
        assert_eq!(b.add(80), Ok(()));
        assert_eq!(b.add(1), Err(100));
        assert_eq!(server.used(), 100);
        drop(a);
        assert_eq!((server.used(), connection.used()), (80, 0));
        drop(b);
        assert_eq!(server.used(), 0);
    }
}
