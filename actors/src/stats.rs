//! `VersionStats`: what the KServe v2 / Triton statistics extension reports of one version since
//! it loaded: counts and total nanoseconds of successful and failed requests, of queue time and
//! of compute, items inferred, batches executed, and executions per batch size. Lock-free on
//! the request path but for the per-batch-size table (one short lock per batch, at most
//! `max_batch_size` entries).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A count and the nanoseconds it took in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: u64,
    pub ns: u64,
}

#[derive(Default)]
struct Counter {
    count: AtomicU64,
    ns: AtomicU64,
}

fn nanos(took: Duration) -> u64 {
    u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)
}

impl Counter {
    fn add(&self, n: u64, took: Duration) {
        self.count.fetch_add(n, Ordering::Relaxed);
        self.ns.fetch_add(nanos(took), Ordering::Relaxed);
    }

    fn read(&self) -> Totals {
        Totals {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

/// A version's statistics as read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    pub success: Totals,
    pub fail: Totals,
    pub queue: Totals,
    pub compute_infer: Totals,
    /// Items (rows) inferred.
    pub inference_count: u64,
    /// Forward passes run.
    pub execution_count: u64,
    /// Unix milliseconds of the last forward pass; 0 before any.
    pub last_inference_ms: u64,
    /// Per batch size (rows in the pass): passes and their compute time.
    pub batches: Vec<(usize, Totals)>,
}

#[derive(Default)]
pub struct VersionStats {
    success: Counter,
    fail: Counter,
    queue: Counter,
    compute_infer: Counter,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
    batches: Mutex<BTreeMap<usize, Totals>>,
}

impl VersionStats {
    /// One forward pass of `rows` rows for requests that waited `queue_times`.
    pub fn record_pass(&self, rows: usize, queue_times: &[Duration], compute: Duration) {
        for waited in queue_times {
            self.queue.add(1, *waited);
        }
        self.compute_infer.add(queue_times.len() as u64, compute);
        self.inference_count
            .fetch_add(rows as u64, Ordering::Relaxed);
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.last_inference_ms
            .store(crate::jobs::record::now_ms(), Ordering::Relaxed);
        let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let entry = batches.entry(rows).or_default();
        entry.count += 1;
        entry.ns = entry.ns.saturating_add(nanos(compute));
    }

    /// One answered request: `Ok(took)` served, `Err(took)` failed.
    pub fn record_request(&self, outcome: Result<Duration, Duration>) {
        match outcome {
            Ok(took) => self.success.add(1, took),
            Err(took) => self.fail.add(1, took),
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        StatsSnapshot {
            success: self.success.read(),
            fail: self.fail.read(),
            queue: self.queue.read(),
            compute_infer: self.compute_infer.read(),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            last_inference_ms: self.last_inference_ms.load(Ordering::Relaxed),
            batches: batches
                .iter()
                .map(|(size, totals)| (*size, *totals))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_and_requests_add_up() {
        let stats = VersionStats::default();
        let ms = Duration::from_millis;
        stats.record_pass(3, &[ms(1), ms(2)], ms(10));
        stats.record_pass(1, &[ms(4)], ms(5));
        stats.record_pass(3, &[ms(0)], ms(7));
        stats.record_request(Ok(ms(20)));
        stats.record_request(Ok(ms(30)));
        stats.record_request(Err(ms(1)));
        let s = stats.snapshot();
        assert_eq!(
            s.success,
            Totals {
                count: 2,
                ns: 50_000_000
            }
        );
        assert_eq!(
            s.fail,
            Totals {
                count: 1,
                ns: 1_000_000
            }
        );
        assert_eq!(
            s.queue,
            Totals {
                count: 4,
                ns: 7_000_000
            }
        );
        assert_eq!(
            s.compute_infer,
            Totals {
                count: 4,
                ns: 22_000_000
            }
        );
        assert_eq!((s.inference_count, s.execution_count), (7, 3));
        assert!(s.last_inference_ms > 0);
        assert_eq!(
            s.batches,
            vec![
                (
                    1,
                    Totals {
                        count: 1,
                        ns: 5_000_000
                    }
                ),
                (
                    3,
                    Totals {
                        count: 2,
                        ns: 17_000_000
                    }
                )
            ]
        );
    }
}
