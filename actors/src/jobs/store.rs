//! `JobStore`: the durable job store, one redb file (`<jobs.path>/jobs.redb`). Every change is
//! one ACID transaction, committed to disk before it is answered, so a `kill -9` loses nothing
//! a client was told. Blocking: callers run it off the async threads.
//!
//! Tables: `jobs` (seq → metadata JSON), `payloads` (seq → submitted body, while the job is
//! live), `results` (seq → result JSON), `live` (seq of every PENDING or RUNNING job, in submit
//! order), `finished` ((finish ms, seq), for retention), `idempotency` ("tenant\nkey" → seq),
//! `meta` (the next seq). A job's later changes are in `transitions.rs`, reads in `reads.rs`,
//! recovery and the retention sweep in `maintenance.rs`.
//!
//! Errors are split by what helps: [`StoreError::Unavailable`] is an I/O failure (a full disk,
//! EIO): redb refuses every later operation on that handle, so the service closes it and opens
//! the file again until that works; [`StoreError::Io`] is anything else (a record that does not
//! parse).
//!
//! Bytes: what counts against `jobs.max_store_bytes` is redb's own allocation (pages × page
//! size, B-trees and its power-of-two rounding of large values included), measured with
//! `WriteTransaction::stats` — a walk of every page, so it is measured at open and when a
//! submit comes near the cap; in between each change adds or removes its [`value_cost`].

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use super::record::{JobId, JobKind, JobRecord, JobStatus};

pub(super) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
pub(super) const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("payloads");
pub(super) const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
pub(super) const LIVE: TableDefinition<u64, ()> = TableDefinition::new("live");
pub(super) const FINISHED: TableDefinition<(u64, u64), ()> = TableDefinition::new("finished");
pub(super) const IDEMPOTENCY: TableDefinition<&str, u64> = TableDefinition::new("idempotency");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";
/// The store file inside `jobs.path`.
pub const STORE_FILE: &str = "jobs.redb";
/// redb's page.
const PAGE: u64 = 4096;
/// Bytes counted for a job's metadata record and index entries beside its body and result.
pub const RECORD_OVERHEAD: u64 = 1024;
/// redb's page cache. Its default (1 GiB) kept every body written in memory: the store is
/// written far more than it is read, and what is read again (metadata) is small.
pub const CACHE_BYTES: usize = 16 << 20;
/// Past this share of `jobs.max_store_bytes` (by the running count) a submit measures the
/// store (when the service allows it) instead of trusting the count.
const MEASURE_ABOVE: f64 = 0.9;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    /// The disk failed or is full: the handle is unusable until the file is opened again.
    #[error("job store: {0}")]
    Unavailable(String),
    #[error("job store: {0}")]
    Io(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A failure that is not the disk's (a record that does not parse).
pub(super) fn io(err: impl std::fmt::Display) -> StoreError {
    StoreError::Io(err.to_string())
}

/// A redb failure: I/O ones (the disk, and redb's refusal of a handle after one) make the store
/// unavailable until it is opened again.
pub(super) fn db(err: impl Into<redb::Error>) -> StoreError {
    match err.into() {
        redb::Error::Io(err) => StoreError::Unavailable(err.to_string()),
        redb::Error::PreviousIo => {
            StoreError::Unavailable("an earlier write failed and the file must be re-opened".into())
        }
        redb::Error::DatabaseClosed => StoreError::Unavailable("the file is closed".into()),
        redb::Error::DatabaseAlreadyOpen => {
            StoreError::Unavailable("the file is still open (a read in progress)".into())
        }
        other => StoreError::Io(other.to_string()),
    }
}

/// What redb allocates for one stored value of `len` bytes, near enough: a value that does not
/// fit half a page gets a leaf of its own, whose page count redb rounds up to a power of two;
/// smaller ones share leaves, counted twice over for the space leaves keep free.
pub fn value_cost(len: u64) -> u64 {
    let with_header = len + 64;
    if with_header <= PAGE / 2 {
        2 * with_header
    } else {
        with_header.div_ceil(PAGE).next_power_of_two() * PAGE
    }
}

/// What a new job of `body_len` bytes is counted for until it finishes: its body and record.
pub fn job_cost(body_len: usize) -> u64 {
    value_cost(body_len as u64) + RECORD_OVERHEAD
}

/// What a result reserve of `bytes` holds against the cap while its job is live.
pub fn reserve_cost(bytes: u64) -> u64 {
    if bytes == 0 {
        0
    } else {
        value_cost(bytes)
    }
}

/// Whether a job costing `cost` with `used` counted comes near `max` (then it is measured).
pub(super) fn near_cap(used: u64, cost: u64, max: u64) -> bool {
    used.saturating_add(cost) as f64 > max as f64 * MEASURE_ABOVE
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant: String,
    pub model: String,
    pub version: String,
    pub kind: JobKind,
    /// The caller's tag of how `body` is encoded (stored, not read).
    pub body_format: u8,
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
    /// The most its result may take (0: not estimated).
    pub result_reserve: u64,
    pub now_ms: u64,
}

/// What the store may still take, as the service counts it.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub pending: usize,
    pub max_pending: usize,
    /// PENDING jobs of the submitting tenant, and its share.
    pub tenant_pending: usize,
    pub max_pending_per_tenant: usize,
    /// What the store's file holds: redb's allocation when last measured, plus each change's
    /// [`value_cost`] since.
    pub used_bytes: u64,
    /// Held for the results of the live jobs ([`reserve_cost`] of each).
    pub reserved_bytes: u64,
    pub max_store_bytes: u64,
    /// Whether this submit may measure the store (a walk of every page) near the cap.
    pub may_measure: bool,
}

#[derive(Debug)]
pub enum SubmitError {
    /// The idempotency key names a job with another body (`digest`: this body's).
    Conflict {
        existing: Box<JobRecord>,
        digest: String,
    },
    /// Over `jobs.max_pending`, the tenant's share, or `jobs.max_store_bytes`; `measured` when
    /// the store was measured to decide.
    Full {
        message: String,
        measured: Option<u64>,
    },
    Store(StoreError),
}

/// A submit's answer: the job, and whether this call created it (else an idempotent replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub record: JobRecord,
    pub created: bool,
    /// redb's allocation after the submit, when it was measured.
    pub measured: Option<u64>,
}

/// A changed job, and the store bytes it held before the change.
#[derive(Debug, Clone)]
pub struct Changed {
    pub record: JobRecord,
    pub bytes_before: u64,
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

pub struct JobStore {
    pub(super) db: Database,
    path: PathBuf,
}

fn encode(record: &JobRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(io)
}

pub(super) fn decode(bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| io(format!("a job record does not parse: {e}")))
}

pub(super) fn read_record(
    txn: &WriteTransaction,
    seq: u64,
) -> Result<Option<JobRecord>, StoreError> {
    let jobs = txn.open_table(JOBS).map_err(db)?;
    let bytes = jobs.get(seq).map_err(db)?;
    bytes.map(|b| decode(b.value())).transpose()
}

pub(super) fn write_record(txn: &WriteTransaction, record: &JobRecord) -> Result<(), StoreError> {
    let mut jobs = txn.open_table(JOBS).map_err(db)?;
    jobs.insert(record.id.seq, encode(record)?.as_slice())
        .map_err(db)?;
    Ok(())
}

pub(super) fn idempotency_entry(tenant: &str, key: &str) -> String {
    format!("{tenant}\n{key}")
}

/// redb's allocation now (pages × page size), this transaction's writes included. Walks every
/// page of every table.
pub(super) fn allocated(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let stats = txn.stats().map_err(db)?;
    Ok(stats.allocated_pages() * stats.page_size() as u64)
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
        Self::open_on(dir, |path| {
            redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(path)
        })
    }

    /// [`JobStore::open`] with the caller's way to open the database (tests wrap the file).
    pub(crate) fn open_on(
        dir: &Path,
        create: impl FnOnce(&Path) -> Result<Database, redb::DatabaseError>,
    ) -> Result<Self, StoreError> {
        let path = dir.join(STORE_FILE);
        let open_error = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| open_error(format!("cannot create the directory: {e}")))?;
        let database = create(&path).map_err(|e| {
            open_error(format!(
                "cannot open it ({e}); if the file is damaged, move it away to start an empty store"
            ))
        })?;
        let store = Self {
            db: database,
            path: path.clone(),
        };
        // Every table exists from the start, so reads never meet a missing one.
        store
            .write(|txn| {
                txn.open_table(JOBS).map_err(db)?;
                txn.open_table(PAYLOADS).map_err(db)?;
                txn.open_table(RESULTS).map_err(db)?;
                txn.open_table(LIVE).map_err(db)?;
                txn.open_table(FINISHED).map_err(db)?;
                txn.open_table(IDEMPOTENCY).map_err(db)?;
                txn.open_table(META).map_err(db)?;
                Ok(())
            })
            .map_err(|e| open_error(format!("cannot write to it: {e}")))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `change` in one write transaction and commits it (durably) when it succeeds.
    pub(super) fn write<T>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        let answer = change(&txn)?;
        txn.commit().map_err(db)?;
        Ok(answer)
    }

    /// Creates a job, or answers the one its idempotency key already names (a replay, whatever
    /// the room), or refuses: another body under the key, or no room (nothing is written). A job
    /// is created only once its transaction committed.
    pub fn submit(&self, job: NewJob, room: Room) -> Result<Submitted, SubmitError> {
        let digest = body_digest(&job.body);
        let txn = self
            .db
            .begin_write()
            .map_err(|e| SubmitError::Store(db(e)))?;
        let store = |e: StoreError| SubmitError::Store(e);
        let key = job
            .idempotency_key
            .as_deref()
            .map(|key| idempotency_entry(&job.tenant, key));
        if let Some(key) = &key {
            let existing = {
                let table = txn.open_table(IDEMPOTENCY).map_err(|e| store(db(e)))?;
                let seq = table.get(key.as_str()).map_err(|e| store(db(e)))?;
                seq.map(|s| s.value())
            };
            let stored = existing
                .map(|seq| read_record(&txn, seq))
                .transpose()
                .map_err(store)?;
            if let Some(Some(record)) = stored {
                txn.abort().map_err(|e| store(db(e)))?;
                if record.body_sha256 != digest {
                    return Err(SubmitError::Conflict {
                        existing: Box::new(record),
                        digest,
                    });
                }
                return Ok(Submitted {
                    record,
                    created: false,
                    measured: None,
                });
            }
        }
        let refuse = |txn: WriteTransaction, message: String, measured: Option<u64>| {
            txn.abort().map_err(|e| store(db(e)))?;
            Err(SubmitError::Full { message, measured })
        };
        if room.pending >= room.max_pending {
            let message = format!(
                "the job store holds {} pending jobs (jobs.max_pending = {})",
                room.pending, room.max_pending
            );
            return refuse(txn, message, None);
        }
        if room.tenant_pending >= room.max_pending_per_tenant {
            let message = format!(
                "tenant '{}' holds {} pending jobs, its share (jobs.max_pending_per_tenant = {})",
                job.tenant, room.tenant_pending, room.max_pending_per_tenant
            );
            return refuse(txn, message, None);
        }
        let cost = job_cost(job.body.len());
        // Held beside the file: the results of the live jobs and of this one.
        let held = room
            .reserved_bytes
            .saturating_add(reserve_cost(job.result_reserve));
        let counted = room.used_bytes.saturating_add(held).saturating_add(cost);
        let near = near_cap(
            room.used_bytes.saturating_add(held),
            cost,
            room.max_store_bytes,
        );
        let bytes_full = |used: u64| {
            format!(
                "the job store would hold {used} bytes with the results it must keep room for, \
                 over its {} (jobs.max_store_bytes)",
                room.max_store_bytes
            )
        };
        // Over by the count: refused, unless the file may be measured (the count can run ahead
        // of what redb holds: pages freed since the last measure).
        if counted > room.max_store_bytes && !room.may_measure {
            return refuse(txn, bytes_full(counted), None);
        }
        let record = match insert(&txn, &job, key.as_deref(), &digest, cost) {
            Ok(record) => record,
            Err(err) => {
                let _ = txn.abort();
                return Err(store(err));
            }
        };
        let measured = if near && room.may_measure {
            let used = match allocated(&txn) {
                Ok(used) => used,
                Err(err) => {
                    let _ = txn.abort();
                    return Err(store(err));
                }
            };
            if used.saturating_add(held) > room.max_store_bytes {
                return refuse(txn, bytes_full(used.saturating_add(held)), Some(used));
            }
            Some(used)
        } else {
            None
        };
        txn.commit().map_err(|e| store(db(e)))?;
        Ok(Submitted {
            record,
            created: true,
            measured,
        })
    }
}

/// Writes a new PENDING job (its record, body, live entry and key) and takes the next seq.
fn insert(
    txn: &WriteTransaction,
    job: &NewJob,
    key: Option<&str>,
    digest: &str,
    cost: u64,
) -> Result<JobRecord, StoreError> {
    let seq = {
        let mut meta = txn.open_table(META).map_err(db)?;
        let seq = meta.get(NEXT_SEQ).map_err(db)?.map_or(1, |s| s.value());
        meta.insert(NEXT_SEQ, seq + 1).map_err(db)?;
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
        body_format: job.body_format,
        status: JobStatus::Pending,
        created_ms: job.now_ms,
        started_ms: None,
        finished_ms: None,
        attempts: 0,
        idempotency_key: job.idempotency_key.clone(),
        body_sha256: digest.to_string(),
        error: None,
        stored_bytes: cost,
        result_reserve: job.result_reserve,
    };
    write_record(txn, &record)?;
    txn.open_table(PAYLOADS)
        .map_err(db)?
        .insert(seq, job.body.as_slice())
        .map_err(db)?;
    txn.open_table(LIVE)
        .map_err(db)?
        .insert(seq, ())
        .map_err(db)?;
    if let Some(key) = key {
        txn.open_table(IDEMPOTENCY)
            .map_err(db)?
            .insert(key, seq)
            .map_err(db)?;
    }
    Ok(record)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
