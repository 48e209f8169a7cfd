//! Graceful shutdown. On SIGTERM or SIGINT readiness (`/ready`, `/v2/health/ready`) answers 503
//! `shutting_down` at once while everything else keeps serving for `server.drain_grace_ms`, with
//! every response closing its connection, so a load balancer sees it and moves away; then the
//! listener stops, the accepted requests are answered, and the process exits 0 within
//! `server.shutdown_timeout_ms`, or gives up, logs how many requests were left, and exits 1.
//! A second signal ends the grace early.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::rt::signal::unix::{signal, SignalKind};

use crate::app::server::RunningServer;

/// Whether the server is draining, and how many requests it is serving.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    inflight: AtomicUsize,
}

/// One request being served; counted until dropped.
pub struct Serving<'a>(&'a Drain);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn begin(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn serving(&self) -> Serving<'_> {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Serving(self)
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Drained: every accepted request was answered.
    Clean,
    /// `shutdown_timeout_ms` passed with requests still in flight.
    GaveUp { left: usize },
}

/// Serves until a signal, then drains and stops (module docs). Must run inside the server's
/// actix system.
pub async fn serve_until_signalled(
    running: RunningServer,
    grace: Duration,
    timeout: Duration,
) -> std::io::Result<Ending> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let drain = running.drain.clone();
    let jobs = running.jobs.clone();
    let mut grpc = running.grpc;
    let mut server = actix_web::rt::spawn(running.server);
    tokio::select! {
        ended = &mut server => {
            ended.map_err(std::io::Error::other)??;
            return Ok(Ending::Clean);
        }
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    let started = Instant::now();
    drain.begin();
    // No job starts during the drain; running ones finish or stay for the next process.
    if let Some(jobs) = &jobs {
        jobs.stop();
    }
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        inflight = drain.inflight(),
        "signal received: readiness answers 503 while draining"
    );
    tokio::select! {
        _ = actix_web::rt::time::sleep(grace) => {}
        _ = terminate.recv() => tracing::info!("second signal: ending the grace early"),
        _ = interrupt.recv() => tracing::info!("second signal: ending the grace early"),
    }
    let stopping = running.handle.stop(true);
    // gRPC stops with HTTP: no new calls; those in flight finish (bounded below with HTTP's).
    if let Some(grpc) = grpc.as_mut() {
        grpc.stop();
    }
    let left_for_stop = timeout.saturating_sub(started.elapsed());
    let stopped = actix_web::rt::time::timeout(left_for_stop, async {
        stopping.await;
        let _ = (&mut server).await;
    })
    .await;
    match stopped {
        Ok(()) => {
            tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                "drained and stopped"
            );
            Ok(Ending::Clean)
        }
        Err(_) => {
            let left = drain.inflight();
            tracing::error!(
                left,
                "shutdown_timeout_ms passed: giving up on requests in flight"
            );
            Ok(Ending::GaveUp { left })
        }
    }
}
