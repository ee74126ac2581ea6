//! The HTTP server loop that `changebot serve` runs (`http_server::run`), against clients that
//! are idle, slow or lying about their bodies, and against too many clients at once.
//!
//! Timeouts are set small (300 ms) so the server's deadlines pass quickly; the bounds the tests
//! assert are generous (5 s) so a loaded machine does not make them fail.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use changebot::http_server::{self, Limits};
use support::Harness;

const QUICK: Duration = Duration::from_millis(300);
/// How long a connection the server should close may take to be closed.
const BOUND: Duration = Duration::from_secs(5);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _h: Harness,
}

async fn start(limits: Limits) -> Server {
    let h = Harness::sqlite("2026-11-23T09:00:00Z").await;
    let router = changebot::http::router(h.app.http_state());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(http_server::run(listener, router, limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
        _h: h,
    }
}

fn quick() -> Limits {
    Limits {
        header_timeout: QUICK,
        body_timeout: QUICK,
        idle_timeout: QUICK,
        max_connections: 256,
    }
}

async fn connect(addr: SocketAddr, sending: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    if !sending.is_empty() {
        stream.write_all(sending.as_bytes()).await.expect("send");
    }
    stream
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent and when
/// it closed. Panics if it stays open for `BOUND`.
async fn closed_by_server(mut stream: TcpStream, opened: Instant, what: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = BOUND.saturating_sub(opened.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "{what}: still open after {BOUND:?}; received so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// One `GET /healthz` on a new connection; returns the status line.
async fn healthz(addr: SocketAddr) -> String {
    let request = "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    let stream = connect(addr, request).await;
    let reply = closed_by_server(stream, Instant::now(), "healthz").await;
    reply.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_lying_clients_are_closed_while_healthz_keeps_answering() {
    let server = start(quick()).await;
    let addr = server.addr;
    let head = "POST /webhooks/deployments/DEP-1 HTTP/1.1\r\nHost: test\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    let kinds: Vec<(&'static str, String)> = vec![
        ("idle", String::new()),
        (
            "partial header",
            "GET /healthz HTTP/1.1\r\nHost: te".to_string(),
        ),
        ("partial body", format!("{head}{{\"status\":")),
        ("false content-length", head.to_string()),
        (
            "unread body with a false content-length",
            "GET /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 50\r\n\r\n".to_string(),
        ),
        (
            "idle keep-alive",
            "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n".to_string(),
        ),
    ];
    let mut waiting = Vec::new();
    for (kind, sending) in &kinds {
        let kind: &'static str = kind;
        for _ in 0..15 {
            let opened = Instant::now();
            let stream = connect(addr, sending).await;
            waiting.push(tokio::spawn(async move {
                (kind, closed_by_server(stream, opened, kind).await)
            }));
        }
    }
    assert_eq!(healthz(addr).await, "HTTP/1.1 200 OK", "during");
    for task in waiting {
        let (kind, reply) = task.await.expect("client task");
        match kind {
            "partial body" | "false content-length" => {
                assert!(
                    reply.starts_with("HTTP/1.1 408"),
                    "{kind}: wants 408, got {reply:?}"
                );
                assert!(reply.contains("did not arrive"), "{kind}: {reply:?}");
                assert!(reply.contains("connection: close"), "{kind}: {reply:?}");
            }
            "idle keep-alive" | "unread body with a false content-length" => {
                assert!(reply.starts_with("HTTP/1.1 200"), "{kind}: {reply:?}")
            }
            _ => assert_eq!(reply, "", "{kind}: closed without a response"),
        }
    }
    assert_eq!(healthz(addr).await, "HTTP/1.1 200 OK", "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    let limits = Limits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
        ..quick()
    };
    let server = start(limits).await;
    // Two kept-alive connections, each proven accepted by an answered request.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(server.addr, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await;
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    // A third waits in the listen queue: no answer while both slots are taken.
    let third = connect(
        server.addr,
        "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut peek = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.peek(&mut peek))
            .await
            .is_err(),
        "a third connection was served over a cap of 2"
    );
    // One client leaves; the waiting connection is taken and answered.
    drop(held.pop());
    let reply = closed_by_server(third, Instant::now(), "third connection").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_in_json() {
    let server = start(Limits::default()).await;
    let body = "x".repeat(changebot::http::CALLBACK_BODY_LIMIT + 1024);
    let request = format!(
        "POST /webhooks/deployments/DEP-1 HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let stream = connect(server.addr, &request).await;
    let reply = closed_by_server(stream, Instant::now(), "oversized body").await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:?}");
    assert!(
        reply.contains("content-type: application/json"),
        "{reply:?}"
    );
    let json = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(json).expect("JSON body");
    assert!(
        parsed["error"]
            .as_str()
            .is_some_and(|e| e.contains("larger than")),
        "{parsed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut server = start(Limits {
        idle_timeout: Duration::from_secs(30),
        ..quick()
    })
    .await;
    let mut idle = connect(server.addr, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(BOUND, idle.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let opened = Instant::now();
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(BOUND, &mut server.task)
        .await
        .expect("the server stops in time")
        .expect("server task");
    closed_by_server(idle, opened, "idle connection at shutdown").await;
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the listener is closed"
    );
}
