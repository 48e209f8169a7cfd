//! Tests only: a redb file whose writes fail with ENOSPC on demand, as a full disk does, so the
//! store's and the service's recovery can be tested without a small filesystem.

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::slot::Opener;
use super::store::{JobStore, CACHE_BYTES};

/// The switch: while `full`, every write, growth and sync fails with ENOSPC.
#[derive(Debug, Default)]
pub struct Disk {
    pub full: AtomicBool,
    /// Writes refused so far.
    pub refused: AtomicUsize,
}

impl Disk {
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Faulty {
    file: FileBackend,
    disk: Arc<Disk>,
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if len > self.file.len()? {
            self.disk.check()?;
        }
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.disk.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.disk.check()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// Opens the store in `dir` on a file that fails while `disk` is full.
pub fn open(dir: &Path, disk: &Arc<Disk>) -> Result<JobStore, super::store::StoreError> {
    let disk = disk.clone();
    JobStore::open_on(dir, move |path| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let file = FileBackend::new(file)?;
        redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(Faulty { file, disk })
    })
}

/// An [`Opener`] on `disk`.
pub fn opener(disk: &Arc<Disk>) -> Opener {
    let disk = disk.clone();
    Arc::new(move |dir: &Path| open(dir, &disk))
}
