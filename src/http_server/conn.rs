//! One client connection: hyper's HTTP/1.1 state machine, plus a watchdog that closes the
//! connection when the client stays silent past the deadline that applies (see the parent
//! module's docs), and a deadline on request bodies.
//!
//! The watchdog needs to know what the connection is doing. [`Activity`] is told by the socket
//! wrapper ([`Watched`]: bytes read and written), by the service (a request was handed to the
//! router; its response started) and by the response body ([`Tracked`]: the response is done,
//! dropped by hyper after its last byte).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use super::Limits;

/// Serves one connection until it ends, its deadline passes, or shutdown has let it finish.
pub(super) async fn serve(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let body_timeout = limits.body_timeout;
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            let activity = activity.clone();
            async move {
                let in_flight = activity.request_started();
                let req = req.map(|body| Body::new(TimedBody::new(body, body_timeout)));
                let response = match router.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                activity.response_started();
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    // hyper's own header timer stays off (it needs a hyper timer): it would also cut the
    // keep-alive wait to the header timeout. The watchdog below times both.
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&limits);
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = expiry => {
                if activity.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(
                        waiting_for = activity.waiting_for(),
                        "closing an HTTP connection whose client went quiet"
                    );
                    return;
                }
            }
            () = activity.changed.notified() => {}
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What the connection is doing, as far as deadlines care.
struct Activity {
    state: Mutex<State>,
    /// Woken when the applicable deadline may have moved earlier or appeared.
    changed: Notify,
}

struct State {
    accepted: Instant,
    /// Requests whose responses are complete.
    served: u64,
    /// A request is with the router, or its response is being sent.
    busy: bool,
    /// The router has answered; the response is being sent.
    responding: bool,
    /// When the connection last became free for a new request.
    free_since: Instant,
    /// The first byte read while free: the next request's head has begun.
    head_began: Option<Instant>,
    /// The last byte read or written.
    last_io: Instant,
}

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        Activity {
            state: Mutex::new(State {
                accepted: now,
                served: 0,
                busy: false,
                responding: false,
                free_since: now,
                head_began: None,
                last_io: now,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed unless something happens; `None` while a handler
    /// works on a request.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let s = self.state();
        if s.busy {
            return s.responding.then(|| s.last_io + limits.idle_timeout);
        }
        if s.served == 0 {
            return Some(s.accepted + limits.header_timeout);
        }
        Some(match s.head_began {
            Some(began) => began + limits.header_timeout,
            None => s.free_since + limits.idle_timeout,
        })
    }

    /// For the log: what a connection closed by its deadline was waiting for.
    fn waiting_for(&self) -> &'static str {
        let s = self.state();
        match (s.busy, s.served, s.head_began) {
            (true, _, _) => "the client to read the response",
            (false, 0, _) | (false, _, Some(_)) => "request headers",
            (false, _, None) => "another request (idle keep-alive)",
        }
    }

    fn read(&self) {
        let now = Instant::now();
        let mut s = self.state();
        s.last_io = now;
        if !s.busy && s.served > 0 && s.head_began.is_none() {
            s.head_began = Some(now);
            drop(s);
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.state().last_io = Instant::now();
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut s = self.state();
        s.busy = true;
        s.responding = false;
        s.head_began = None;
        drop(s);
        self.changed.notify_one();
        InFlight {
            activity: self.clone(),
        }
    }

    fn response_started(&self) {
        let mut s = self.state();
        s.responding = true;
        s.last_io = Instant::now();
        drop(s);
        self.changed.notify_one();
    }

    fn response_done(&self) {
        let mut s = self.state();
        s.busy = false;
        s.responding = false;
        s.served += 1;
        s.free_since = Instant::now();
        s.head_began = None;
        drop(s);
        self.changed.notify_one();
    }
}

/// Held from the moment a request reaches the router until its response is done (or dropped).
struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.response_done();
    }
}

/// The socket, reporting bytes moved to [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A response body that tells [`Activity`] when hyper is done with it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that did not arrive within the body timeout. Handlers that read bodies turn
/// it into `408 Request Timeout` (see `crate::http`).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub Duration);

/// A request body with a deadline for its last byte.
struct TimedBody {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    timed_out: bool,
}

impl TimedBody {
    fn new(body: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            timed_out: false,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out = true;
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
