//! `JobStore`: the durable job store, one redb file (`<jobs.path>/jobs.redb`). Every change is
//! one ACID transaction, committed to disk before it is answered, so a `kill -9` loses nothing
//! a client was told. Blocking: callers run it off the async threads.
//!
//! Tables: `jobs` (seq → metadata JSON), `payloads` (seq → submitted body, while the job is
//! live), `results` (seq → result JSON), `live` (seq of every PENDING or RUNNING job, in submit
//! order), `finished` ((finish ms, seq), for retention), `idempotency` ("tenant\nkey" → seq),
//! `meta` (the next seq).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use super::record::{JobFailure, JobId, JobKind, JobRecord, JobStatus};

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("payloads");
const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
const LIVE: TableDefinition<u64, ()> = TableDefinition::new("live");
const FINISHED: TableDefinition<(u64, u64), ()> = TableDefinition::new("finished");
const IDEMPOTENCY: TableDefinition<&str, u64> = TableDefinition::new("idempotency");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";
/// The store file inside `jobs.path`.
pub const STORE_FILE: &str = "jobs.redb";
/// Bytes counted for a job's metadata beside its body and result.
const RECORD_OVERHEAD: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    #[error("job store: {0}")]
    Io(String),
}

fn io(err: impl std::fmt::Display) -> StoreError {
    StoreError::Io(err.to_string())
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant: String,
    pub model: String,
    pub version: String,
    pub kind: JobKind,
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
    pub now_ms: u64,
}

/// What the store may still take, as the service counts it.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub pending: usize,
    pub max_pending: usize,
    pub stored_bytes: u64,
    pub max_store_bytes: u64,
}

#[derive(Debug)]
pub enum SubmitError {
    /// The idempotency key names a job with another body.
    Conflict(Box<JobRecord>),
    /// Over `jobs.max_pending` or `jobs.max_store_bytes`.
    Full(String),
    Store(StoreError),
}

/// A submit's answer: the job, and whether this call created it (else an idempotent replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub record: JobRecord,
    pub created: bool,
}

/// A changed job, and the store bytes it held before the change.
#[derive(Debug, Clone)]
pub struct Changed {
    pub record: JobRecord,
    pub bytes_before: u64,
}

/// What the store held when opened: live jobs back to PENDING, in submit order.
#[derive(Debug, Default)]
pub struct Recovered {
    pub pending: Vec<JobRecord>,
    /// Jobs that were RUNNING when the last process ended and are PENDING again.
    pub requeued: usize,
    pub stored_bytes: u64,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    pub jobs: Vec<JobRecord>,
    /// The cursor of the next page (the last seq looked at), when the listing went on.
    pub next: Option<u64>,
}

/// Which jobs a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub tenant: String,
    pub status: Option<JobStatus>,
    pub model: Option<String>,
}

/// What a retention sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    pub deleted: usize,
    pub freed_bytes: u64,
    pub expired: Vec<Changed>,
}

pub struct JobStore {
    db: Database,
    path: PathBuf,
}

fn encode(record: &JobRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(io)
}

fn decode(bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| io(format!("a job record does not parse: {e}")))
}

fn read_record(txn: &WriteTransaction, seq: u64) -> Result<Option<JobRecord>, StoreError> {
    let jobs = txn.open_table(JOBS).map_err(io)?;
    let bytes = jobs.get(seq).map_err(io)?;
    bytes.map(|b| decode(b.value())).transpose()
}

fn write_record(txn: &WriteTransaction, record: &JobRecord) -> Result<(), StoreError> {
    let mut jobs = txn.open_table(JOBS).map_err(io)?;
    jobs.insert(record.id.seq, encode(record)?.as_slice())
        .map_err(io)?;
    Ok(())
}

fn idempotency_entry(tenant: &str, key: &str) -> String {
    format!("{tenant}\n{key}")
}

/// SHA-256 of a body, hex.
pub fn body_digest(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl JobStore {
    /// Opens (or creates) the store in `dir`, creating the directory. A file that is not a
    /// store, or a directory that cannot be written, is a clear error naming the path.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(STORE_FILE);
        let open_error = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| open_error(format!("cannot create the directory: {e}")))?;
        let db = Database::create(&path).map_err(|e| {
            open_error(format!(
                "cannot open it ({e}); if the file is damaged, move it away to start an empty store"
            ))
        })?;
        let store = Self {
            db,
            path: path.clone(),
        };
        // Every table exists from the start, so reads never meet a missing one.
        store
            .write(|txn| {
                txn.open_table(JOBS).map_err(io)?;
                txn.open_table(PAYLOADS).map_err(io)?;
                txn.open_table(RESULTS).map_err(io)?;
                txn.open_table(LIVE).map_err(io)?;
                txn.open_table(FINISHED).map_err(io)?;
                txn.open_table(IDEMPOTENCY).map_err(io)?;
                txn.open_table(META).map_err(io)?;
                Ok(())
            })
            .map_err(|e| open_error(format!("cannot write to it: {e}")))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `change` in one write transaction and commits it (durably) when it succeeds.
    fn write<T>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(io)?;
        let answer = change(&txn)?;
        txn.commit().map_err(io)?;
        Ok(answer)
    }

    /// Puts every RUNNING job (its process died) back to PENDING and answers the live jobs in
    /// submit order, with the bytes the store holds.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        self.write(|txn| {
            let live: Vec<u64> = {
                let table = txn.open_table(LIVE).map_err(io)?;
                let mut seqs = Vec::new();
                for entry in table.iter().map_err(io)? {
                    seqs.push(entry.map_err(io)?.0.value());
                }
                seqs
            };
            let mut recovered = Recovered::default();
            for seq in live {
                let Some(mut record) = read_record(txn, seq)? else {
                    continue;
                };
                if record.status == JobStatus::Running {
                    record.status = JobStatus::Pending;
                    write_record(txn, &record)?;
                    recovered.requeued += 1;
                }
                recovered.pending.push(record);
            }
            let jobs = txn.open_table(JOBS).map_err(io)?;
            for entry in jobs.iter().map_err(io)? {
                let (_, bytes) = entry.map_err(io)?;
                recovered.stored_bytes += decode(bytes.value())?.stored_bytes;
            }
            Ok(recovered)
        })
    }

    /// Creates a job, or answers the one its idempotency key already names (a replay, whatever
    /// the room), or refuses: another body under the key, or no room (nothing is written).
    pub fn submit(&self, job: NewJob, room: Room) -> Result<Submitted, SubmitError> {
        let digest = body_digest(&job.body);
        let mut refusal = None;
        let submitted = self
            .write(|txn| {
                let key = job
                    .idempotency_key
                    .as_deref()
                    .map(|key| idempotency_entry(&job.tenant, key));
                if let Some(key) = &key {
                    let existing = {
                        let table = txn.open_table(IDEMPOTENCY).map_err(io)?;
                        let seq = table.get(key.as_str()).map_err(io)?.map(|s| s.value());
                        seq
                    };
                    let stored = existing.map(|seq| read_record(txn, seq)).transpose()?;
                    if let Some(Some(record)) = stored {
                        if record.body_sha256 != digest {
                            refusal = Some(SubmitError::Conflict(Box::new(record)));
                            return Ok(None);
                        }
                        return Ok(Some(Submitted {
                            record,
                            created: false,
                        }));
                    }
                }
                let bytes = job.body.len() as u64 + RECORD_OVERHEAD;
                if room.pending >= room.max_pending {
                    refusal = Some(SubmitError::Full(format!(
                        "the job store holds {} pending jobs (jobs.max_pending)",
                        room.pending
                    )));
                    return Ok(None);
                }
                if room.stored_bytes.saturating_add(bytes) > room.max_store_bytes {
                    refusal = Some(SubmitError::Full(format!(
                        "the job store holds {} of its {} bytes (jobs.max_store_bytes)",
                        room.stored_bytes, room.max_store_bytes
                    )));
                    return Ok(None);
                }
                let seq = {
                    let mut meta = txn.open_table(META).map_err(io)?;
                    let seq = meta.get(NEXT_SEQ).map_err(io)?.map_or(1, |s| s.value());
                    meta.insert(NEXT_SEQ, seq + 1).map_err(io)?;
                    seq
                };
                let record = JobRecord {
                    id: JobId {
                        seq,
                        token: rand::random(),
                    },
                    tenant: job.tenant.clone(),
                    model: job.model.clone(),
                    version: job.version.clone(),
                    kind: job.kind,
                    status: JobStatus::Pending,
                    created_ms: job.now_ms,
                    started_ms: None,
                    finished_ms: None,
                    attempts: 0,
                    idempotency_key: job.idempotency_key.clone(),
                    body_sha256: digest.clone(),
                    error: None,
                    stored_bytes: bytes,
                };
                write_record(txn, &record)?;
                txn.open_table(PAYLOADS)
                    .map_err(io)?
                    .insert(seq, job.body.as_slice())
                    .map_err(io)?;
                txn.open_table(LIVE)
                    .map_err(io)?
                    .insert(seq, ())
                    .map_err(io)?;
                if let Some(key) = &key {
                    txn.open_table(IDEMPOTENCY)
                        .map_err(io)?
                        .insert(key.as_str(), seq)
                        .map_err(io)?;
                }
                Ok(Some(Submitted {
                    record,
                    created: true,
                }))
            })
            .map_err(SubmitError::Store)?;
        match (submitted, refusal) {
            (Some(submitted), _) => Ok(submitted),
            (None, Some(refusal)) => Err(refusal),
            (None, None) => Err(SubmitError::Store(io("submit answered nothing"))),
        }
    }

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
                let payloads = txn.open_table(PAYLOADS).map_err(io)?;
                let body = payloads.get(seq).map_err(io)?;
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

    pub fn get(&self, seq: u64) -> Result<Option<JobRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let jobs = txn.open_table(JOBS).map_err(io)?;
        let bytes = jobs.get(seq).map_err(io)?;
        bytes.map(|b| decode(b.value())).transpose()
    }

    /// A succeeded job's result (JSON, as the synchronous route answers it).
    pub fn result(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let results = txn.open_table(RESULTS).map_err(io)?;
        let bytes = results.get(seq).map_err(io)?;
        Ok(bytes.map(|b| b.value().to_vec()))
    }

    /// The tenant's jobs after `after` (a cursor) in submit order, matching `filter`: at most
    /// `limit`, looking at no more than `scan` jobs (then the page may be short, with a cursor).
    pub fn list(
        &self,
        filter: &ListFilter,
        after: Option<u64>,
        limit: usize,
        scan: usize,
    ) -> Result<Page, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let jobs = txn.open_table(JOBS).map_err(io)?;
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let mut page = Page::default();
        let mut looked = 0;
        let mut last = None;
        let mut range = jobs.range(start..).map_err(io)?;
        for entry in range.by_ref() {
            let (seq, bytes) = entry.map_err(io)?;
            looked += 1;
            last = Some(seq.value());
            let record = decode(bytes.value())?;
            let matches = record.tenant == filter.tenant
                && filter.status.is_none_or(|s| s == record.status)
                && filter.model.as_deref().is_none_or(|m| m == record.model);
            if matches {
                page.jobs.push(record);
            }
            if page.jobs.len() >= limit || looked >= scan {
                break;
            }
        }
        if range.next().is_some() {
            page.next = last;
        }
        Ok(page)
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
                let finished = txn.open_table(FINISHED).map_err(io)?;
                let mut old = Vec::new();
                for entry in finished
                    .range((0, 0)..(finished_before_ms, 0))
                    .map_err(io)?
                    .take(max)
                {
                    old.push(entry.map_err(io)?.0.value());
                }
                old
            };
            for (finished_ms, seq) in old {
                txn.open_table(FINISHED)
                    .map_err(io)?
                    .remove((finished_ms, seq))
                    .map_err(io)?;
                let Some(record) = read_record(txn, seq)? else {
                    continue;
                };
                txn.open_table(JOBS).map_err(io)?.remove(seq).map_err(io)?;
                txn.open_table(RESULTS)
                    .map_err(io)?
                    .remove(seq)
                    .map_err(io)?;
                txn.open_table(PAYLOADS)
                    .map_err(io)?
                    .remove(seq)
                    .map_err(io)?;
                if let Some(key) = &record.idempotency_key {
                    let entry = idempotency_entry(&record.tenant, key);
                    let mut table = txn.open_table(IDEMPOTENCY).map_err(io)?;
                    let names_this = table
                        .get(entry.as_str())
                        .map_err(io)?
                        .is_some_and(|s| s.value() == seq);
                    if names_this {
                        table.remove(entry.as_str()).map_err(io)?;
                    }
                }
                swept.deleted += 1;
                swept.freed_bytes += record.stored_bytes;
            }
            let stale: Vec<u64> = {
                let live = txn.open_table(LIVE).map_err(io)?;
                let mut stale = Vec::new();
                for entry in live.iter().map_err(io)?.take(max) {
                    stale.push(entry.map_err(io)?.0.value());
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

fn finish_in(
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
        let mut payloads = txn.open_table(PAYLOADS).map_err(io)?;
        let removed = payloads.remove(seq).map_err(io)?;
        removed.map_or(0, |b| b.value().len() as u64)
    };
    txn.open_table(LIVE).map_err(io)?.remove(seq).map_err(io)?;
    if let Some(result) = result {
        txn.open_table(RESULTS)
            .map_err(io)?
            .insert(seq, result)
            .map_err(io)?;
    }
    txn.open_table(FINISHED)
        .map_err(io)?
        .insert((now_ms, seq), ())
        .map_err(io)?;
    record.status = to;
    record.finished_ms = Some(now_ms);
    record.error = error;
    record.stored_bytes =
        record.stored_bytes.saturating_sub(body_len) + result.map_or(0, |r| r.len() as u64);
    write_record(txn, &record)?;
    Ok(Some(Changed {
        record,
        bytes_before,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tenant: &str, key: Option<&str>, body: &str, now_ms: u64) -> NewJob {
        NewJob {
            tenant: tenant.into(),
            model: "m".into(),
            version: "1".into(),
            kind: JobKind::Predict,
            idempotency_key: key.map(str::to_string),
            body: body.as_bytes().to_vec(),
            now_ms,
        }
    }

    const ROOMY: Room = Room {
        pending: 0,
        max_pending: 100,
        stored_bytes: 0,
        max_store_bytes: 1 << 20,
    };

    fn status(store: &JobStore, seq: u64) -> JobStatus {
        store.get(seq).unwrap().unwrap().status
    }

    #[test]
    fn a_job_goes_pending_running_succeeded_and_is_swept_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let created = store
            .submit(job("t", None, "{\"a\":1}", 1_000), ROOMY)
            .unwrap();
        assert!(created.created);
        let seq = created.record.id.seq;
        assert_eq!(seq, 1);
        assert_eq!(created.record.stored_bytes, 7 + RECORD_OVERHEAD);
        let (taken, body) = store.take(seq, 1_010).unwrap().unwrap();
        assert_eq!(body, b"{\"a\":1}");
        assert_eq!(
            (taken.record.status, taken.record.attempts),
            (JobStatus::Running, 1)
        );
        assert!(store.take(seq, 1_011).unwrap().is_none(), "taken twice");
        let result = b"{\"outputs\":[[1.0]]}";
        let done = store
            .finish(
                seq,
                &[JobStatus::Running],
                JobStatus::Succeeded,
                Some(result),
                None,
                1_020,
            )
            .unwrap()
            .unwrap();
        // The body is dropped at the finish, the result kept.
        assert_eq!(
            done.record.stored_bytes,
            RECORD_OVERHEAD + result.len() as u64
        );
        assert_eq!(done.record.duration_ms(), Some(20));
        assert_eq!(store.result(seq).unwrap().unwrap(), result);
        // Cancelling a finished job changes nothing.
        let again = store.finish(
            seq,
            &[JobStatus::Pending],
            JobStatus::Cancelled,
            None,
            None,
            1_030,
        );
        assert!(again.unwrap().is_none());
        // Not yet past retention; then deleted with its result.
        assert_eq!(store.sweep(1_020, 0, 10, 2_000).unwrap().deleted, 0);
        let swept = store.sweep(1_021, 0, 10, 2_000).unwrap();
        assert_eq!(
            (swept.deleted, swept.freed_bytes),
            (1, done.record.stored_bytes)
        );
        assert!(store.get(seq).unwrap().is_none());
        assert!(store.result(seq).unwrap().is_none());
    }

    #[test]
    fn idempotency_keys_replay_the_job_refuse_another_body_and_are_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let first = store.submit(job("t", Some("k"), "A", 1), ROOMY).unwrap();
        let replay = store.submit(job("t", Some("k"), "A", 2), ROOMY).unwrap();
        assert!(!replay.created);
        assert_eq!(replay.record.id, first.record.id);
        // A replay is answered even when the store is full.
        let full = Room {
            pending: 100,
            ..ROOMY
        };
        assert!(
            !store
                .submit(job("t", Some("k"), "A", 3), full)
                .unwrap()
                .created
        );
        match store.submit(job("t", Some("k"), "B", 4), ROOMY) {
            Err(SubmitError::Conflict(existing)) => assert_eq!(existing.id, first.record.id),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let other_tenant = store.submit(job("u", Some("k"), "B", 5), ROOMY).unwrap();
        assert!(other_tenant.created);
        assert_ne!(other_tenant.record.id, first.record.id);
    }

    #[test]
    fn a_full_store_refuses_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        store.submit(job("t", None, "A", 1), ROOMY).unwrap();
        let at_cap = Room {
            pending: 1,
            max_pending: 1,
            ..ROOMY
        };
        assert!(matches!(
            store.submit(job("t", Some("x"), "B", 2), at_cap),
            Err(SubmitError::Full(_))
        ));
        let bytes = Room {
            stored_bytes: (1 << 20) - 10,
            ..ROOMY
        };
        assert!(matches!(
            store.submit(job("t", None, "B", 2), bytes),
            Err(SubmitError::Full(_))
        ));
        // Nothing was written: the next job is seq 2 and the key is free.
        let next = store.submit(job("t", Some("x"), "C", 3), ROOMY).unwrap();
        assert_eq!(next.record.id.seq, 2);
        assert!(next.created);
        let all = store.list(
            &ListFilter {
                tenant: "t".into(),
                ..ListFilter::default()
            },
            None,
            10,
            100,
        );
        assert_eq!(all.unwrap().jobs.len(), 2);
    }

    #[test]
    fn reopening_puts_running_jobs_back_to_pending_in_submit_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = JobStore::open(dir.path()).unwrap();
            for n in 0..4 {
                store
                    .submit(job("t", None, &format!("{n}"), n), ROOMY)
                    .unwrap();
            }
            store.take(2, 10).unwrap().unwrap();
            store.take(3, 10).unwrap().unwrap();
            store
                .finish(3, &[JobStatus::Running], JobStatus::Failed, None, None, 11)
                .unwrap()
                .unwrap();
        }
        let store = JobStore::open(dir.path()).unwrap();
        let recovered = store.recover().unwrap();
        assert_eq!(recovered.requeued, 1);
        let seqs: Vec<u64> = recovered.pending.iter().map(|r| r.id.seq).collect();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(status(&store, 2), JobStatus::Pending);
        // Its second try counts as such.
        assert_eq!(store.take(2, 20).unwrap().unwrap().0.record.attempts, 2);
        assert_eq!(status(&store, 3), JobStatus::Failed);
    }

    #[test]
    fn old_pending_jobs_expire_and_listing_pages_by_cursor_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        for n in 0..5 {
            let tenant = if n % 2 == 0 { "t" } else { "u" };
            store
                .submit(job(tenant, None, "x", 100 * n), ROOMY)
                .unwrap();
        }
        // Created at 0, 100, 200, 300, 400: those before 250 expire.
        let swept = store.sweep(0, 250, 10, 500).unwrap();
        let expired: Vec<u64> = swept.expired.iter().map(|c| c.record.id.seq).collect();
        assert_eq!(expired, [1, 2, 3]);
        assert_eq!(
            swept.expired[0].record.error.as_ref().unwrap().error_type,
            "timeout"
        );
        let filter = ListFilter {
            tenant: "t".into(),
            ..ListFilter::default()
        };
        let first = store.list(&filter, None, 2, 100).unwrap();
        let seqs: Vec<u64> = first.jobs.iter().map(|r| r.id.seq).collect();
        assert_eq!(seqs, [1, 3]);
        let rest = store.list(&filter, first.next, 2, 100).unwrap();
        assert_eq!(rest.jobs.iter().map(|r| r.id.seq).collect::<Vec<_>>(), [5]);
        assert_eq!(rest.next, None);
        let pending = ListFilter {
            status: Some(JobStatus::Pending),
            ..filter.clone()
        };
        assert_eq!(store.list(&pending, None, 10, 100).unwrap().jobs.len(), 1);
        // A scan bound ends a page early, with a cursor to go on from.
        let short = store.list(&filter, None, 10, 2).unwrap();
        assert_eq!((short.jobs.len(), short.next), (1, Some(2)));
    }

    #[test]
    fn a_file_that_is_not_a_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STORE_FILE), vec![0x5a; 8192]).unwrap();
        let err = JobStore::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("jobs.redb") && err.contains("move it away"),
            "{err}"
        );
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = JobStore::open(&file.join("jobs"))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("cannot create the directory"), "{err}");
    }
}
