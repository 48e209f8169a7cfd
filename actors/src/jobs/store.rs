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
                    if let Some(record) = existing.map(|seq| read_record(txn, seq)).transpose()? {
                        if let Some(record) = record {
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
    record.stored_bytes = record.stored_bytes.saturating_sub(body_len)
        + result.map_or(0, |r| r.len() as u64);
    write_record(txn, &record)?;
    Ok(Some(Changed {
        record,
        bytes_before,
    }))
}
