//! A fake deployment target: a real HTTP server on 127.0.0.1:0 that records every request and
//! answers from a script (default: 200 {"status":"succeeded"}).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// What to answer next.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16, &'static str),
    /// Never answer (until the caller gives up or dies).
    Hang,
    /// Answer after a delay.
    After(Duration, u16, &'static str),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
}

#[derive(Clone)]
pub struct FakeTarget {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeTarget {
    pub async fn start() -> FakeTarget {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/deploy", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/deploy", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTarget { inner, url }
    }

    /// Queues replies, answered in order before falling back to success.
    pub fn script(&self, replies: &[Reply]) {
        self.inner
            .lock()
            .expect("lock")
            .script
            .extend(replies.iter().cloned());
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("lock").received.clone()
    }

    /// Waits (real time) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut inner = inner.lock().expect("lock");
        inner.received.push(Received { headers, body });
        inner.script.pop_front()
    };
    match reply.unwrap_or(Reply::Status(200, r#"{"status":"succeeded"}"#)) {
        Reply::Status(code, body) => {
            let status = StatusCode::from_u16(code).expect("status");
            (status, [("content-type", "application/json")], body).into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::After(delay, code, body) => {
            tokio::time::sleep(delay).await;
            let status = StatusCode::from_u16(code).expect("status");
            (status, [("content-type", "application/json")], body).into_response()
        }
    }
}
