//! The REST side, at the paths serenity requests through `HttpBuilder::proxy` (the proxy
//! replaces `https://discord.com`, so every path keeps `/api/v10`).

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Shared;
use super::gateway;
use super::model::{CommandRegistration, FakeFile, InteractionCallback, RestCall, ScriptedFailure};
use super::payloads::error_body;

pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v10/gateway", get(gateway_info))
        .route("/api/v10/gateway/bot", get(gateway_bot))
        .route("/api/v10/users/@me", get(current_user))
        .route("/api/v10/oauth2/applications/@me", get(current_application))
        .route(
            "/api/v10/applications/{app}/commands",
            put(global_commands).get(get_global_commands),
        )
        .route(
            "/api/v10/applications/{app}/guilds/{guild}/commands",
            put(guild_commands).get(get_guild_commands),
        )
        .route(
            "/api/v10/interactions/{id}/{token}/callback",
            post(interaction_callback),
        )
        .route("/api/v10/webhooks/{app}/{token}", post(create_followup))
        .route(
            "/api/v10/webhooks/{app}/{token}/messages/@original",
            get(get_original)
                .patch(edit_original)
                .delete(delete_original),
        )
        .route(
            "/api/v10/webhooks/{app}/{token}/messages/{mid}",
            get(get_followup).patch(edit_followup),
        )
        .route("/api/v10/channels/{channel}/messages", post(create_message))
        .route(
            "/api/v10/channels/{channel}/messages/{mid}",
            get(get_message).patch(edit_message),
        )
        .route("/gw", get(gateway::upgrade))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_and_script,
        ))
        .with_state(state)
}

/// Records every REST call and answers with a scripted failure when one is queued.
async fn record_and_script(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/gw" {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let json_body = serde_json::from_slice::<Value>(&bytes).ok();
    let scripted = state.lock().expect("fake discord").failures.pop_front();
    let response = match scripted {
        Some(failure) => scripted_response(failure),
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    state
        .lock()
        .expect("fake discord")
        .rest_calls
        .push(RestCall {
            method,
            path,
            query,
            authorization,
            body: json_body,
            status: response.status().as_u16(),
        });
    response
}

fn scripted_response(failure: ScriptedFailure) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(failure.body)).into_response();
    for (name, value) in failure.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn discord_error(status: StatusCode, code: u64, message: &str) -> Response {
    (status, Json(error_body(code, message))).into_response()
}

fn unknown_message() -> Response {
    discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
}

fn unknown_webhook() -> Response {
    discord_error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook")
}

async fn not_found() -> Response {
    discord_error(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

async fn gateway_info(State(state): State<Shared>) -> Json<Value> {
    let url = state.lock().expect("fake discord").gateway_url.clone();
    Json(json!({ "url": url }))
}

async fn gateway_bot(State(state): State<Shared>) -> Json<Value> {
    let url = state.lock().expect("fake discord").gateway_url.clone();
    Json(json!({
        "url": url,
        "shards": 1,
        "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1
        }
    }))
}

async fn current_user(State(state): State<Shared>) -> Json<Value> {
    let m = state.lock().expect("fake discord");
    let mut user = m.bot_user();
    user["verified"] = json!(true);
    user["mfa_enabled"] = json!(false);
    user["flags"] = json!(0);
    Json(user)
}

async fn current_application(State(state): State<Shared>) -> Json<Value> {
    let m = state.lock().expect("fake discord");
    Json(json!({
        "id": m.config.application_id.to_string(),
        "name": m.config.bot_username,
        "icon": null,
        "description": "",
        "rpc_origins": [],
        "bot_public": false,
        "bot_require_code_grant": false,
        "owner": null,
        "verify_key": "0".repeat(64),
        "team": null,
        "flags": 0,
        "bot": m.bot_user()
    }))
}

/// Echoes a bulk overwrite back as Discord does: each command with ids and defaults.
fn register(state: &Shared, app: u64, guild: Option<u64>, body: Value) -> Json<Value> {
    let mut m = state.lock().expect("fake discord");
    let mut echoed = Vec::new();
    for command in body.as_array().cloned().unwrap_or_default() {
        let mut c = command;
        c["id"] = json!(m.next_id().to_string());
        c["application_id"] = json!(app.to_string());
        c["version"] = json!(m.next_id().to_string());
        if let Some(g) = guild {
            c["guild_id"] = json!(g.to_string());
        }
        if c.get("type").is_none_or(Value::is_null) {
            c["type"] = json!(1);
        }
        if c.get("description").is_none_or(Value::is_null) {
            c["description"] = json!("");
        }
        echoed.push(c);
    }
    m.registrations.push(CommandRegistration {
        application_id: app,
        guild_id: guild,
        commands: body,
    });
    Json(Value::Array(echoed))
}

async fn global_commands(
    State(state): State<Shared>,
    Path(app): Path<u64>,
    Json(body): Json<Value>,
) -> Json<Value> {
    register(&state, app, None, body)
}

async fn guild_commands(
    State(state): State<Shared>,
    Path((app, guild)): Path<(u64, u64)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    register(&state, app, Some(guild), body)
}

fn latest_commands(state: &Shared, guild: Option<u64>) -> Json<Value> {
    let m = state.lock().expect("fake discord");
    let latest = m
        .registrations
        .iter()
        .rev()
        .find(|r| r.guild_id == guild)
        .map(|r| r.commands.clone());
    Json(latest.unwrap_or_else(|| json!([])))
}

async fn get_global_commands(State(state): State<Shared>) -> Json<Value> {
    latest_commands(&state, None)
}

async fn get_guild_commands(
    State(state): State<Shared>,
    Path((_app, guild)): Path<(u64, u64)>,
) -> Json<Value> {
    latest_commands(&state, Some(guild))
}

async fn interaction_callback(
    State(state): State<Shared>,
    Path((id, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut m = state.lock().expect("fake discord");
    let Some(known) = m
        .interactions
        .get(&id)
        .cloned()
        .filter(|i| i.token == token)
    else {
        return discord_error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    };
    if known.acknowledged {
        return discord_error(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        );
    }
    if let Some(i) = m.interactions.get_mut(&id) {
        i.acknowledged = true;
    }
    let kind = body["type"].as_u64().unwrap_or(0);
    let data = body.get("data").filter(|d| !d.is_null()).cloned();
    m.callbacks.push(InteractionCallback {
        interaction_id: id,
        token: token.clone(),
        kind,
        data: data.clone(),
    });
    let data = data.unwrap_or_else(|| json!({}));
    match kind {
        4 => {
            m.create_message(known.channel_id, &data, Some(token), true);
        }
        5 => {
            // A deferred response shows "thinking" (LOADING, 128) until edited.
            let mut loading = json!({ "content": "", "flags": 128 });
            if let Some(flags) = data.get("flags").and_then(Value::as_u64) {
                loading["flags"] = json!(flags | 128);
            }
            m.create_message(known.channel_id, &loading, Some(token), true);
        }
        7 => {
            if let Some(mid) = known.message_id {
                m.edit_message(|msg| msg.id == mid, &data);
            }
        }
        _ => {}
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn create_followup(
    State(state): State<Shared>,
    Path((_app, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut m = state.lock().expect("fake discord");
    let Some(known) = m.interaction_by_token(&token).filter(|i| i.acknowledged) else {
        return unknown_webhook();
    };
    let message = m.create_message(known.channel_id, &body, Some(token), false);
    Json(m.message_json(&message)).into_response()
}

fn original(token: &str) -> impl Fn(&super::FakeMessage) -> bool + '_ {
    move |m| m.original_response && m.interaction_token.as_deref() == Some(token)
}

async fn get_original(
    State(state): State<Shared>,
    Path((_app, token)): Path<(u64, String)>,
) -> Response {
    let m = state.lock().expect("fake discord");
    match m.find_message(original(&token)) {
        Some(message) => Json(m.message_json(&message)).into_response(),
        None => unknown_message(),
    }
}

async fn edit_original(
    State(state): State<Shared>,
    Path((_app, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut m = state.lock().expect("fake discord");
    match m.edit_message(original(&token), &body) {
        Some(message) => Json(m.message_json(&message)).into_response(),
        None => unknown_message(),
    }
}

async fn delete_original(
    State(state): State<Shared>,
    Path((_app, token)): Path<(u64, String)>,
) -> Response {
    let mut m = state.lock().expect("fake discord");
    let found = original(&token);
    match m.messages.iter_mut().find(|msg| !msg.deleted && found(msg)) {
        Some(message) => {
            message.deleted = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => unknown_message(),
    }
}

async fn get_followup(
    State(state): State<Shared>,
    Path((_app, token, mid)): Path<(u64, String, u64)>,
) -> Response {
    let m = state.lock().expect("fake discord");
    let found =
        m.find_message(|msg| msg.id == mid && msg.interaction_token.as_deref() == Some(&token));
    match found {
        Some(message) => Json(m.message_json(&message)).into_response(),
        None => unknown_message(),
    }
}

async fn edit_followup(
    State(state): State<Shared>,
    Path((_app, token, mid)): Path<(u64, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut m = state.lock().expect("fake discord");
    let edited = m.edit_message(
        |msg| msg.id == mid && msg.interaction_token.as_deref() == Some(&token),
        &body,
    );
    match edited {
        Some(message) => Json(m.message_json(&message)).into_response(),
        None => unknown_message(),
    }
}

/// A channel message: a JSON body, or a multipart body (`payload_json` and `files[N]`) when
/// files are attached, as Discord takes them.
async fn create_message(
    State(state): State<Shared>,
    Path(channel): Path<u64>,
    req: Request,
) -> Response {
    use axum::extract::{FromRequest, Multipart};
    let multipart = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (body, files) = if multipart {
        let Ok(mut form) = Multipart::from_request(req, &()).await else {
            return (
                StatusCode::BAD_REQUEST,
                Json(error_body(50035, "Invalid Form Body")),
            )
                .into_response();
        };
        let (mut body, mut files) = (Value::Null, Vec::new());
        while let Ok(Some(field)) = form.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let filename = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(str::to_string);
            let bytes = field.bytes().await.unwrap_or_default();
            if name == "payload_json" {
                body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            } else if name.starts_with("files[") {
                files.push(FakeFile {
                    filename: filename.unwrap_or_default(),
                    content_type: content_type.unwrap_or_default(),
                    data: bytes.to_vec(),
                });
            }
        }
        (body, files)
    } else {
        let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) => (body, Vec::new()),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(error_body(50109, "Invalid JSON")),
                )
                    .into_response();
            }
        }
    };
    let mut m = state.lock().expect("fake discord");
    let mut message = m.create_message(channel, &body, None, false);
    if !files.is_empty() {
        message.files = files;
        if let Some(stored) = m.messages.iter_mut().find(|s| s.id == message.id) {
            stored.files = message.files.clone();
        }
    }
    Json(m.message_json(&message)).into_response()
}

async fn get_message(
    State(state): State<Shared>,
    Path((channel, mid)): Path<(u64, u64)>,
) -> Response {
    let m = state.lock().expect("fake discord");
    match m.find_message(|msg| msg.id == mid && msg.channel_id == channel) {
        Some(message) => Json(m.message_json(&message)).into_response(),
        None => unknown_message(),
    }
}

async fn edit_message(
    State(state): State<Shared>,
    Path((channel, mid)): Path<(u64, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut m = state.lock().expect("fake discord");
    match m.edit_message(|msg| msg.id == mid && msg.channel_id == channel, &body) {
        Some(message) => Json(m.message_json(&message)).into_response(),
        None => unknown_message(),
    }
}
