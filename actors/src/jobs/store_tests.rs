//! `JobStore`'s tests: the status machine, idempotency, refusals (pending, per tenant, bytes as
//! redb allocates them), recovery, listing, and a disk that fills up.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::*;
use crate::jobs::faulty;

fn job(tenant: &str, key: Option<&str>, body: &str, now_ms: u64) -> NewJob {
    NewJob {
        tenant: tenant.into(),
        model: "m".into(),
        version: "1".into(),
        kind: JobKind::Predict,
        body_format: 1,
        idempotency_key: key.map(str::to_string),
        body: body.as_bytes().to_vec(),
        result_reserve: 0,
        now_ms,
    }
}

const ROOMY: Room = Room {
    pending: 0,
    max_pending: 100,
    tenant_pending: 0,
    max_pending_per_tenant: 100,
    used_bytes: 0,
    reserved_bytes: 0,
    max_store_bytes: 1 << 30,
    may_measure: true,
};

fn status(store: &JobStore, seq: u64) -> JobStatus {
    store.get(seq).unwrap().unwrap().status
}

fn none() -> HashSet<u64> {
    HashSet::new()
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
    assert_eq!(created.record.body_format, 1);
    assert_eq!(created.record.stored_bytes, value_cost(7) + RECORD_OVERHEAD);
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
        RECORD_OVERHEAD + value_cost(result.len() as u64)
    );
    assert_eq!(store.body(seq).unwrap(), None);
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
        Err(SubmitError::Conflict { existing, digest }) => {
            assert_eq!(existing.id, first.record.id);
            assert_eq!(digest, body_digest(b"B"));
            assert_eq!(existing.body_sha256, body_digest(b"A"));
        }
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
        Err(SubmitError::Full { .. })
    ));
    // The tenant's own share, naming it.
    let tenant_at_cap = Room {
        tenant_pending: 3,
        max_pending_per_tenant: 3,
        ..ROOMY
    };
    match store.submit(job("t", Some("x"), "B", 2), tenant_at_cap) {
        Err(SubmitError::Full { message, .. }) => assert!(
            message.contains("tenant 't' holds 3")
                && message.contains("jobs.max_pending_per_tenant = 3"),
            "{message}"
        ),
        other => panic!("expected full, got {other:?}"),
    }
    // Counted bytes over the cap, with no measuring allowed.
    let bytes = Room {
        used_bytes: (1 << 20) - 10,
        max_store_bytes: 1 << 20,
        may_measure: false,
        ..ROOMY
    };
    assert!(matches!(
        store.submit(job("t", None, "B", 2), bytes),
        Err(SubmitError::Full { measured: None, .. })
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

/// The byte cap is redb's allocation: bodies of 300 KB take 512 KiB each in the file (redb
/// rounds a large value's pages up to a power of two), so a 4 MiB cap holds 7 of them (not the
/// 13 their bytes would suggest), and the file's disk use stays within the cap.
#[test]
fn the_byte_cap_counts_what_redb_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::open(dir.path()).unwrap();
    let cap = 4u64 << 20;
    let body = "x".repeat(300_000);
    let mut used = store.measure().unwrap();
    let mut accepted = 0;
    for n in 0..20 {
        let room = Room {
            pending: accepted,
            used_bytes: used,
            max_store_bytes: cap,
            ..ROOMY
        };
        match store.submit(job("t", None, &body, n), room) {
            Ok(submitted) => {
                accepted += 1;
                used = submitted
                    .measured
                    .unwrap_or(used + submitted.record.stored_bytes);
            }
            Err(SubmitError::Full { message, measured }) => {
                assert!(message.contains("jobs.max_store_bytes"), "{message}");
                assert!(measured.is_some_and(|m| m > cap), "{measured:?}");
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let on_disk = std::fs::metadata(dir.path().join(STORE_FILE)).unwrap();
    let allocated = store.measure().unwrap();
    println!(
        "cap {cap}: {accepted} bodies of 300000 bytes; allocated {allocated}, file length {}, \
         on disk {}",
        on_disk.len(),
        on_disk.blocks() * 512
    );
    assert_eq!(
        accepted, 7,
        "bodies of 512 KiB each, records and B-trees beside"
    );
    assert!(
        allocated <= cap && allocated > cap - (1 << 20),
        "{allocated}"
    );
    // What the file takes on disk: the cap, and the pages of the last transactions' copies.
    assert!(
        on_disk.blocks() * 512 <= cap + (256 << 10),
        "{}",
        on_disk.blocks() * 512
    );
    // The job counts agree with redb within the leaves' slack.
    assert_eq!(value_cost(300_000), 512 << 10);
}

/// A job holds room for its result while live: what the live jobs' results may take counts
/// against the cap beside what the file holds.
#[test]
fn results_have_room_kept_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::open(dir.path()).unwrap();
    let with_result = |n| NewJob {
        result_reserve: 600_000,
        ..job("t", None, "x", n)
    };
    let first = store.submit(with_result(1), ROOMY).unwrap();
    assert_eq!(first.record.result_reserve, 600_000);
    assert_eq!(reserve_cost(600_000), 1 << 20);
    // 1 MiB held for live results, 1 MiB asked: a 2.5 MiB cap with 1 MiB used refuses it.
    let tight = Room {
        used_bytes: 1 << 20,
        reserved_bytes: 1 << 20,
        max_store_bytes: 5 << 19,
        may_measure: false,
        ..ROOMY
    };
    match store.submit(with_result(2), tight) {
        Err(SubmitError::Full { message, .. }) => {
            assert!(
                message.contains("results it must keep room for"),
                "{message}"
            )
        }
        other => panic!("expected full, got {other:?}"),
    }
    // Without the reserve it fits.
    assert!(store.submit(job("t", None, "x", 3), tight).is_ok());
    let recovered = store.recover(&none()).unwrap();
    assert_eq!(recovered.reserved_bytes, 1 << 20);
    // A finished job gives its reserve back (the service's count: `Queues::account`).
    store.take(1, 4).unwrap().unwrap();
    let done = store
        .finish(
            1,
            &[JobStatus::Running],
            JobStatus::Succeeded,
            Some(b"{}"),
            None,
            5,
        )
        .unwrap()
        .unwrap();
    assert_eq!(done.record.result_reserve, 600_000);
    assert_eq!(store.recover(&none()).unwrap().reserved_bytes, 0);
}

#[test]
fn reopening_puts_running_jobs_back_to_pending_in_submit_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = JobStore::open(dir.path()).unwrap();
        for n in 0..5 {
            store
                .submit(job("t", None, &format!("{n}"), n), ROOMY)
                .unwrap();
        }
        store.take(2, 10).unwrap().unwrap();
        store.take(3, 10).unwrap().unwrap();
        store.take(5, 10).unwrap().unwrap();
        store
            .finish(3, &[JobStatus::Running], JobStatus::Failed, None, None, 11)
            .unwrap()
            .unwrap();
    }
    let store = JobStore::open(dir.path()).unwrap();
    // Job 5's run still goes on (a re-open in the same process): it stays RUNNING.
    let recovered = store.recover(&HashSet::from([5])).unwrap();
    assert_eq!(recovered.requeued, 1);
    assert!(recovered.allocated_bytes > 0);
    let seqs: Vec<u64> = recovered.pending.iter().map(|r| r.id.seq).collect();
    assert_eq!(seqs, [1, 2, 4]);
    assert_eq!(status(&store, 2), JobStatus::Pending);
    assert_eq!(status(&store, 5), JobStatus::Running);
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

/// A full disk: the submit that meets it is refused `Unavailable` (nothing accepted), every
/// later call on that handle too (redb's rule); closed and opened again once there is room,
/// the store holds exactly what was accepted, and the job that was running is PENDING again.
#[test]
fn a_full_disk_makes_the_store_unavailable_until_it_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(faulty::Disk::default());
    let store = faulty::open(dir.path(), &disk).unwrap();
    let first = store.submit(job("t", None, "A", 1), ROOMY).unwrap();
    store.submit(job("t", Some("k"), "B", 2), ROOMY).unwrap();
    store.take(first.record.id.seq, 3).unwrap().unwrap();
    disk.set_full(true);
    let refused = store.submit(job("t", None, "C", 4), ROOMY);
    match refused {
        Err(SubmitError::Store(err)) => {
            assert!(err.is_unavailable(), "{err}");
            assert!(err.to_string().contains("No space left"), "{err}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // Room again, but the handle stays refused: it must be opened again.
    disk.set_full(false);
    let after = store.submit(job("t", None, "D", 5), ROOMY);
    assert!(
        matches!(&after, Err(SubmitError::Store(e)) if e.is_unavailable()),
        "{after:?}"
    );
    // (Reads may still be answered from redb's cache; the service does not rely on it.)
    drop(store);
    let store = faulty::open(dir.path(), &disk).unwrap();
    let recovered = store.recover(&none()).unwrap();
    let seqs: Vec<u64> = recovered.pending.iter().map(|r| r.id.seq).collect();
    assert_eq!((seqs, recovered.requeued), (vec![1, 2], 1));
    // The refused submits left nothing: the next seq is 3, and the key still replays.
    assert_eq!(
        store
            .submit(job("t", None, "E", 6), ROOMY)
            .unwrap()
            .record
            .id
            .seq,
        3
    );
    let replay = store.submit(job("t", Some("k"), "B", 7), ROOMY).unwrap();
    assert_eq!((replay.created, replay.record.id.seq), (false, 2));
    assert!(disk.refused.load(std::sync::atomic::Ordering::Relaxed) > 0);
}
