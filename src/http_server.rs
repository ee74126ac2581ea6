//! The HTTP server loop: accepts connections and serves the router over HTTP/1.1, with limits
//! that keep slow, idle and hostile clients from tying it up.
//!
//! What a connection may do ([`Limits`], `[server]` in config):
//!
//! - **Headers.** A new connection has `header_timeout` from accept to deliver its first
//!   request's complete headers; on a kept-alive connection the same time runs from the first
//!   byte of the next request. Otherwise the connection is closed without a response.
//! - **Bodies.** A request body must arrive in full within `body_timeout` of its headers. A
//!   handler that reads the body then answers `408 Request Timeout` (JSON, `Connection: close`)
//!   and the connection closes. A body no handler reads is covered by the idle rule.
//! - **Idle.** Between requests a kept-alive connection may stay silent for `idle_timeout`.
//!   While a response is being sent, the client must keep reading: a connection that moves no
//!   byte for `idle_timeout` is closed. A handler that is still working is never cut off.
//! - **Connections.** At most `max_connections` are served at once. Over the cap the server
//!   stops accepting (backpressure): new connections wait in the kernel's listen queue, and are
//!   taken as soon as a slot frees up, which the timeouts above guarantee will happen. Clients
//!   see a slow connect rather than a reset, as with nginx's `worker_connections` or Go's
//!   `LimitListener`. A warning is logged each time the cap is reached.
//!
//! Request body *sizes* are limited per route in [`crate::http`].
//!
//! On shutdown the listener closes, idle connections close at once, and requests in progress
//! are finished (for at most [`SHUTDOWN_GRACE`]).

mod conn;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use conn::BodyTimedOut;

/// How long shutdown waits for requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What one client connection may take; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
}

impl Default for Limits {
    /// Production defaults: headers 10 s, body 30 s, idle 60 s, 1024 connections.
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module docs).
pub async fn run<F>(listener: TcpListener, router: Router, limits: Limits, shutdown: F)
where
    F: Future<Output = ()>,
{
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max as usize));
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut at_cap = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                at_cap = false;
                slot
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        max_connections = max,
                        "HTTP connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(conn::serve(
            stream,
            router.clone(),
            limits.clone(),
            stopped.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    let open = max as usize - slots.available_permits();
    if open > 0 {
        tracing::info!(open, "waiting for open HTTP connections to finish");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!(
            open = max as usize - slots.available_permits(),
            "HTTP connections still open after the shutdown grace period; not waiting for them"
        );
    }
}

/// An `accept` error: one that concerns only the connection being accepted is skipped; any
/// other (out of file descriptors, say) is logged, and accepting pauses a moment instead of
/// spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting an HTTP connection failed; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
