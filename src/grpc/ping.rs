//! The gRPC listener's connections: a TCP stream that sends a lone HTTP/2 PING ACK with the
//! connection's next write instead of on its own.
//!
//! gRPC clients estimate bandwidth-delay with PINGs (grpc-go, which k6 uses, and grpc's C core,
//! which tritonclient uses): after each DATA frame they receive, they send one when none is
//! outstanding, so a unary call answered is followed by a PING and a request on the same
//! connection. h2 answers the PING at once: a 17-byte write, as many as the answers (half the
//! listener's writes), each ~5 µs of server CPU on loopback (the sender's core also runs the
//! receiver's TCP input; `benches/protocols.sh`, gRPC at one fixed rate). [`PingCoalescingStream`] holds such a write (PING
//! ACK frames and nothing else) until the next write, which carries it first, or for at most
//! [`MAX_PING_ACK_HOLD`] when nothing else is written. Anything else is written at once, the
//! held ACKs ahead of it; the order of bytes on the wire is unchanged. A client whose window
//! grows with its PINGs (large answers) keeps the server writing, so its ACKs are not held long.
//!
//! What waited its longest is sent when the connection's task next runs; a [`PingAckSweeper`]
//! (one task per listener, every half hold) wakes the tasks of those that hold an ACK that long.
//! A timer per connection would wake the runtime per answer: armed per hold, the timer driver
//! fires at the first deadline set, and that cost as much as the ACKs saved.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Longest a PING ACK waits for company. Far below any keep-alive timeout (grpc's default is
/// 20 s), above a busy server's answer time (so the next answer carries it).
pub const MAX_PING_ACK_HOLD: Duration = Duration::from_millis(50);

/// How often the sweeper looks, and how long an ACK waits before the next look sends it.
const SWEEP_EVERY: Duration = Duration::from_millis(25);

/// An HTTP/2 PING frame with the ACK flag: 9-byte header (length 8, type 6, flags 1, stream 0)
/// and the 8-byte payload echoed.
const PING_ACK_LEN: usize = 17;
const PING_ACK_HEADER: [u8; 9] = [0, 0, 8, 6, 1, 0, 0, 0, 0];

/// Most bytes held: a few PING ACKs (one is the usual case).
const MAX_HELD: usize = 4 * PING_ACK_LEN;

/// Microseconds since the process's first look at the clock, plus one (0: nothing held).
fn clock_us() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_micros() as u64 + 1
}

/// What a connection holds, as the sweeper sees it.
#[derive(Default)]
struct HoldState {
    /// [`clock_us`] when the oldest held ACK was held; 0 when nothing is.
    since_us: AtomicU64,
    /// The connection's task, woken when its ACKs have waited long enough.
    task: AtomicWaker,
}

impl HoldState {
    fn waited(&self, now_us: u64) -> Option<Duration> {
        match self.since_us.load(Ordering::Acquire) {
            0 => None,
            since => Some(Duration::from_micros(now_us.saturating_sub(since))),
        }
    }
}

/// Wakes the connections whose PING ACKs waited [`SWEEP_EVERY`] (see the module's note).
#[derive(Clone, Default)]
pub struct PingAckSweeper {
    connections: Arc<Mutex<Vec<Weak<HoldState>>>>,
    connected: Arc<Notify>,
}

impl PingAckSweeper {
    /// Wraps an accepted connection.
    pub fn wrap(&self, stream: TcpStream) -> PingCoalescingStream {
        let hold = Arc::new(HoldState::default());
        self.lock().push(Arc::downgrade(&hold));
        self.connected.notify_one();
        PingCoalescingStream {
            inner: stream,
            held: Vec::with_capacity(MAX_HELD),
            hold,
        }
    }

    /// Runs until dropped with its runtime: every [`SWEEP_EVERY`] while connections are open.
    pub async fn run(self) {
        loop {
            if self.sweep() == 0 {
                self.connected.notified().await;
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    }

    /// Wakes those that waited; forgets closed connections. Returns how many are open.
    fn sweep(&self) -> usize {
        let now = clock_us();
        let mut connections = self.lock();
        connections.retain(|connection| {
            let Some(hold) = connection.upgrade() else {
                return false;
            };
            if hold.waited(now).is_some_and(|waited| waited >= SWEEP_EVERY) {
                hold.task.wake();
            }
            true
        });
        connections.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<HoldState>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A TCP stream that holds lone PING ACKs until the next write (see the module's note).
pub struct PingCoalescingStream {
    inner: TcpStream,
    /// Whole PING ACK frames not yet written.
    held: Vec<u8>,
    hold: Arc<HoldState>,
}

impl PingCoalescingStream {
    /// Writes out what is held; `Pending` until all of it has gone.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..written);
        }
        self.hold.since_us.store(0, Ordering::Release);
        Poll::Ready(Ok(()))
    }

    /// Writes out what has waited [`SWEEP_EVERY`] (the sweeper woke this task for it, or it
    /// runs anyway); else leaves the task's waker for the sweeper.
    fn poll_hold_expiry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.held.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if self
            .hold
            .waited(clock_us())
            .is_some_and(|waited| waited >= SWEEP_EVERY)
        {
            return self.poll_write_held(cx);
        }
        self.hold.task.register(cx.waker());
        Poll::Ready(Ok(()))
    }

    /// Holds `bufs` when they are whole PING ACK frames and nothing else, with room left.
    fn try_hold(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Option<usize> {
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        if total == 0 || !total.is_multiple_of(PING_ACK_LEN) || self.held.len() + total > MAX_HELD {
            return None;
        }
        let mut frames = [0u8; MAX_HELD];
        let mut at = 0;
        for buf in bufs {
            frames[at..at + buf.len()].copy_from_slice(buf);
            at += buf.len();
        }
        let frames = &frames[..total];
        if !frames
            .chunks_exact(PING_ACK_LEN)
            .all(|frame| frame[..PING_ACK_HEADER.len()] == PING_ACK_HEADER)
        {
            return None;
        }
        if self.held.is_empty() {
            self.hold.task.register(cx.waker());
            self.hold.since_us.store(clock_us(), Ordering::Release);
        }
        self.held.extend_from_slice(frames);
        Some(total)
    }
}

impl AsyncRead for PingCoalescingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Pending: the socket is full, and its readiness wakes this task to try again.
        if let Poll::Ready(Err(err)) = this.poll_hold_expiry(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PingCoalescingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(held) = this.try_hold(cx, bufs) {
            return Poll::Ready(Ok(held));
        }
        // The held frames go first, in the same system call.
        while !this.held.is_empty() {
            let mut slices = [IoSlice::new(&[]); 8];
            slices[0] = IoSlice::new(&this.held);
            let count = 1 + bufs.len().min(slices.len() - 1);
            slices[1..count].copy_from_slice(&bufs[..count - 1]);
            let written =
                ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if written < this.held.len() {
                this.held.drain(..written);
                continue;
            }
            let beyond = written - this.held.len();
            this.held.clear();
            this.hold.since_us.store(0, Ordering::Release);
            if beyond > 0 {
                return Poll::Ready(Ok(beyond));
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_hold_expiry(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for PingCoalescingStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ping_ack(payload: u8) -> Vec<u8> {
        let mut frame = PING_ACK_HEADER.to_vec();
        frame.extend_from_slice(&[payload; 8]);
        frame
    }

    /// A sweeper running on this test's runtime.
    fn sweeper() -> PingAckSweeper {
        let sweeper = PingAckSweeper::default();
        tokio::spawn(sweeper.clone().run());
        sweeper
    }

    /// The server side wrapped, and the client's end of the same connection.
    async fn pair() -> (PingCoalescingStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (sweeper().wrap(server), client)
    }

    /// What the client can read within `wait`.
    async fn read_within(client: &mut TcpStream, wait: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Ok(n)) = tokio::time::timeout_at(until, client.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test]
    async fn a_lone_ping_ack_goes_out_first_with_the_next_write() {
        let (mut server, mut client) = pair().await;
        server.write_all(&ping_ack(1)).await.expect("held");
        server.flush().await.expect("flush");
        assert_eq!(server.held.len(), PING_ACK_LEN);
        assert!(read_within(&mut client, Duration::from_millis(5))
            .await
            .is_empty());
        let answer = b"an answer's frames";
        server.write_all(answer).await.expect("write");
        assert!(server.held.is_empty());
        let mut expected = ping_ack(1);
        expected.extend_from_slice(answer);
        let got = read_within(&mut client, Duration::from_millis(200)).await;
        assert_eq!(
            got, expected,
            "the ACK first, then the answer, nothing lost"
        );
    }

    #[tokio::test]
    async fn a_held_ping_ack_goes_out_alone_after_the_longest_hold() {
        let (mut server, mut client) = pair().await;
        let started = Instant::now();
        server.write_all(&ping_ack(2)).await.expect("held");
        server.write_all(&ping_ack(3)).await.expect("held too");
        assert_eq!(server.held.len(), 2 * PING_ACK_LEN);
        // The connection's task keeps reading, as h2's does; the hold's timer wakes it.
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let read = server.read(&mut buf).await;
            (server, read.map(|n| buf[..n].to_vec()))
        });
        let mut expected = ping_ack(2);
        expected.extend_from_slice(&ping_ack(3));
        let got = read_within(&mut client, MAX_PING_ACK_HOLD * 10).await;
        assert_eq!(got, expected);
        assert!(started.elapsed() >= SWEEP_EVERY);
        client.write_all(b"next").await.expect("client writes");
        let (server, read) = reading.await.expect("reader");
        assert_eq!(read.expect("read"), b"next");
        assert!(server.held.is_empty());
    }

    #[tokio::test]
    async fn other_frames_are_written_at_once_and_shutdown_sends_what_is_held() {
        let (mut server, mut client) = pair().await;
        // A PING (no ACK flag) and a PING ACK with other frames behind it: not held.
        let mut ping = ping_ack(4);
        ping[4] = 0;
        server.write_all(&ping).await.expect("write");
        assert!(server.held.is_empty());
        let mut mixed = ping_ack(5);
        mixed.extend_from_slice(b"window update");
        server.write_all(&mixed).await.expect("write");
        assert!(server.held.is_empty());
        let mut expected = ping.clone();
        expected.extend_from_slice(&mixed);
        assert_eq!(
            read_within(&mut client, Duration::from_millis(200)).await,
            expected
        );
        // More ACKs than it holds: the one past the room goes out with the held ones.
        for payload in 0..5 {
            server.write_all(&ping_ack(payload)).await.expect("write");
        }
        assert!(server.held.is_empty());
        let expected: Vec<u8> = (0..5).flat_map(ping_ack).collect();
        assert_eq!(
            read_within(&mut client, Duration::from_millis(200)).await,
            expected
        );
        server.write_all(&ping_ack(6)).await.expect("held");
        assert_eq!(server.held.len(), PING_ACK_LEN);
        server.shutdown().await.expect("shutdown");
        assert_eq!(
            read_within(&mut client, Duration::from_millis(200)).await,
            ping_ack(6)
        );
    }
}
