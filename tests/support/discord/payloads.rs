//! JSON shapes serenity 0.12.5 deserializes: users, members, messages, READY and interactions.
//! Ids are strings, as Discord sends them.

use serde_json::{Value, json};

use super::model::FakeMessage;

/// Who invokes an interaction, and where.
#[derive(Debug, Clone)]
pub struct Invoker {
    pub guild_id: u64,
    pub channel_id: u64,
    pub user_id: u64,
    pub username: String,
}

/// A user object.
pub fn user(id: u64, username: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(),
        "username": username,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": bot,
        "public_flags": 0
    })
}

/// A guild member object (as in an interaction: with `permissions`).
pub fn member(who: &Invoker) -> Value {
    json!({
        "user": user(who.user_id, &who.username, false),
        "nick": null,
        "avatar": null,
        "roles": [],
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "permissions": "2251799813685247",
        "communication_disabled_until": null
    })
}

/// A full message object (`Message` in serenity: every non-optional field is present).
pub fn message(m: &FakeMessage, author: &Value, application_id: u64) -> Value {
    let mut v = json!({
        "id": m.id.to_string(),
        "channel_id": m.channel_id.to_string(),
        "author": author,
        "content": m.content,
        "timestamp": m.created_at,
        "edited_timestamp": m.edited_at,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": m.embeds,
        "components": m.components,
        "pinned": false,
        "type": 0,
        "flags": m.flags
    });
    if m.interaction_token.is_some() {
        v["webhook_id"] = json!(application_id.to_string());
        v["application_id"] = json!(application_id.to_string());
    }
    v
}

/// The `d` of READY.
pub fn ready(
    user: &Value,
    guild_ids: &[u64],
    session_id: &str,
    resume_gateway_url: &str,
    shard: &Value,
    application_id: u64,
) -> Value {
    let guilds: Vec<Value> = guild_ids
        .iter()
        .map(|id| json!({ "id": id.to_string(), "unavailable": true }))
        .collect();
    json!({
        "v": 10,
        "user": user,
        "guilds": guilds,
        "session_id": session_id,
        "resume_gateway_url": resume_gateway_url,
        "shard": shard,
        "application": { "id": application_id.to_string(), "flags": 0 }
    })
}

/// Fields every interaction carries (serenity 0.12.5 requires `locale`, `entitlements` and
/// `attachment_size_limit` on command, component and modal interactions).
fn interaction(kind: u8, id: u64, application_id: u64, who: &Invoker, data: Value) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": application_id.to_string(),
        "type": kind,
        "data": data,
        "guild_id": who.guild_id.to_string(),
        "channel_id": who.channel_id.to_string(),
        "channel": { "id": who.channel_id.to_string(), "type": 0, "name": "changes" },
        "member": member(who),
        "token": format!("token-{id}"),
        "version": 1,
        "app_permissions": "2251799813685247",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": { "0": who.guild_id.to_string() },
        "context": 0,
        "attachment_size_limit": 10485760
    })
}

/// An APPLICATION_COMMAND (type 2) interaction for chat-input command `name`.
pub fn slash_command(
    id: u64,
    command_id: u64,
    application_id: u64,
    who: &Invoker,
    name: &str,
    options: Vec<Value>,
) -> Value {
    let data = json!({
        "id": command_id.to_string(),
        "name": name,
        "type": 1,
        "guild_id": who.guild_id.to_string(),
        "options": options
    });
    interaction(2, id, application_id, who, data)
}

/// A MESSAGE_COMPONENT (type 3) interaction: a click on button `custom_id` of `message`.
pub fn button_click(
    id: u64,
    application_id: u64,
    who: &Invoker,
    message: Value,
    custom_id: &str,
) -> Value {
    let data = json!({ "custom_id": custom_id, "component_type": 2 });
    let mut v = interaction(3, id, application_id, who, data);
    v["message"] = message;
    v
}

/// A MODAL_SUBMIT (type 5) interaction: text inputs `(custom_id, value)`, one per action row.
pub fn modal_submit(
    id: u64,
    application_id: u64,
    who: &Invoker,
    custom_id: &str,
    fields: &[(&str, &str)],
) -> Value {
    let rows: Vec<Value> = fields
        .iter()
        .map(|(field, value)| {
            json!({ "type": 1, "components": [
                { "type": 4, "custom_id": field, "value": value }
            ]})
        })
        .collect();
    let data = json!({ "custom_id": custom_id, "components": rows });
    interaction(5, id, application_id, who, data)
}

/// A SUB_COMMAND option (type 1).
pub fn subcommand(name: &str, options: Vec<Value>) -> Value {
    json!({ "type": 1, "name": name, "options": options })
}

/// A SUB_COMMAND_GROUP option (type 2) holding subcommands.
pub fn subcommand_group(name: &str, subcommands: Vec<Value>) -> Value {
    json!({ "type": 2, "name": name, "options": subcommands })
}

/// A STRING option (type 3).
pub fn string_option(name: &str, value: &str) -> Value {
    json!({ "type": 3, "name": name, "value": value })
}

/// An INTEGER option (type 4).
pub fn integer_option(name: &str, value: i64) -> Value {
    json!({ "type": 4, "name": name, "value": value })
}

/// A BOOLEAN option (type 5).
pub fn boolean_option(name: &str, value: bool) -> Value {
    json!({ "type": 5, "name": name, "value": value })
}

/// A USER option (type 6).
pub fn user_option(name: &str, user_id: u64) -> Value {
    json!({ "type": 6, "name": name, "value": user_id.to_string() })
}

/// Discord's 429 body (no `code` field, as Discord sends it).
pub fn rate_limited_body(retry_after: f64, global: bool) -> Value {
    json!({ "message": "You are being rate limited.", "retry_after": retry_after, "global": global })
}

/// A Discord JSON error body.
pub fn error_body(code: u64, message: &str) -> Value {
    json!({ "code": code, "message": message })
}
