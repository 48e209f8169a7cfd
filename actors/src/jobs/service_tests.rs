//! `JobService`'s tests: per-tenant shares (and their rebuild at open), and a full disk: every
//! call answers `store_unavailable` with `Retry-After`, the workers stop, the store re-opens by
//! itself once there is room, a run in flight across the re-open settles once, nothing accepted
//! is lost.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;

use super::*;
use crate::jobs::faulty;
use crate::jobs::store::ListFilter;
use crate::jobs::workers::REOPEN_MAX;
use crate::{LoadOptions, Runtime};

fn settings(dir: &Path) -> JobSettings {
    JobSettings {
        max_pending: 10,
        max_pending_per_tenant: 2,
        ..JobSettings::at(dir)
    }
}

fn submission(tenant: &str, n: u32) -> NewSubmission {
    NewSubmission {
        tenant: tenant.into(),
        key: VersionKey::new("m".to_string(), "1".to_string()),
        kind: JobKind::Predict,
        body_format: 1,
        idempotency_key: None,
        body: format!("body {n}").into_bytes(),
        result_reserve: 0,
    }
}

fn gauge(registry: &Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .find(|family| family.name() == name)
        .and_then(|family| {
            family
                .get_metric()
                .first()
                .map(|m| m.get_gauge().get_value())
        })
        .unwrap_or(f64::NAN)
}

#[actix::test]
async fn each_tenant_has_its_own_share_of_the_pending_jobs() {
    let repository = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let metrics = Metrics::register(&registry, true).unwrap();
    let runtime = Runtime::start(repository.path().to_path_buf(), metrics.clone());
    let jobs = JobService::open(
        settings(store.path()),
        runtime.service.clone(),
        metrics.clone(),
    )
    .unwrap();
    let a1 = jobs.submit(submission("a", 1)).await.unwrap();
    jobs.submit(submission("a", 2)).await.unwrap();
    let refused = jobs.submit(submission("a", 3)).await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::StoreFull);
    assert_eq!(refused.retry_after(), Some(STORE_FULL_RETRY));
    assert!(
        refused.to_string().contains(
            "tenant 'a' holds 2 pending jobs, its share (jobs.max_pending_per_tenant = 2)"
        ),
        "{refused}"
    );
    // Another tenant still submits.
    jobs.submit(submission("b", 1)).await.unwrap();
    // A cancel gives the share back.
    jobs.cancel("a", &a1.record.id.to_string()).await.unwrap();
    jobs.submit(submission("a", 4)).await.unwrap();
    assert_eq!(jobs.pending(), 3);
    drop(jobs);
    // Rebuilt at open: `a` is at its share again.
    let jobs = JobService::open(settings(store.path()), runtime.service.clone(), metrics).unwrap();
    assert_eq!(jobs.pending(), 3);
    let err = jobs.submit(submission("a", 5)).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::StoreFull);
    jobs.submit(submission("b", 2)).await.unwrap();
}

/// Answers each job once released; tells which jobs it was handed.
struct Gate {
    started: tokio::sync::mpsc::UnboundedSender<JobId>,
    release: Arc<tokio::sync::Semaphore>,
}

impl JobRunner for Gate {
    fn run(&self, job: JobToRun) -> RunFuture {
        let _ = self.started.send(job.id);
        let release = self.release.clone();
        Box::pin(async move {
            let permit = release
                .acquire()
                .await
                .map_err(|e| (ErrorType::Internal, e.to_string()))?;
            permit.forget();
            Ok(format!("{{\"attempt\":{}}}", job.attempt).into_bytes())
        })
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[actix::test]
async fn a_full_disk_answers_unavailable_and_the_store_reopens_by_itself() {
    let repository = tempfile::tempdir().unwrap();
    let version = repository.path().join("m").join("1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(
        version.join("model.toml"),
        "architecture = \"fake-echo\"\n[input]\nname = \"x\"\nshape = [2]\n[output]\nname = \"y\"\nshape = [2]\n",
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let metrics = Metrics::register(&registry, true).unwrap();
    let runtime = Runtime::start(repository.path().to_path_buf(), metrics.clone());
    runtime
        .control
        .load("m", "1", LoadOptions::default())
        .await
        .unwrap();
    let disk = Arc::new(faulty::Disk::default());
    let jobs = JobService::open_with(
        JobSettings {
            max_running_per_version: 1,
            ..settings(store.path())
        },
        runtime.service.clone(),
        metrics,
        faulty::opener(&disk),
    )
    .unwrap();
    let (started, mut handed) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    jobs.start(std::rc::Rc::new(Gate {
        started,
        release: release.clone(),
    }));
    assert_eq!(gauge(&registry, "job_store_available"), 1.0);
    // One job running (held by the gate), one waiting behind it.
    let first = jobs.submit(submission("a", 1)).await.unwrap().record.id;
    let second = jobs.submit(submission("b", 1)).await.unwrap().record.id;
    let running = tokio::time::timeout(Duration::from_secs(10), handed.recv()).await;
    assert_eq!(running.unwrap(), Some(first));

    disk.set_full(true);
    let refused = jobs.submit(submission("c", 1)).await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::StoreUnavailable);
    assert_eq!(refused.retry_after(), Some(STORE_UNAVAILABLE_RETRY));
    assert!(
        refused.to_string().contains("No space left on device"),
        "{refused}"
    );
    let cause = jobs.store_unavailable().expect("unavailable");
    assert!(cause.contains("No space left"), "{cause}");
    assert_eq!(gauge(&registry, "job_store_available"), 0.0);
    // Reads and lists too, and the refusals write nothing to the disk.
    let read = jobs.get("b", &second.to_string()).await.unwrap_err();
    assert_eq!(read.error_type(), ErrorType::StoreUnavailable);
    let filter = ListFilter {
        tenant: "a".into(),
        ..ListFilter::default()
    };
    let listed = jobs.list(filter.clone(), None, 10).await.unwrap_err();
    assert_eq!(listed.error_type(), ErrorType::StoreUnavailable);
    let refused_writes = disk.refused.load(std::sync::atomic::Ordering::Relaxed);
    for n in 0..20 {
        let err = jobs.submit(submission("c", n)).await.unwrap_err();
        assert_eq!(err.error_type(), ErrorType::StoreUnavailable);
    }
    // While down, re-opens are tried (and fail) with backoff; no submit touched the disk.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tries = disk.refused.load(std::sync::atomic::Ordering::Relaxed) - refused_writes;
    println!("{tries} writes refused by re-open tries in 600 ms while down");
    assert!(tries <= 40, "{tries}");
    assert!(jobs.store_unavailable().is_some());

    disk.set_full(false);
    let took = wait_for("the store re-opens", || jobs.store_unavailable().is_none()).await;
    println!("re-opened {took:?} after the disk had room");
    assert!(took < REOPEN_MAX + Duration::from_secs(1), "{took:?}");
    assert_eq!(gauge(&registry, "job_store_available"), 1.0);
    // The run in flight across the re-open settles once (it stayed RUNNING); the waiting job
    // then runs; a new submit is accepted and runs too.
    let third = jobs.submit(submission("c", 99)).await.unwrap().record.id;
    release.add_permits(3);
    let mut results = Vec::new();
    for (tenant, id) in [("a", first), ("b", second), ("c", third)] {
        let mut record = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let (job, result) = jobs.get(tenant, &id.to_string()).await.unwrap();
            if job.status.is_final() {
                record = Some((job, result));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (job, result) = record.expect("finished");
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        assert_eq!(job.attempts, 1, "{job:?}");
        results.push(String::from_utf8(result.unwrap()).unwrap());
    }
    assert_eq!(results, ["{\"attempt\":1}"; 3]);
    let handed_over = RefCell::new(Vec::new());
    while let Ok(id) = handed.try_recv() {
        handed_over.borrow_mut().push(id);
    }
    assert_eq!(*handed_over.borrow(), [second, third], "each job ran once");
    assert_eq!(jobs.pending(), 0);
    jobs.stop();
}
