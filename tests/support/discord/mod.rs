//! # FakeDiscord: an in-process Discord (REST + gateway) for the REAL serenity 0.12.5 client
//!
//! One axum server on `127.0.0.1:0` serves Discord's REST paths under `/api/v10` and the
//! gateway WebSocket at `/gw`. Point serenity at it with [`FakeDiscord::http`] (or
//! [`FakeDiscord::client_builder`]):
//!
//! ```ignore
//! let fake = FakeDiscord::start().await;
//! let http = HttpBuilder::new("token").proxy(&fake.url).ratelimiter_disabled(true).build();
//! let mut client = ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
//!     .event_handler(handler)
//!     .await?;
//! tokio::spawn(async move { client.start().await });
//! ```
//!
//! ## serenity 0.12.5 facts this fake is built on (paths under `serenity-0.12.5/src/`)
//!
//! - **Proxy**: every route is `https://discord.com/api/v10/...` (`internal/macros.rs:14-16`);
//!   with a proxy, `Request::build` replaces the text `https://discord.com` with the proxy URL
//!   (trailing `/` trimmed), so the path keeps `/api/v10` (`http/request.rs:74-79`). Query
//!   parameters are appended as `?&k=v` (`http/request.rs:81-86`).
//! - **`ratelimiter_disabled(true)` is required with a proxy**: `HttpBuilder::build` then sets
//!   no ratelimiter (`http/client.rs:153`) and `Http::request` builds the request with the proxy
//!   (`http/client.rs:5214-5220`). With the ratelimiter on, `Ratelimiter::perform` builds every
//!   request with proxy `None` (`http/ratelimiting.rs:199`): the proxy is silently ignored and
//!   calls go to discord.com.
//! - **Token**: `HttpBuilder::new` prefixes `Bot ` (`http/client.rs:169-177`); REST sends
//!   `Authorization: Bot TOKEN` and IDENTIFY carries the same `Bot TOKEN`
//!   (`gateway/bridge/shard_queuer.rs:167` passes `http.token()`).
//! - **Custom Http**: `Client::builder(token, intents)` is `ClientBuilder::new`, which makes
//!   its own `Http::new(token)` (no proxy; `client/mod.rs:106-108`, `632`). Pass the proxied
//!   Http with `ClientBuilder::new_with_http(http, intents)` (`client/mod.rs:116`); never call
//!   `ClientBuilder::token` afterwards, it replaces the Http (`client/mod.rs:122-126`).
//! - **What the bot calls at start**: awaiting the builder calls `GET /api/v10/gateway` only
//!   (`client/mod.rs:364-370`); if that fails it only warns and falls back to
//!   `wss://gateway.discord.gg`. `Client::start` makes no REST call (without `voice`,
//!   `client/mod.rs:675`, `877-891`); `start_autosharded` also calls `GET /gateway/bot`
//!   (`client/mod.rs:717`). `users/@me` and `oauth2/applications/@me` are not called.
//! - **Gateway URL**: the shard connects to `{url}?v=10` (`gateway/shard.rs:766-775`), so
//!   `/gateway`'s `url` must carry no query. IDENTIFY sends `compress: true`,
//!   `large_threshold` 250, `shard` `[0,1]` and the intents (`gateway/ws.rs:257-292`); text
//!   frames are accepted as well as zlib binary ones (`gateway/ws.rs:127-149`).
//! - **READY**: `Ready` requires `v`, `user`, `guilds`, `session_id`, `resume_gateway_url`
//!   and `application {id, flags}` (`model/gateway.rs:358-374`). Its `application.id` becomes
//!   the Http's application id (`gateway/shard.rs:292-294`, `shard_queuer.rs:175`); before
//!   READY, interaction/command calls fail with `HttpError::ApplicationIdMissing` unless
//!   `ClientBuilder::application_id` was set.
//! - **Resume**: a close frame (e.g. 4000) or a cut connection makes the shard resume when it
//!   has a session (`gateway/shard.rs:313-392`, `458-466`); 4003, 4004, 4010, 4011, 4013 and
//!   4014 are errors instead (4004/4013/4014 end the shard runner,
//!   `gateway/bridge/shard_runner.rs:424-439`); 4006/4009 drop the session, so the shard
//!   re-IDENTIFYs (after the queuer's 5 s spacing, `shard_queuer.rs:35`). `Shard::resume`
//!   reconnects to the SAME `ws_url` (not `resume_gateway_url`, which is parsed but unused) and
//!   sends RESUME at once, before HELLO (`gateway/shard.rs:730-741`); a HELLO while resuming is
//!   ignored (`gateway/shard.rs:434-436`).
//! - **Heartbeats**: the runner polls the socket with a 500 ms timeout (`gateway/ws.rs:102`,
//!   `120`) and heartbeats once `heartbeat_interval` has passed (`gateway/shard.rs:487-518`);
//!   an unacknowledged heartbeat restarts the shard.
//! - **A dispatch serenity cannot deserialize is dropped**: `recv_json` fails, `handle_event`
//!   only logs "Unhandled error" (`gateway/shard.rs:467-470`) and the sequence is not advanced.
//!   Command, component and modal interactions REQUIRE `locale`, `entitlements` and
//!   `attachment_size_limit` (`model/application/command_interaction.rs:81-92`; likewise in
//!   `component_interaction.rs`, `modal_interaction.rs`), and a command's `data.type`
//!   (`command_interaction.rs:291`); older captures without them (the shared Discord4J ones)
//!   never reach `EventHandler::interaction_create`.
//! - **429**: with the ratelimiter disabled a 429 comes back as
//!   `Error::Http(HttpError::UnsuccessfulRequest(ErrorResponse { status_code: 429, .. }))`
//!   (`http/client.rs:5222-5228`). `ErrorResponse::from_response` decodes the body as
//!   `DiscordJsonError { code, message, errors }` with `code` required (`http/error.rs:14-22`,
//!   `45-56`): Discord's 429 body has no `code`, so `error.code` is -1 and `error.message` is
//!   "[Serenity] Could not decode json ...". Headers are dropped: **`retry-after` / `retry_after`
//!   are not readable**; the caller only sees the status. (With the ratelimiter on, a 429 with
//!   `retry-after` is slept on and retried inside serenity, `http/ratelimiting.rs:362-378`.)
//! - **Interaction callback** expects 204 (`http/client.rs:739-768`, `wind(204)`); other 2xx
//!   only log a warning.
//!
//! ## What the fake does
//!
//! REST: gateway info, `users/@me`, `oauth2/applications/@me`, bulk command overwrite (recorded,
//! echoed with ids), interaction callbacks (recorded; 404 code 10062 for an interaction never
//! dispatched, 400 code 40060 for a second callback; type 4/5 create the `@original` message,
//! 7 edits the component's message), `@original` GET/PATCH/DELETE, follow-ups, channel messages
//! POST/PATCH/GET. Every call is recorded ([`FakeDiscord::rest_calls`]); unknown paths get 404.
//! Multipart bodies (file uploads) are not understood. [`FakeDiscord::fail_next`] queues answers
//! given instead of the next calls (any route except `/gw`, including `GET /gateway`).
//!
//! Gateway: HELLO on connect; IDENTIFY → READY (seq 1, a new session); RESUME of the current
//! session → missed dispatches replayed, then RESUMED; RESUME of another session → op 9
//! `false`; heartbeat (op 1) → ACK (op 11). Dispatches pushed while disconnected are numbered
//! and replayed on RESUME; before any session they wait for the next READY.
#![allow(dead_code)]

mod gateway;
mod model;
pub mod payloads;
mod rest;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use serenity::all::{ClientBuilder, GatewayIntents};
use serenity::http::{Http, HttpBuilder};

// Not every test crate that includes `support` uses each of these.
#[allow(unused_imports)]
pub use model::{
    CommandRegistration, FakeConfig, FakeMessage, InteractionCallback, RestCall, ScriptedFailure,
    snowflake,
};
#[allow(unused_imports)]
pub use payloads::Invoker;

use model::{Model, Outbound};

type Shared = Arc<Mutex<Model>>;

/// How long `wait_for` / `wait_until` wait before failing the test.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct FakeDiscord {
    /// `http://127.0.0.1:PORT`: the value for `HttpBuilder::proxy`.
    pub url: String,
    /// `ws://127.0.0.1:PORT/gw`: what `GET /gateway` answers.
    pub gateway_url: String,
    /// The configuration it started with (`set_ready` / `set_hello` change the live one).
    pub config: FakeConfig,
    state: Shared,
}

impl FakeDiscord {
    /// Starts with `FakeConfig::default()`.
    pub async fn start() -> FakeDiscord {
        Self::start_with(FakeConfig::default()).await
    }

    pub async fn start_with(config: FakeConfig) -> FakeDiscord {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake discord");
        let addr = listener.local_addr().expect("fake discord address");
        let url = format!("http://{addr}");
        let gateway_url = format!("ws://{addr}/gw");
        let state: Shared = Arc::new(Mutex::new(Model::new(config.clone(), gateway_url.clone())));
        let app = rest::router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake discord stopped: {e}");
            }
        });
        FakeDiscord {
            url,
            gateway_url,
            config,
            state,
        }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.state.lock().expect("fake discord")
    }

    /// A serenity `Http` talking to this fake (proxy + ratelimiter disabled).
    pub fn http(&self, token: &str) -> Http {
        HttpBuilder::new(token)
            .proxy(&self.url)
            .ratelimiter_disabled(true)
            .build()
    }

    /// A serenity `ClientBuilder` whose Http talks to this fake.
    pub fn client_builder(&self, token: &str, intents: GatewayIntents) -> ClientBuilder {
        ClientBuilder::new_with_http(self.http(token), intents)
    }

    // --- REST scripting and records ---

    /// The next REST call (any route but `/gw`) gets this answer instead of the real one.
    pub fn fail_next(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.model().failures.push_back(ScriptedFailure {
            status,
            headers,
            body,
        });
    }

    /// The next REST call gets Discord's 429: `retry-after`, `x-ratelimit-scope` and the JSON
    /// body `{"message","retry_after","global"}`.
    pub fn fail_next_rate_limited(&self, retry_after_secs: f64) {
        let after = retry_after_secs.to_string();
        self.fail_next(
            429,
            &[
                ("retry-after", &after),
                ("x-ratelimit-scope", "user"),
                ("x-ratelimit-limit", "5"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", &after),
            ],
            payloads::rate_limited_body(retry_after_secs, false),
        );
    }

    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.model().rest_calls.clone()
    }

    /// Every bulk overwrite, in order.
    pub fn registered_commands(&self) -> Vec<CommandRegistration> {
        self.model().registrations.clone()
    }

    /// The latest global overwrite (the JSON array sent).
    pub fn global_commands(&self) -> Option<Value> {
        self.latest_commands(None)
    }

    /// The latest overwrite for `guild_id`.
    pub fn guild_commands(&self, guild_id: u64) -> Option<Value> {
        self.latest_commands(Some(guild_id))
    }

    fn latest_commands(&self, guild: Option<u64>) -> Option<Value> {
        let m = self.model();
        let latest = m.registrations.iter().rev().find(|r| r.guild_id == guild);
        latest.map(|r| r.commands.clone())
    }

    pub fn callbacks(&self) -> Vec<InteractionCallback> {
        self.model().callbacks.clone()
    }

    /// Messages in `channel_id` (channel messages and interaction responses), oldest first.
    pub fn messages(&self, channel_id: u64) -> Vec<FakeMessage> {
        let m = self.model();
        let in_channel = m.messages.iter().filter(|msg| msg.channel_id == channel_id);
        in_channel.filter(|msg| !msg.deleted).cloned().collect()
    }

    /// Every message ever created, deleted ones included.
    pub fn all_messages(&self) -> Vec<FakeMessage> {
        self.model().messages.clone()
    }

    /// The `@original` response of the interaction with `token`.
    pub fn original_response(&self, token: &str) -> Option<FakeMessage> {
        let m = self.model();
        let found = m.messages.iter().find(|msg| {
            !msg.deleted && msg.original_response && msg.interaction_token.as_deref() == Some(token)
        });
        found.cloned()
    }

    /// Follow-up messages of the interaction with `token`.
    pub fn followups(&self, token: &str) -> Vec<FakeMessage> {
        let m = self.model();
        let found = m.messages.iter().filter(|msg| {
            !msg.original_response && msg.interaction_token.as_deref() == Some(token)
        });
        found.cloned().collect()
    }

    // --- gateway records ---

    /// Every frame the bot sent on the gateway, in order.
    pub fn received_frames(&self) -> Vec<Value> {
        self.model().received.clone()
    }

    /// The op codes of `received_frames`.
    pub fn received_ops(&self) -> Vec<u64> {
        let m = self.model();
        m.received.iter().filter_map(|f| f["op"].as_u64()).collect()
    }

    fn frames_with_op(&self, op: u64) -> Vec<Value> {
        let m = self.model();
        let frames = m.received.iter().filter(|f| f["op"].as_u64() == Some(op));
        frames.map(|f| f["d"].clone()).collect()
    }

    /// The `d` of every IDENTIFY (op 2): `token`, `intents`, `shard`, `properties`, ...
    pub fn identifies(&self) -> Vec<Value> {
        self.frames_with_op(2)
    }

    pub fn identify_count(&self) -> usize {
        self.identifies().len()
    }

    /// The `d` of every RESUME (op 6): `token`, `session_id`, `seq`.
    pub fn resumes(&self) -> Vec<Value> {
        self.frames_with_op(6)
    }

    pub fn resume_count(&self) -> usize {
        self.resumes().len()
    }

    pub fn heartbeat_count(&self) -> usize {
        self.frames_with_op(1).len()
    }

    /// How many gateway connections were opened.
    pub fn connection_count(&self) -> u64 {
        self.model().connections
    }

    /// The query string of each gateway connection (serenity sends `v=10`).
    pub fn connect_queries(&self) -> Vec<String> {
        self.model().connect_queries.clone()
    }

    pub fn session_id(&self) -> Option<String> {
        self.model().session.as_ref().map(|s| s.id.clone())
    }

    /// The sequence number of the last dispatch of the current session.
    pub fn last_seq(&self) -> u64 {
        self.model().session.as_ref().map_or(0, |s| s.seq)
    }

    /// Whether a connection has identified or resumed and receives dispatches.
    pub fn is_live(&self) -> bool {
        self.model().connection.as_ref().is_some_and(|c| c.live)
    }

    // --- gateway scripting ---

    /// Sends dispatch `event` (op 0) with body `d` and the session's next sequence number,
    /// which it returns (0 when held until the next READY). An INTERACTION_CREATE is remembered
    /// so its callback and webhook calls are accepted.
    pub fn send_dispatch(&self, event: &str, d: Value) -> u64 {
        gateway::dispatch(&mut self.model(), event, d)
    }

    /// Sends `frame` verbatim on the current connection; false when there is none.
    pub fn send_raw(&self, frame: Value) -> bool {
        gateway::to_connection(&mut self.model(), Outbound::Frame(frame))
    }

    /// Closes the current connection with code 4000 (unknown error): serenity resumes.
    pub fn drop_connection(&self) -> bool {
        self.close_connection(4000)
    }

    /// Closes the current connection with a close frame carrying `code`.
    pub fn close_connection(&self, code: u16) -> bool {
        gateway::to_connection(&mut self.model(), Outbound::Close(code))
    }

    /// Ends the current connection without a close frame (a network cut).
    pub fn abort_connection(&self) -> bool {
        gateway::to_connection(&mut self.model(), Outbound::Abort)
    }

    /// Replaces the READY `d` sent on the next IDENTIFY (`None`: the fake's own).
    pub fn set_ready(&self, d: Option<Value>) {
        self.model().config.ready = d;
    }

    /// Replaces the HELLO frame sent on the next connection (`None`: the fake's own).
    pub fn set_hello(&self, frame: Option<Value>) {
        self.model().config.hello = frame;
    }

    // --- payloads ---

    /// The default invoker: the first configured guild, channel 1400…001, user 1500…001.
    pub fn invoker(&self) -> Invoker {
        Invoker {
            guild_id: self.config.guild_ids.first().copied().unwrap_or(1),
            channel_id: 1_400_000_000_000_000_001,
            user_id: 1_500_000_000_000_000_001,
            username: "alice".to_string(),
        }
    }

    /// An INTERACTION_CREATE body for chat-input command `name` (options: see `payloads`).
    pub fn slash_command(&self, who: &Invoker, name: &str, options: Vec<Value>) -> Value {
        let (id, command_id) = {
            let mut m = self.model();
            (m.next_id(), m.next_id())
        };
        payloads::slash_command(
            id,
            command_id,
            self.config.application_id,
            who,
            name,
            options,
        )
    }

    /// An INTERACTION_CREATE body for a click on button `custom_id` of stored message
    /// `message_id` (a bare message in `who`'s channel when the fake has no such message).
    pub fn button_click(&self, who: &Invoker, message_id: u64, custom_id: &str) -> Value {
        let mut m = self.model();
        let id = m.next_id();
        let message = m
            .find_message(|msg| msg.id == message_id)
            .unwrap_or_else(|| FakeMessage::empty(message_id, who.channel_id));
        let message = m.message_json(&message);
        payloads::button_click(id, self.config.application_id, who, message, custom_id)
    }

    /// An INTERACTION_CREATE body for submitting modal `custom_id` with text inputs `fields`.
    pub fn modal_submit(&self, who: &Invoker, custom_id: &str, fields: &[(&str, &str)]) -> Value {
        let id = self.model().next_id();
        payloads::modal_submit(id, self.config.application_id, who, custom_id, fields)
    }

    // --- waiting ---

    /// Polls `probe` until it returns `Some`, failing the test after `WAIT`.
    pub async fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("fake discord: timed out after {WAIT:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls `condition` until it holds, failing the test after `WAIT`.
    pub async fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        self.wait_for(what, || condition().then_some(())).await
    }
}
