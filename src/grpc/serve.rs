//! The gRPC listener: accepts connections up to `grpc.max_connections` (more are closed at once,
//! so a flood of sockets cannot take the descriptors HTTP needs), serves each over HTTP/2 with
//! hyper (tonic's routes behind [`Gate`]), and ends the ones that do nothing: a connection that
//! has not sent the HTTP/2 preface within `grpc.handshake_timeout_ms` is closed; one with no
//! call open for `grpc.idle_timeout_ms` gets a GOAWAY; a peer that stops answering keep-alive
//! PINGs (`grpc.keepalive_interval_ms`, `grpc.keepalive_timeout_ms`) is dropped. Each
//! connection advertises `grpc.max_concurrent_streams`. An accept error (`EMFILE`: the process
//! is out of descriptors) pauses this listener for 100 ms and is logged once per burst, instead
//! of spinning; HTTP's listeners (actix) back off the same way, so neither takes the other down.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use burnserve_actors::log_throttle::LogThrottle;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use super::gate::{Gate, Shared};
use super::ping::PingAckSweeper;
use super::Inference;
use crate::edge::budget::ByteBudget;
use crate::http::AppState;

/// The client's connection preface (`PRI * HTTP/2.0…`), the least a client that speaks has sent.
const PREFACE_LEN: u64 = 24;

/// How long a closing connection (GOAWAY sent) may take to finish its calls at shutdown or after
/// its idle timeout before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// The listener's limits (`[grpc]` settings, with the caps already fitted to the open-file
/// limit by the server's start-up).
#[derive(Debug, Clone)]
pub struct GrpcLimits {
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    pub max_concurrent_calls: usize,
    pub max_connection_body_bytes: usize,
    pub max_header_list_bytes: u32,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// `server.body_timeout_ms`.
    pub body_timeout: Duration,
}

/// The listener's own series: open connections, and connections ended or refused by a limit.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: IntGauge,
    closed: IntCounterVec,
}

/// Why the listener closed or refused a connection (the `reason` label).
pub const CLOSE_REASONS: [&str; 4] = ["at_capacity", "handshake_timeout", "idle", "accept_error"];

impl ConnectionMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGauge::new("grpc_connections", "Open connections to the gRPC listener")?;
        let closed = IntCounterVec::new(
            Opts::new(
                "grpc_connections_closed_total",
                "gRPC connections the listener refused or closed for a limit: at_capacity \
                 (grpc.max_connections), handshake_timeout, idle, accept_error (e.g. EMFILE)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        for reason in CLOSE_REASONS {
            closed.with_label_values(&[reason]);
        }
        Ok(Self { open, closed })
    }

    fn closed(&self, reason: &str) {
        self.closed.with_label_values(&[reason]).inc();
    }
}

/// Microseconds since the process's first look, plus one.
fn clock_us() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_micros() as u64 + 1
}

/// One accepted connection as the gate and the idle check see it.
pub struct Connection {
    pub peer: Option<SocketAddr>,
    /// `grpc.max_connection_body_bytes`.
    pub body_budget: Arc<ByteBudget>,
    read: AtomicU64,
    open_calls: AtomicUsize,
    /// [`clock_us`] when the last call ended (or the connection was accepted).
    quiet_since_us: AtomicU64,
}

impl Connection {
    fn new(peer: Option<SocketAddr>, body_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            peer,
            body_budget: ByteBudget::new(body_bytes),
            read: AtomicU64::new(0),
            open_calls: AtomicUsize::new(0),
            quiet_since_us: AtomicU64::new(clock_us()),
        })
    }

    /// Counts a call open until the guard is dropped.
    pub fn call_started(self: &Arc<Self>) -> OpenCall {
        self.open_calls.fetch_add(1, Ordering::AcqRel);
        OpenCall(self.clone())
    }

    fn has_spoken(&self) -> bool {
        self.read.load(Ordering::Acquire) >= PREFACE_LEN
    }

    /// How long no call has been open; `None` while one is.
    fn idle_for(&self) -> Option<Duration> {
        if self.open_calls.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.quiet_since_us.load(Ordering::Acquire);
        Some(Duration::from_micros(clock_us().saturating_sub(since)))
    }
}

/// A call open on a connection (see [`Connection::call_started`]).
pub struct OpenCall(Arc<Connection>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.quiet_since_us.store(clock_us(), Ordering::Release);
        self.0.open_calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's stream, counting what the client has sent.
struct Watched<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 && !this.connection.has_spoken() {
            this.connection
                .read
                .fetch_add(read as u64, Ordering::AcqRel);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A running gRPC listener: where, and how to stop it.
pub struct GrpcServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GrpcServer {
    /// Stops taking calls and lets those in flight finish (health answers NOT_SERVING first).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until the listener has stopped.
    pub fn join(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every connection task of a listener shares.
struct Listener {
    routes: tonic::service::Routes,
    shared: Arc<Shared>,
    http2: http2::Builder<TokioExecutor>,
    limits: GrpcLimits,
    metrics: ConnectionMetrics,
    sweeper: PingAckSweeper,
}

/// Binds `host:port` now (so a taken port fails start-up) and serves on a thread with its own
/// tokio runtime.
pub fn start(
    host: &str,
    port: u16,
    state: AppState,
    limits: GrpcLimits,
    body_budget: Arc<ByteBudget>,
    metrics: ConnectionMetrics,
) -> std::io::Result<GrpcServer> {
    let listener = std::net::TcpListener::bind((host, port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("grpc")
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("grpc".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::error!(error = %err, "gRPC listener failed");
                        return;
                    }
                };
                serve(listener, state, limits, body_budget, metrics, stopped).await;
            });
        })?;
    tracing::info!(%addr, "serving KServe v2 gRPC");
    Ok(GrpcServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn routes(state: AppState, max_message_bytes: usize) -> (tonic::service::Routes, HealthReporter) {
    use super::proto::grpc_inference_service_server::GrpcInferenceServiceServer;
    let (reporter, health) = tonic_health::server::health_reporter();
    let service = GrpcInferenceServiceServer::new(Inference::new(state))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let routes = tonic::service::Routes::new(health).add_service(service);
    (routes, HealthReporter(reporter))
}

/// grpc.health.v1's view of the inference service.
struct HealthReporter(tonic_health::server::HealthReporter);

impl HealthReporter {
    async fn serving(&self, serving: bool) {
        use super::proto::grpc_inference_service_server::GrpcInferenceServiceServer;
        type Served = GrpcInferenceServiceServer<Inference>;
        if serving {
            self.0.set_serving::<Served>().await;
        } else {
            self.0.set_not_serving::<Served>().await;
        }
    }
}

async fn serve(
    tcp: tokio::net::TcpListener,
    state: AppState,
    limits: GrpcLimits,
    body_budget: Arc<ByteBudget>,
    metrics: ConnectionMetrics,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let (routes, health) = routes(state.clone(), limits.max_message_bytes);
    health.serving(true).await;
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_bytes)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    let sweeper = PingAckSweeper::default();
    tokio::spawn(sweeper.clone().run());
    let listener = Arc::new(Listener {
        routes,
        shared: Arc::new(Shared {
            state,
            body_budget,
            calls: ByteBudget::new(limits.max_concurrent_calls),
            body_timeout: limits.body_timeout,
            anonymous: Arc::from(burnserve_actors::ANONYMOUS),
        }),
        http2,
        limits: limits.clone(),
        metrics: metrics.clone(),
        sweeper,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_seen) = watch::channel(false);
    let accept_errors = LogThrottle::new(1, Duration::from_secs(10));
    let at_capacity = LogThrottle::new(1, Duration::from_secs(10));
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            accepted = tcp.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Closed at once: the client sees a reset, not a hang, and no descriptor is
                    // held for it.
                    drop(stream);
                    metrics.closed("at_capacity");
                    if let Some(held_back) = at_capacity.admit() {
                        tracing::warn!(
                            max = limits.max_connections,
                            held_back,
                            "gRPC connection refused: grpc.max_connections are open"
                        );
                    }
                    continue;
                };
                let listener = listener.clone();
                let closing = closing_seen.clone();
                tokio::spawn(async move {
                    listener.metrics.open.inc();
                    serve_connection(&listener, stream, peer, closing).await;
                    listener.metrics.open.dec();
                    drop(slot);
                });
            }
            Err(err) => {
                metrics.closed("accept_error");
                if let Some(held_back) = accept_errors.admit() {
                    tracing::error!(error = %err, held_back,
                        "gRPC listener cannot accept (out of descriptors?); pausing it 100 ms");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(tcp);
    health.serving(false).await;
    let _ = closing.send(true);
    // Every connection task holds a slot until it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Serves one connection until it ends, closing it when it breaks a limit.
async fn serve_connection(
    listener: &Listener,
    stream: TcpStream,
    peer: SocketAddr,
    mut closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let limits = &listener.limits;
    let connection = Connection::new(Some(peer), limits.max_connection_body_bytes);
    let io = Watched {
        inner: listener.sweeper.wrap(stream),
        connection: connection.clone(),
    };
    let gate = Gate {
        routes: listener.routes.clone(),
        shared: listener.shared.clone(),
        connection: connection.clone(),
    };
    let conn = listener.http2.serve_connection(TokioIo::new(io), gate);
    let mut conn = std::pin::pin!(conn);
    let check = tokio::time::sleep(limits.handshake_timeout);
    let mut check = std::pin::pin!(check);
    let mut goaway_at: Option<Instant> = None;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!(error = %err, "gRPC connection ended");
                }
                return;
            }
            changed = closing.changed(), if goaway_at.is_none() => {
                if changed.is_err() || *closing.borrow() {
                    conn.as_mut().graceful_shutdown();
                    goaway_at = Some(Instant::now());
                    check.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
            }
            () = check.as_mut() => {
                if let Some(since) = goaway_at {
                    if since.elapsed() >= CLOSE_GRACE {
                        return;
                    }
                    check.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                    continue;
                }
                if !connection.has_spoken() {
                    listener.metrics.closed("handshake_timeout");
                    return;
                }
                match connection.idle_for() {
                    Some(idle) if idle >= limits.idle_timeout => {
                        listener.metrics.closed("idle");
                        conn.as_mut().graceful_shutdown();
                        goaway_at = Some(Instant::now());
                        check.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                    Some(idle) => check
                        .as_mut()
                        .reset(tokio::time::Instant::now() + (limits.idle_timeout - idle)),
                    None => check
                        .as_mut()
                        .reset(tokio::time::Instant::now() + limits.idle_timeout),
                }
            }
        }
    }
}
