//! The REAL serenity 0.12.5 client against the in-process fake Discord
//! (tests/support/discord): gateway handshake, interactions and their replies, channel
//! messages, rate limits and resuming.

mod support;

#[path = "discord_fake/bot.rs"]
mod bot;
#[path = "discord_fake/fixtures.rs"]
mod fixtures;

use serde_json::json;
use serenity::all::{
    ActionRowComponent, ButtonKind, ChannelId, Command, CommandDataOptionValue, CommandOptionType,
    CreateActionRow, CreateButton, CreateCommand, CreateCommandOption, CreateEmbed, CreateMessage,
    EditMessage, GatewayIntents, GuildId, Interaction,
};
use serenity::http::HttpError;

use bot::{Bot, Seen, TOKEN};
use support::discord::{FakeConfig, FakeDiscord, payloads};
#[tokio::test]
async fn ready_reaches_the_event_handler_and_heartbeats_are_acknowledged() {
    let fake = FakeDiscord::start_with(FakeConfig {
        heartbeat_interval_ms: 200,
        ..FakeConfig::default()
    })
    .await;
    let mut bot = Bot::connect(&fake).await;
    let ready = bot.ready().await;

    assert_eq!(ready.user.name, "changebot");
    assert_eq!(ready.application.id.get(), fake.config.application_id);
    assert_eq!(Some(ready.session_id.clone()), fake.session_id());
    assert_eq!(ready.guilds.len(), 1);
    assert_eq!(
        bot.http.application_id().map(|id| id.get()),
        Some(fake.config.application_id)
    );

    let identify = &fake.identifies()[0];
    assert_eq!(identify["token"], "Bot test-token");
    assert_eq!(identify["intents"], GatewayIntents::GUILDS.bits());
    assert_eq!(identify["shard"], json!([0, 1]));
    assert_eq!(fake.connect_queries(), vec!["v=10".to_string()]);

    // Awaiting the builder asks for the gateway URL; starting makes no other REST call.
    let calls = fake.rest_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("GET", "/api/v10/gateway")
    );
    assert_eq!(calls[0].authorization.as_deref(), Some("Bot test-token"));

    // Heartbeats are answered, so the shard keeps its one connection.
    fake.wait_until("three heartbeats", || fake.heartbeat_count() >= 3)
        .await;
    assert_eq!(fake.connection_count(), 1);
    assert_eq!(fake.identify_count(), 1);
    assert_eq!(fake.received_ops()[0], 2, "IDENTIFY comes first");
}

#[tokio::test]
async fn commands_are_registered_globally_and_per_guild() {
    let fake = FakeDiscord::start().await;
    let mut bot = Bot::connect(&fake).await;
    bot.ready().await;

    let change = CreateCommand::new("change")
        .description("Change management")
        .add_option(
            CreateCommandOption::new(CommandOptionType::SubCommand, "create", "Create a change")
                .add_sub_option(
                    CreateCommandOption::new(CommandOptionType::String, "service", "Service")
                        .required(true),
                ),
        );
    let global = Command::set_global_commands(&bot.http, vec![change.clone()])
        .await
        .expect("global overwrite");
    assert_eq!(global.len(), 1);
    assert_eq!(global[0].name, "change");
    assert_eq!(global[0].options[0].options[0].name, "service");

    let guild = GuildId::new(fake.config.guild_ids[0]);
    let per_guild = guild
        .set_commands(&bot.http, vec![change])
        .await
        .expect("guild overwrite");
    assert_eq!(per_guild[0].guild_id, Some(guild));

    let sent = fake.global_commands().expect("global commands recorded");
    assert_eq!(sent[0]["name"], "change");
    assert_eq!(sent[0]["options"][0]["type"], 1);
    assert!(fake.guild_commands(guild.get()).is_some());
    assert_eq!(fake.registered_commands().len(), 2);
}

#[tokio::test]
async fn a_slash_command_reaches_the_handler_and_its_reply_lands_in_the_fake() {
    let fake = FakeDiscord::start().await;
    let mut bot = Bot::connect(&fake).await;
    bot.ready().await;

    let who = fake.invoker();
    let options = vec![payloads::subcommand(
        "create",
        vec![payloads::string_option("service", "payments-api")],
    )];
    let d = fake.slash_command(&who, "change", options);
    let token = d["token"].as_str().expect("token").to_string();
    let seq = fake.send_dispatch("INTERACTION_CREATE", d);
    assert_eq!(seq, 2, "READY was 1");

    let Interaction::Command(command) = bot.interaction().await else {
        panic!("expected a command interaction");
    };
    assert_eq!(command.data.name, "change");
    assert_eq!(command.user.id.get(), who.user_id);
    assert_eq!(command.guild_id.map(|g| g.get()), Some(who.guild_id));
    let CommandDataOptionValue::SubCommand(sub) = &command.data.options[0].value else {
        panic!("expected a subcommand: {:?}", command.data.options);
    };
    assert_eq!(command.data.options[0].name, "create");
    assert_eq!(sub[0].value.as_str(), Some("payments-api"));

    let callbacks = fake.callbacks();
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].kind, 4);
    assert_eq!(callbacks[0].token, token);
    let original = fake.original_response(&token).expect("original response");
    assert_eq!(original.content, "change received");
    assert_eq!(original.embeds[0]["title"], "CHG-1");
    assert_eq!(
        original.components[0]["components"][0]["custom_id"],
        "approve:CHG-1"
    );
    assert_eq!(fake.messages(who.channel_id).len(), 1);

    // A click on the reply's button: the handler updates that message (callback type 7).
    let click = fake.button_click(&who, original.id, "approve:CHG-1");
    fake.send_dispatch("INTERACTION_CREATE", click);
    let Interaction::Component(component) = bot.interaction().await else {
        panic!("expected a component interaction");
    };
    assert_eq!(component.data.custom_id, "approve:CHG-1");
    assert_eq!(component.message.id.get(), original.id);
    let ActionRowComponent::Button(button) = &component.message.components[0].components[0] else {
        panic!("expected the button on the clicked message");
    };
    assert!(
        matches!(&button.data, ButtonKind::NonLink { custom_id, .. } if custom_id == "approve:CHG-1")
    );
    let updated = fake.original_response(&token).expect("original response");
    assert_eq!(updated.content, "approve:CHG-1 by alice");
    assert_eq!(updated.edits(), 1);
    assert!(updated.components.is_empty());
    assert_eq!(fake.callbacks()[1].kind, 7);
}

#[tokio::test]
async fn a_modal_submit_is_deferred_edited_and_followed_up() {
    let fake = FakeDiscord::start().await;
    let mut bot = Bot::connect(&fake).await;
    bot.ready().await;

    let who = fake.invoker();
    let d = fake.modal_submit(&who, "reject:CHG-1", &[("reason", "too risky")]);
    let token = d["token"].as_str().expect("token").to_string();
    fake.send_dispatch("INTERACTION_CREATE", d);
    let Interaction::Modal(modal) = bot.interaction().await else {
        panic!("expected a modal interaction");
    };
    assert_eq!(modal.data.custom_id, "reject:CHG-1");
    let ActionRowComponent::InputText(input) = &modal.data.components[0].components[0] else {
        panic!("expected a text input");
    };
    assert_eq!(input.value.as_deref(), Some("too risky"));

    assert_eq!(fake.callbacks()[0].kind, 5);
    let original = fake.original_response(&token).expect("deferred response");
    assert_eq!(original.content, "reason noted");
    assert_eq!(original.flags & 64, 64, "ephemeral");
    let followups = fake.followups(&token);
    assert_eq!(followups.len(), 1);
    assert_eq!(followups[0].content, "follow-up");
}

#[tokio::test]
async fn channel_messages_are_sent_and_edited_through_the_proxy() {
    let fake = FakeDiscord::start().await;
    let http = fake.http(TOKEN);
    let channel = ChannelId::new(1_400_000_000_000_000_009);

    let create = CreateMessage::new()
        .content("CHG-7 scheduled")
        .embed(
            CreateEmbed::new()
                .title("CHG-7")
                .field("service", "payments-api", true),
        )
        .components(vec![CreateActionRow::Buttons(vec![
            CreateButton::new("approve:CHG-7").label("Approve"),
        ])]);
    let sent = channel
        .send_message(&http, create)
        .await
        .expect("message sent");
    assert_eq!(sent.channel_id, channel);
    assert_eq!(sent.content, "CHG-7 scheduled");
    assert_eq!(sent.embeds[0].title.as_deref(), Some("CHG-7"));
    assert_eq!(sent.components[0].components.len(), 1);
    assert_eq!(sent.author.id.get(), fake.config.bot_user_id);

    let edit = EditMessage::new().content("CHG-7 approved");
    let edited = channel
        .edit_message(&http, sent.id, edit)
        .await
        .expect("message edited");
    assert_eq!(edited.content, "CHG-7 approved");
    assert!(edited.edited_timestamp.is_some());

    let stored = fake.messages(channel.get());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, "CHG-7 approved");
    assert_eq!(
        stored[0].embeds[0]["title"], "CHG-7",
        "an edit keeps fields it leaves out"
    );
    assert_eq!(stored[0].edits(), 1);
    assert_eq!(stored[0].versions[0]["content"], "CHG-7 scheduled");
    let paths: Vec<String> = fake
        .rest_calls()
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    let base = format!("/api/v10/channels/{channel}/messages");
    assert_eq!(
        paths,
        vec![format!("POST {base}"), format!("PATCH {base}/{}", sent.id)]
    );
}

#[tokio::test]
async fn rest_lookups_deserialize() {
    let fake = FakeDiscord::start().await;
    let http = fake.http(TOKEN);
    assert_eq!(
        http.get_gateway().await.expect("gateway").url,
        fake.gateway_url
    );
    let bot_gateway = http.get_bot_gateway().await.expect("gateway/bot");
    assert_eq!(bot_gateway.shards, 1);
    assert_eq!(bot_gateway.session_start_limit.max_concurrency, 1);
    let me = http.get_current_user().await.expect("users/@me");
    assert_eq!(me.id.get(), fake.config.bot_user_id);
    assert!(me.bot);
    let app = http
        .get_current_application_info()
        .await
        .expect("applications/@me");
    assert_eq!(app.id.get(), fake.config.application_id);
}

/// Discord's 429 reaches the caller as `HttpError::UnsuccessfulRequest` with status 429; the
/// body lacks `code`, so serenity cannot decode it, and `retry-after` is not exposed.
#[tokio::test]
async fn a_429_comes_back_as_an_unsuccessful_request_without_retry_after() {
    let fake = FakeDiscord::start().await;
    let http = fake.http(TOKEN);
    let channel = ChannelId::new(1_400_000_000_000_000_009);

    fake.fail_next_rate_limited(0.5);
    let err = channel
        .send_message(&http, CreateMessage::new().content("first try"))
        .await
        .expect_err("429 is an error");
    let serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) = &err else {
        panic!("expected UnsuccessfulRequest, got {err:?}");
    };
    assert_eq!(response.status_code.as_u16(), 429);
    assert_eq!(response.error.code, -1, "Discord's 429 body has no `code`");
    assert!(
        response.error.message.contains("Could not decode json"),
        "{}",
        response.error.message
    );
    assert!(
        response
            .url
            .ends_with(&format!("/api/v10/channels/{channel}/messages"))
    );
    assert!(fake.messages(channel.get()).is_empty());
    assert_eq!(
        fake.rest_calls().len(),
        1,
        "serenity did not retry by itself"
    );

    // With a `code` in the body, the message is readable (still no retry_after).
    fake.fail_next(
        429,
        &[("retry-after", "1")],
        json!({ "message": "You are being rate limited.", "retry_after": 1.0, "global": true, "code": 0 }),
    );
    let err = channel
        .send_message(&http, CreateMessage::new().content("second try"))
        .await
        .expect_err("429 is an error");
    let serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) = &err else {
        panic!("expected UnsuccessfulRequest, got {err:?}");
    };
    assert_eq!(
        (response.error.code, response.error.message.as_str()),
        (0, "You are being rate limited.")
    );

    // The caller retries; the message lands once.
    channel
        .send_message(&http, CreateMessage::new().content("third try"))
        .await
        .expect("retry succeeds");
    let stored = fake.messages(channel.get());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, "third try");
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_and_missed_dispatches_replayed() {
    let fake = FakeDiscord::start().await;
    let mut bot = Bot::connect(&fake).await;
    let ready = bot.ready().await;

    // Closed with 4000, and an interaction dispatched before serenity is back.
    assert!(fake.drop_connection());
    let who = fake.invoker();
    let missed = fake.slash_command(&who, "status", vec![]);
    assert_eq!(fake.send_dispatch("INTERACTION_CREATE", missed), 2);

    fake.wait_until("a RESUME", || fake.resume_count() == 1)
        .await;
    let resume = &fake.resumes()[0];
    assert_eq!(resume["session_id"], ready.session_id.as_str());
    assert_eq!(resume["seq"], 1, "READY was the last dispatch serenity saw");
    assert_eq!(resume["token"], "Bot test-token");

    // Handlers run concurrently: the replayed command and RESUMED arrive in either order.
    let seen = [bot.next().await, bot.next().await];
    assert!(seen.iter().any(|s| matches!(s, Seen::Resumed)), "{seen:?}");
    assert!(
        seen.iter().any(|s| matches!(s, Seen::Interaction(i)
            if matches!(&**i, Interaction::Command(c) if c.data.name == "status"))),
        "{seen:?}"
    );
    assert_eq!(fake.identify_count(), 1, "resumed, not re-identified");
    assert_eq!(fake.connection_count(), 2);
    assert_eq!(
        fake.callbacks().len(),
        1,
        "the replayed command was answered"
    );

    // A network cut without a close frame is resumed too.
    assert!(fake.abort_connection());
    fake.wait_until("a second RESUME", || fake.resume_count() == 2)
        .await;
    assert!(matches!(bot.next().await, Seen::Resumed));
    let d = fake.slash_command(&who, "after", vec![]);
    fake.send_dispatch("INTERACTION_CREATE", d);
    let Interaction::Command(command) = bot.interaction().await else {
        panic!("expected a command after resuming");
    };
    assert_eq!(command.data.name, "after");
    assert_eq!(fake.identify_count(), 1);
}
