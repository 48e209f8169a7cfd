//! A job's changes after its submit, each one durable transaction: a worker takes it
//! (RUNNING), a retry puts it back (PENDING), it ends (SUCCEEDED, FAILED, CANCELLED, EXPIRED)
//! with its result or error; the body is dropped when it ends.

use redb::{ReadableTable, WriteTransaction};

use super::record::{JobFailure, JobStatus};
use super::store::{
    db, io, read_record, value_cost, write_record, Changed, JobStore, StoreError, FINISHED, LIVE,
    PAYLOADS, RESULTS,
};

impl JobStore {
    /// A worker takes a PENDING job: RUNNING, one more attempt. `None` when it is not pending
    /// (cancelled meanwhile). Answers the job and its body.
    pub fn take(&self, seq: u64, now_ms: u64) -> Result<Option<(Changed, Vec<u8>)>, StoreError> {
        self.write(|txn| {
            let Some(mut record) = read_record(txn, seq)? else {
                return Ok(None);
            };
            if record.status != JobStatus::Pending {
                return Ok(None);
            }
            let body = {
                let payloads = txn.open_table(PAYLOADS).map_err(db)?;
                let body = payloads.get(seq).map_err(db)?;
                body.map(|b| b.value().to_vec())
            };
            let Some(body) = body else {
                return Err(io(format!("job {} has no stored body", record.id)));
            };
            record.status = JobStatus::Running;
            record.attempts += 1;
            record.started_ms = Some(now_ms);
            write_record(txn, &record)?;
            let bytes_before = record.stored_bytes;
            Ok(Some((
                Changed {
                    record,
                    bytes_before,
                },
                body,
            )))
        })
    }

    /// A RUNNING job goes back to PENDING (its try ended in an error worth retrying).
    pub fn requeue(&self, seq: u64) -> Result<Option<Changed>, StoreError> {
        self.write(|txn| {
            let Some(mut record) = read_record(txn, seq)? else {
                return Ok(None);
            };
            if record.status != JobStatus::Running {
                return Ok(None);
            }
            record.status = JobStatus::Pending;
            write_record(txn, &record)?;
            let bytes_before = record.stored_bytes;
            Ok(Some(Changed {
                record,
                bytes_before,
            }))
        })
    }

    /// Ends a job that is in one of `from`: `to` (a final status), with its result or error.
    /// `None` when the job is in none of `from` (or gone).
    pub fn finish(
        &self,
        seq: u64,
        from: &[JobStatus],
        to: JobStatus,
        result: Option<&[u8]>,
        error: Option<JobFailure>,
        now_ms: u64,
    ) -> Result<Option<Changed>, StoreError> {
        self.write(|txn| finish_in(txn, seq, from, to, result, error, now_ms))
    }
}

pub(super) fn finish_in(
    txn: &WriteTransaction,
    seq: u64,
    from: &[JobStatus],
    to: JobStatus,
    result: Option<&[u8]>,
    error: Option<JobFailure>,
    now_ms: u64,
) -> Result<Option<Changed>, StoreError> {
    let Some(mut record) = read_record(txn, seq)? else {
        return Ok(None);
    };
    if !from.contains(&record.status) {
        return Ok(None);
    }
    let bytes_before = record.stored_bytes;
    let body_len = {
        let mut payloads = txn.open_table(PAYLOADS).map_err(db)?;
        let removed = payloads.remove(seq).map_err(db)?;
        removed.map(|b| b.value().len() as u64)
    };
    txn.open_table(LIVE).map_err(db)?.remove(seq).map_err(db)?;
    if let Some(result) = result {
        txn.open_table(RESULTS)
            .map_err(db)?
            .insert(seq, result)
            .map_err(db)?;
    }
    txn.open_table(FINISHED)
        .map_err(db)?
        .insert((now_ms, seq), ())
        .map_err(db)?;
    record.status = to;
    record.finished_ms = Some(now_ms);
    record.error = error;
    record.stored_bytes = record
        .stored_bytes
        .saturating_sub(body_len.map_or(0, value_cost))
        + result.map_or(0, |r| value_cost(r.len() as u64));
    write_record(txn, &record)?;
    Ok(Some(Changed {
        record,
        bytes_before,
    }))
}
