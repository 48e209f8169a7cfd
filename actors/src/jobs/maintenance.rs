//! The store's bulk work: recovery at open (RUNNING jobs back to PENDING, the live jobs listed,
//! the file measured) and the retention sweep (finished jobs deleted, old PENDING ones expired).

use std::collections::HashSet;

use redb::ReadableTable;

use super::record::{JobFailure, JobRecord, JobStatus};
use super::store::{
    allocated, db, idempotency_entry, read_record, reserve_cost, write_record, Changed, JobStore,
    StoreError, FINISHED, IDEMPOTENCY, JOBS, LIVE, PAYLOADS, RESULTS,
};
use super::transitions::finish_in;

/// What the store held when opened: live jobs back to PENDING, in submit order.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Jobs PENDING now, in submit order.
    pub pending: Vec<JobRecord>,
    /// Jobs that were RUNNING when the last handle closed and are PENDING again.
    pub requeued: usize,
    /// redb's allocation (pages × page size).
    pub allocated_bytes: u64,
    /// Held for the results of the live jobs (PENDING and RUNNING).
    pub reserved_bytes: u64,
}

/// What a retention sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    pub deleted: usize,
    pub freed_bytes: u64,
    pub expired: Vec<Changed>,
}

impl JobStore {
    /// Puts every RUNNING job back to PENDING, except those in `running` (their runs are still
    /// going on in this process: they settle as usual), and answers the PENDING jobs in submit
    /// order, with what the file holds.
    pub fn recover(&self, running: &HashSet<u64>) -> Result<Recovered, StoreError> {
        self.write(|txn| {
            let live: Vec<u64> = {
                let table = txn.open_table(LIVE).map_err(db)?;
                let mut seqs = Vec::new();
                for entry in table.iter().map_err(db)? {
                    seqs.push(entry.map_err(db)?.0.value());
                }
                seqs
            };
            let mut recovered = Recovered::default();
            for seq in live {
                let Some(mut record) = read_record(txn, seq)? else {
                    continue;
                };
                recovered.reserved_bytes += reserve_cost(record.result_reserve);
                if record.status == JobStatus::Running {
                    if running.contains(&seq) {
                        continue;
                    }
                    record.status = JobStatus::Pending;
                    write_record(txn, &record)?;
                    recovered.requeued += 1;
                }
                recovered.pending.push(record);
            }
            recovered.allocated_bytes = allocated(txn)?;
            Ok(recovered)
        })
    }

    /// redb's allocation now (a walk of every page).
    pub fn measure(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        let used = allocated(&txn);
        txn.abort().map_err(db)?;
        used
    }

    /// Deletes jobs finished before `finished_before_ms` (at most `max`), and expires PENDING
    /// jobs created before `created_before_ms`.
    pub fn sweep(
        &self,
        finished_before_ms: u64,
        created_before_ms: u64,
        max: usize,
        now_ms: u64,
    ) -> Result<Swept, StoreError> {
        self.write(|txn| {
            let mut swept = Swept::default();
            let old: Vec<(u64, u64)> = {
                let finished = txn.open_table(FINISHED).map_err(db)?;
                let mut old = Vec::new();
                for entry in finished
                    .range((0, 0)..(finished_before_ms, 0))
                    .map_err(db)?
                    .take(max)
                {
                    old.push(entry.map_err(db)?.0.value());
                }
                old
            };
            for (finished_ms, seq) in old {
                txn.open_table(FINISHED)
                    .map_err(db)?
                    .remove((finished_ms, seq))
                    .map_err(db)?;
                let Some(record) = read_record(txn, seq)? else {
                    continue;
                };
                txn.open_table(JOBS).map_err(db)?.remove(seq).map_err(db)?;
                txn.open_table(RESULTS)
                    .map_err(db)?
                    .remove(seq)
                    .map_err(db)?;
                txn.open_table(PAYLOADS)
                    .map_err(db)?
                    .remove(seq)
                    .map_err(db)?;
                if let Some(key) = &record.idempotency_key {
                    let entry = idempotency_entry(&record.tenant, key);
                    let mut table = txn.open_table(IDEMPOTENCY).map_err(db)?;
                    let names_this = table
                        .get(entry.as_str())
                        .map_err(db)?
                        .is_some_and(|s| s.value() == seq);
                    if names_this {
                        table.remove(entry.as_str()).map_err(db)?;
                    }
                }
                swept.deleted += 1;
                swept.freed_bytes += record.stored_bytes;
            }
            let stale: Vec<u64> = {
                let live = txn.open_table(LIVE).map_err(db)?;
                let mut stale = Vec::new();
                for entry in live.iter().map_err(db)?.take(max) {
                    stale.push(entry.map_err(db)?.0.value());
                }
                stale
            };
            for seq in stale {
                let Some(record) = read_record(txn, seq)? else {
                    continue;
                };
                // Live jobs are in submit order: the first one young enough ends the sweep.
                if record.created_ms >= created_before_ms {
                    break;
                }
                let failure = JobFailure {
                    error: "the job was not started within jobs.max_pending_age_s".into(),
                    error_type: "timeout".into(),
                };
                let to = JobStatus::Expired;
                let from = [JobStatus::Pending];
                if let Some(changed) = finish_in(txn, seq, &from, to, None, Some(failure), now_ms)?
                {
                    swept.expired.push(changed);
                }
            }
            Ok(swept)
        })
    }
}
