//! The gateway at `/gw`: a WebSocket (tokio-tungstenite 0.21, serenity's own version) upgraded
//! from the axum server through hyper, speaking Discord's JSON gateway protocol: HELLO, IDENTIFY
//! → READY, RESUME → replay + RESUMED, heartbeats, and dispatches a test pushes.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::Shared;
use super::model::{Connection, Model, Outbound, Session, resumed};
use super::payloads;

/// Accepts the WebSocket upgrade (what axum's `ws` feature does, with serenity's tungstenite).
pub(super) async fn upgrade(State(state): State<Shared>, mut req: Request) -> Response {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return (StatusCode::BAD_REQUEST, "not a websocket upgrade").into_response();
    };
    let query = req.uri().query().unwrap_or_default().to_string();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                run_connection(state, ws, query).await;
            }
            Err(e) => eprintln!("fake discord: websocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, "upgrade".parse().expect("header"));
    headers.insert(header::UPGRADE, "websocket".parse().expect("header"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        derive_accept_key(key.as_bytes()).parse().expect("header"),
    );
    response
}

async fn run_connection<S>(state: Shared, ws: WebSocketStream<S>, query: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = {
        let mut m = state.lock().expect("fake discord");
        m.connections += 1;
        let id = m.connections;
        m.connect_queries.push(query);
        let hello = m.config.hello.clone().unwrap_or_else(|| {
            json!({
                "op": 10, "s": null, "t": null,
                "d": { "heartbeat_interval": m.config.heartbeat_interval_ms }
            })
        });
        let _ = tx.send(Outbound::Frame(hello));
        m.connection = Some(Connection {
            id,
            tx: tx.clone(),
            live: false,
        });
        id
    };
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => handle_frame(&state, conn_id, &tx, &text),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outbound::Frame(frame)) => {
                    if sink.send(Message::Text(frame.to_string())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.flush().await;
                    break;
                }
                Some(Outbound::Abort) | None => break,
            },
        }
    }
    let mut m = state.lock().expect("fake discord");
    if m.connection.as_ref().is_some_and(|c| c.id == conn_id) {
        m.connection = None;
    }
}

fn handle_frame(state: &Shared, conn_id: u64, tx: &UnboundedSender<Outbound>, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        eprintln!("fake discord: the bot sent a frame that is not JSON: {text}");
        return;
    };
    let mut m = state.lock().expect("fake discord");
    m.received.push(frame.clone());
    match frame["op"].as_u64() {
        Some(1) => {
            let _ = tx.send(Outbound::Frame(
                json!({ "op": 11, "s": null, "t": null, "d": null }),
            ));
        }
        Some(2) => identify(&mut m, conn_id, tx, &frame["d"]),
        Some(6) => resume(&mut m, conn_id, tx, &frame["d"]),
        _ => {}
    }
}

/// A new session: READY (seq 1), then whatever was dispatched before any session existed.
fn identify(m: &mut Model, conn_id: u64, tx: &UnboundedSender<Outbound>, d: &Value) {
    let ready = match m.config.ready.clone() {
        Some(ready) => ready,
        None => {
            let session_id = format!("fake-session-{}", m.next_id());
            let shard = d.get("shard").cloned().unwrap_or_else(|| json!([0, 1]));
            payloads::ready(
                &m.bot_user(),
                &m.config.guild_ids,
                &session_id,
                &m.gateway_url,
                &shard,
                m.config.application_id,
            )
        }
    };
    let session_id = ready["session_id"].as_str().unwrap_or_default().to_string();
    m.session = Some(Session {
        id: session_id,
        seq: 0,
        log: Vec::new(),
    });
    set_live(m, conn_id);
    push_dispatch(m, Some(tx), "READY", ready);
    for (event, d) in std::mem::take(&mut m.undelivered) {
        push_dispatch(m, Some(tx), &event, d);
    }
}

/// Replays what the session missed after the client's `seq`, then RESUMED; an unknown session
/// gets INVALID_SESSION (op 9, not resumable).
fn resume(m: &mut Model, conn_id: u64, tx: &UnboundedSender<Outbound>, d: &Value) {
    let client_seq = d["seq"].as_u64().unwrap_or(0);
    let matches = m
        .session
        .as_ref()
        .is_some_and(|s| Some(s.id.as_str()) == d["session_id"].as_str());
    if !matches {
        let _ = tx.send(Outbound::Frame(
            json!({ "op": 9, "s": null, "t": null, "d": false }),
        ));
        return;
    }
    if let Some(session) = &m.session {
        for (seq, frame) in &session.log {
            if *seq > client_seq {
                let _ = tx.send(Outbound::Frame(frame.clone()));
            }
        }
    }
    set_live(m, conn_id);
    push_dispatch(m, Some(tx), "RESUMED", resumed());
}

fn set_live(m: &mut Model, conn_id: u64) {
    if let Some(c) = m.connection.as_mut().filter(|c| c.id == conn_id) {
        c.live = true;
    }
}

/// Numbers a dispatch in the current session, logs it and sends it on `tx` (if any).
fn push_dispatch(
    m: &mut Model,
    tx: Option<&UnboundedSender<Outbound>>,
    event: &str,
    d: Value,
) -> u64 {
    let Some(session) = m.session.as_mut() else {
        return 0;
    };
    session.seq += 1;
    let seq = session.seq;
    let frame = json!({ "op": 0, "s": seq, "t": event, "d": d });
    session.log.push((seq, frame.clone()));
    if let Some(tx) = tx {
        let _ = tx.send(Outbound::Frame(frame));
    }
    seq
}

/// A dispatch from a test: sent now on a live connection, kept for RESUME to replay while
/// disconnected, or held until the next READY when no session exists yet. Returns its sequence
/// number (0 while held).
pub(super) fn dispatch(m: &mut Model, event: &str, d: Value) -> u64 {
    if event == "INTERACTION_CREATE" {
        m.know_interaction(&d);
    }
    if m.session.is_none() {
        m.undelivered.push((event.to_string(), d));
        return 0;
    }
    // Disconnected: numbered and logged only, for a RESUME to replay.
    let tx = m
        .connection
        .as_ref()
        .filter(|c| c.live)
        .map(|c| c.tx.clone());
    push_dispatch(m, tx.as_ref(), event, d)
}

/// Sends `outbound` on the current connection; false when there is none.
pub(super) fn to_connection(m: &mut Model, outbound: Outbound) -> bool {
    let closing = !matches!(outbound, Outbound::Frame(_));
    let Some(c) = m.connection.as_mut() else {
        return false;
    };
    let sent = c.tx.send(outbound).is_ok();
    if closing {
        c.live = false;
    }
    sent
}
