//! Reads of the store: a job, its result, its body while live, a page of a tenant's jobs.

use redb::ReadableDatabase;

use super::record::JobRecord;
use super::store::{db, decode, JobStore, ListFilter, Page, StoreError, JOBS, PAYLOADS, RESULTS};

impl JobStore {
    pub fn get(&self, seq: u64) -> Result<Option<JobRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let jobs = txn.open_table(JOBS).map_err(db)?;
        let bytes = jobs.get(seq).map_err(db)?;
        bytes.map(|b| decode(b.value())).transpose()
    }

    /// A succeeded job's result (JSON, as the synchronous route answers it).
    pub fn result(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let results = txn.open_table(RESULTS).map_err(db)?;
        let bytes = results.get(seq).map_err(db)?;
        Ok(bytes.map(|b| b.value().to_vec()))
    }

    /// A live job's stored body (gone once the job is final).
    pub fn body(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let payloads = txn.open_table(PAYLOADS).map_err(db)?;
        let bytes = payloads.get(seq).map_err(db)?;
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
        let txn = self.db.begin_read().map_err(db)?;
        let jobs = txn.open_table(JOBS).map_err(db)?;
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let mut page = Page::default();
        let mut looked = 0;
        let mut last = None;
        let mut range = jobs.range(start..).map_err(db)?;
        for entry in range.by_ref() {
            let (seq, bytes) = entry.map_err(db)?;
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
}
