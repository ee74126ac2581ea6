//! What the fake Discord holds: its configuration, what the bot sent it (REST calls, gateway
//! frames) and what it stored (commands, interaction callbacks, messages).

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::payloads;

/// How the fake presents itself. `Default` gives a bot whose application id is its user id
/// (as for any bot Discord creates), one guild and a 1 s heartbeat.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub application_id: u64,
    pub bot_user_id: u64,
    pub bot_username: String,
    /// Guilds listed (unavailable) in READY.
    pub guild_ids: Vec<u64>,
    /// HELLO's `heartbeat_interval`; serenity heartbeats after it has passed.
    pub heartbeat_interval_ms: u64,
    /// A whole HELLO frame to send instead of the fake's (e.g. a recorded one).
    pub hello: Option<Value>,
    /// A READY `d` to send instead of the fake's; its `session_id` is the one RESUME must name.
    pub ready: Option<Value>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            application_id: 1_100_000_000_000_000_001,
            bot_user_id: 1_100_000_000_000_000_001,
            bot_username: "changebot".to_string(),
            guild_ids: vec![1_200_000_000_000_000_001],
            heartbeat_interval_ms: 1_000,
            hello: None,
            ready: None,
        }
    }
}

/// One HTTP request the bot made, with the status the fake answered.
#[derive(Debug, Clone)]
pub struct RestCall {
    pub method: String,
    /// The path as requested, e.g. `/api/v10/channels/1/messages`.
    pub path: String,
    pub query: Option<String>,
    /// The `Authorization` header (serenity sends `Bot TOKEN`).
    pub authorization: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    pub status: u16,
}

/// A scripted answer given instead of the real one.
#[derive(Debug, Clone)]
pub struct ScriptedFailure {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// One bulk overwrite (`PUT .../commands`) as the bot sent it.
#[derive(Debug, Clone)]
pub struct CommandRegistration {
    pub application_id: u64,
    /// `None` for global commands.
    pub guild_id: Option<u64>,
    /// The JSON array the bot sent.
    pub commands: Value,
}

/// One `POST /interactions/{id}/{token}/callback`.
#[derive(Debug, Clone)]
pub struct InteractionCallback {
    pub interaction_id: u64,
    pub token: String,
    /// 4 message, 5 deferred message, 6 deferred update, 7 update message, 9 modal, ...
    pub kind: u64,
    pub data: Option<Value>,
}

/// A message the bot created: in a channel, or as an interaction response or follow-up.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: u64,
    pub channel_id: u64,
    pub content: String,
    pub embeds: Vec<Value>,
    pub components: Vec<Value>,
    pub flags: u64,
    pub created_at: String,
    pub edited_at: Option<String>,
    /// The interaction token, for interaction responses and follow-ups.
    pub interaction_token: Option<String>,
    /// The interaction's original response (`@original`).
    pub original_response: bool,
    pub deleted: bool,
    /// Every body the bot sent for this message: the creation, then each edit.
    pub versions: Vec<Value>,
    /// Files uploaded with it.
    pub files: Vec<FakeFile>,
}

/// A file uploaded with a message.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

impl FakeMessage {
    /// A message with no content, not stored anywhere.
    pub fn empty(id: u64, channel_id: u64) -> FakeMessage {
        FakeMessage {
            id,
            channel_id,
            content: String::new(),
            embeds: Vec::new(),
            components: Vec::new(),
            flags: 0,
            created_at: now(),
            edited_at: None,
            interaction_token: None,
            original_response: false,
            deleted: false,
            versions: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn edits(&self) -> usize {
        self.versions.len().saturating_sub(1)
    }

    /// Applies a create or edit body: fields present are replaced.
    pub(super) fn apply(&mut self, body: &Value) {
        if let Some(content) = body.get("content") {
            self.content = content.as_str().unwrap_or_default().to_string();
        }
        if let Some(embeds) = body.get("embeds") {
            self.embeds = embeds.as_array().cloned().unwrap_or_default();
        }
        if let Some(components) = body.get("components") {
            self.components = components.as_array().cloned().unwrap_or_default();
        }
        if let Some(flags) = body.get("flags").and_then(Value::as_u64) {
            self.flags = flags;
        }
        self.versions.push(body.clone());
    }
}

/// An interaction the fake dispatched, so its callback and webhook calls can be checked.
#[derive(Debug, Clone)]
pub(super) struct KnownInteraction {
    pub id: u64,
    pub token: String,
    pub channel_id: u64,
    /// The message a component was on.
    pub message_id: Option<u64>,
    pub acknowledged: bool,
}

/// Something for a gateway connection to send.
#[derive(Debug)]
pub(super) enum Outbound {
    Frame(Value),
    /// Send a close frame with this code, then end the connection.
    Close(u16),
    /// End the connection without a close frame.
    Abort,
}

#[derive(Debug)]
pub(super) struct Session {
    pub id: String,
    pub seq: u64,
    /// Every dispatch of the session, for RESUME to replay.
    pub log: Vec<(u64, Value)>,
}

#[derive(Debug)]
pub(super) struct Connection {
    pub id: u64,
    pub tx: UnboundedSender<Outbound>,
    /// IDENTIFY or RESUME succeeded on it: dispatches go to it.
    pub live: bool,
}

#[derive(Debug)]
pub struct Model {
    pub config: FakeConfig,
    pub gateway_url: String,
    pub rest_calls: Vec<RestCall>,
    pub failures: VecDeque<ScriptedFailure>,
    pub registrations: Vec<CommandRegistration>,
    pub callbacks: Vec<InteractionCallback>,
    pub messages: Vec<FakeMessage>,
    /// Every frame received from the bot, in order.
    pub received: Vec<Value>,
    /// The query string of each gateway connection (serenity: `v=10`).
    pub connect_queries: Vec<String>,
    pub(super) interactions: HashMap<u64, KnownInteraction>,
    pub(super) session: Option<Session>,
    pub(super) connection: Option<Connection>,
    pub(super) connections: u64,
    /// Dispatches asked for before any session existed; sent after the next READY.
    pub(super) undelivered: Vec<(String, Value)>,
    next_id: u64,
}

impl Model {
    pub(super) fn new(config: FakeConfig, gateway_url: String) -> Model {
        Model {
            config,
            gateway_url,
            rest_calls: Vec::new(),
            failures: VecDeque::new(),
            registrations: Vec::new(),
            callbacks: Vec::new(),
            messages: Vec::new(),
            received: Vec::new(),
            connect_queries: Vec::new(),
            interactions: HashMap::new(),
            session: None,
            connection: None,
            connections: 0,
            undelivered: Vec::new(),
            next_id: 1_300_000_000_000_000_000,
        }
    }

    /// A fresh snowflake-sized id.
    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn bot_user(&self) -> Value {
        payloads::user(self.config.bot_user_id, &self.config.bot_username, true)
    }

    pub fn message_json(&self, m: &FakeMessage) -> Value {
        payloads::message(m, &self.bot_user(), self.config.application_id)
    }

    /// Stores a new message built from a create body.
    pub(super) fn create_message(
        &mut self,
        channel_id: u64,
        body: &Value,
        interaction_token: Option<String>,
        original_response: bool,
    ) -> FakeMessage {
        let mut m = FakeMessage::empty(self.next_id(), channel_id);
        m.interaction_token = interaction_token;
        m.original_response = original_response;
        m.apply(body);
        self.messages.push(m.clone());
        m
    }

    /// Applies an edit body to a stored message; `None` when there is no such message.
    pub(super) fn edit_message(
        &mut self,
        find: impl Fn(&FakeMessage) -> bool,
        body: &Value,
    ) -> Option<FakeMessage> {
        let m = self.messages.iter_mut().find(|m| !m.deleted && find(m))?;
        m.apply(body);
        m.edited_at = Some(now());
        Some(m.clone())
    }

    pub(super) fn find_message(&self, find: impl Fn(&FakeMessage) -> bool) -> Option<FakeMessage> {
        self.messages
            .iter()
            .find(|m| !m.deleted && find(m))
            .cloned()
    }

    /// Records an interaction being dispatched.
    pub(super) fn know_interaction(&mut self, d: &Value) {
        let id = snowflake(&d["id"]);
        let token = d["token"].as_str().unwrap_or_default().to_string();
        if id == 0 {
            return;
        }
        self.interactions.insert(
            id,
            KnownInteraction {
                id,
                token,
                channel_id: snowflake(&d["channel_id"]),
                message_id: d.get("message").map(|m| snowflake(&m["id"])),
                acknowledged: false,
            },
        );
    }

    pub(super) fn interaction_by_token(&self, token: &str) -> Option<KnownInteraction> {
        self.interactions
            .values()
            .find(|i| i.token == token)
            .cloned()
    }
}

/// A snowflake sent as a string or a number; 0 when absent.
pub fn snowflake(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// The `RESUMED` dispatch body.
pub(super) fn resumed() -> Value {
    json!({ "_trace": ["[\"fake-discord\",{\"micros\":0}]"] })
}
