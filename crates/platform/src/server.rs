//! The one HTTP server of every listener (the all-in-one, each `serve`
//! process, the gateway, the management port). `axum::serve` has no
//! header, body or idle timeout and no connection cap, so a client that
//! trickles its headers, or many idle sockets, held file descriptors until
//! everyone else was locked out. Here each connection holds a permit (none
//! left: the next connection waits in the kernel's backlog), its headers
//! must arrive within `header_read` (hyper starts that clock whenever it
//! waits for a request, so it also ends an idle keep-alive connection), a
//! request body must arrive within `body_read`, and a connection on which
//! no byte moved for `idle` while no request was being handled is closed.
//! An answer that streams (SSE) is not cut: its keep-alive comments move
//! bytes, and the timeouts bound reading the request, not writing answers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long a client may take, and how many may be connected at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// From waiting for a request to its last header line.
    pub header_read: Duration,
    /// From the request's headers to the last byte of its body.
    pub body_read: Duration,
    /// No byte read or written and no request being handled.
    pub idle: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// After shutdown, how long open connections may finish their answers.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_connections: default_max_connections(open_file_limit()),
            drain: Duration::from_secs(10),
        }
    }
}

/// Three quarters of the open-file limit (768 under the common 1,024): the
/// last quarter stays for everything but clients (databases, the broker,
/// calls to peers, the gateway's upstream connections, logs).
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let limit = open_files.unwrap_or(1024);
    (limit / 4 * 3).clamp(16, 16_384) as usize
}

/// The soft limit on open files (`ulimit -n`), where the system says it.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// connections finish for at most `limits.drain`. Handlers may extract
/// `ConnectInfo<SocketAddr>`, as with `into_make_service_with_connect_info`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before it
                    // was taken: neither ends the server.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            stream,
            peer,
            app.clone(),
            limits.clone(),
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    stop_tx.send_replace(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain period are closed"
        );
        connections.shutdown().await;
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = activity.busy();
            let body_read = limits.body_read;
            let app = app.clone();
            async move {
                let _busy = busy;
                let mut req = req.map(|body| Body::new(Deadlined::new(body, body_read)));
                req.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(req).await
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%e, "connection ended");
                }
                return;
            }
            changed = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    // Ends the connection once the answer in progress is
                    // written; an idle connection ends now.
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = activity.idle_for(limits.idle) => {
                tracing::debug!("idle connection closed");
                return;
            }
        }
    }
}

/// When bytes last moved on a connection and how many of its requests are
/// being handled.
#[derive(Clone)]
struct Activity {
    inner: Arc<ActivityInner>,
}

struct ActivityInner {
    started: Instant,
    last_ms: AtomicU64,
    handling: AtomicUsize,
}

struct Busy(Arc<ActivityInner>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ActivityInner {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            inner: Arc::new(ActivityInner {
                started: Instant::now(),
                last_ms: AtomicU64::new(0),
                handling: AtomicUsize::new(0),
            }),
        }
    }

    fn busy(&self) -> Busy {
        self.inner.handling.fetch_add(1, Ordering::SeqCst);
        Busy(self.inner.clone())
    }

    /// Resolves once nothing moved for `limit` while no request was being
    /// handled.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.inner.started
                + Duration::from_millis(self.inner.last_ms.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= limit && self.inner.handling.load(Ordering::SeqCst) == 0 {
                return;
            }
            let wait = limit.saturating_sub(quiet).max(Duration::from_millis(100));
            tokio::time::sleep(wait).await;
        }
    }
}

/// The socket, noting each byte that moves.
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl Watched {
    fn moved<T>(&self, poll: &Poll<io::Result<T>>) {
        if matches!(poll, Poll::Ready(Ok(_))) {
            self.activity.inner.touch();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.moved(&poll);
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that must arrive whole by a deadline, counted from its
/// headers: a body trickled a byte at a time cannot hold a connection (and
/// a place in the admission gate) for as long as the client likes.
struct Deadlined {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl Deadlined {
    fn new(inner: Incoming, within: Duration) -> Deadlined {
        Deadlined {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

/// The error a body that missed its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl hyper::body::Body for Deadlined {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_process() {
        assert_eq!(default_max_connections(Some(1024)), 768);
        assert_eq!(default_max_connections(None), 768);
        assert_eq!(default_max_connections(Some(256)), 192);
        assert_eq!(default_max_connections(Some(20)), 16);
        assert_eq!(default_max_connections(Some(u64::MAX)), 16_384);
        assert_eq!(default_max_connections(Some(65_536)), 16_384);
        assert_eq!(default_max_connections(Some(4096)), 3072);
    }

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn quick() -> Limits {
        Limits {
            header_read: Duration::from_millis(300),
            body_read: Duration::from_millis(300),
            idle: Duration::from_millis(400),
            max_connections: 4,
            drain: Duration::from_secs(1),
        }
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
        let mut out = Vec::new();
        let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
        match read {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        }
    }

    /// Sends `GET path` and reads the answer until the server closes.
    async fn ask(stream: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        until_closed(stream, Duration::from_secs(3))
            .await
            .expect("answer")
    }

    #[tokio::test]
    async fn handlers_learn_the_peer_address() {
        let (addr, _stop) = start(quick()).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let local = s.local_addr().expect("local");
        let answer = ask(&mut s, "/peer").await;
        assert!(answer.ends_with(&local.to_string()), "{answer}");
    }

    #[tokio::test]
    async fn trickled_headers_are_cut_at_the_header_timeout() {
        let (addr, _stop) = start(quick()).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        let closed = async {
            for b in b"GET /peer HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = until_closed(&mut s, Duration::from_secs(2)).await;
        };
        closed.await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "the connection stayed open {took:?}"
        );
    }

    #[tokio::test]
    async fn a_trickled_body_is_refused_at_the_body_timeout() {
        let (addr, _stop) = start(quick()).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab")
            .await
            .expect("send");
        let started = Instant::now();
        let answer = until_closed(&mut s, Duration::from_secs(2)).await;
        let answer = answer.expect("the connection ends");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_a_slow_streaming_answer_is_not() {
        let limits = Limits {
            header_read: Duration::from_secs(5),
            ..quick()
        };
        let app = Router::new().route(
            "/stream",
            get(|| async {
                let ticks = futures::stream::unfold(0, |n| async move {
                    (n < 6).then_some(())?;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, io::Error>(Bytes::from("tick\n")), n + 1))
                });
                Body::from_stream(ticks)
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, app, limits, std::future::pending()));
        // Connected, nothing sent: closed after the idle period, before
        // the (longer) header timeout.
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        until_closed(&mut idle, Duration::from_secs(3))
            .await
            .expect("closed");
        assert!(started.elapsed() < Duration::from_secs(2));
        // An answer streaming for 1.2 s, a tick every 0.2 s, outlives the
        // 0.4 s idle period: bytes keep moving.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let answer = ask(&mut s, "/stream").await;
        assert_eq!(answer.matches("tick").count(), 6, "{answer}");
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_and_are_served_once_a_place_frees() {
        let (addr, _stop) = start(Limits {
            max_connections: 2,
            header_read: Duration::from_secs(1),
            idle: Duration::from_secs(5),
            ..quick()
        })
        .await;
        let _a = TcpStream::connect(addr).await.expect("a");
        let _b = TcpStream::connect(addr).await.expect("b");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let mut c = TcpStream::connect(addr).await.expect("c");
        let answer = ask(&mut c, "/peer").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Served only once the two silent ones were cut at the header timeout.
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
    }
}
