//! Recorded Discord payloads (`../shared/fixtures/discord/`, Discord4J's gateway captures)
//! sent through the fake gateway to the real serenity client.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};
use serenity::all::{CommandDataOptionValue, Interaction};

use crate::bot::{Bot, Seen};
use crate::support::discord::{FakeConfig, FakeDiscord, snowflake};

fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/discord");
    if dir.join("Ready.json").is_file() {
        return Some(dir);
    }
    // Written to stderr directly so it shows even when the harness captures output.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED recorded_discord_payloads_reach_serenity: {} is absent",
        dir.display()
    );
    None
}

fn load(dir: &std::path::Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The interaction fields serenity 0.12.5 requires and these older captures lack: `locale`,
/// `entitlements`, `attachment_size_limit`, and the command's `data.type` (1: chat input).
fn adapt_interaction(mut d: Value) -> Value {
    d["data"]["type"] = json!(1);
    d["locale"] = json!("en-US");
    d["entitlements"] = json!([]);
    d["attachment_size_limit"] = json!(10_485_760);
    d
}

#[tokio::test]
async fn recorded_discord_payloads_reach_serenity() {
    let Some(dir) = fixtures_dir() else {
        return;
    };
    let hello = load(&dir, "Hello.json");
    let ready = load(&dir, "Ready.json");
    let interaction = load(&dir, "InteractionCreate.json");
    let group = load(&dir, "InteractionCreate.SubCommandGroup.json");

    // HELLO is sent verbatim (heartbeat 41250 ms: no heartbeat during the test). READY keeps
    // its ids; only resume_gateway_url is pointed at the fake.
    let mut ready_d = ready["d"].clone();
    let application_id = snowflake(&ready_d["application"]["id"]);
    let config = FakeConfig {
        application_id,
        bot_user_id: snowflake(&ready_d["user"]["id"]),
        hello: Some(hello),
        ..FakeConfig::default()
    };
    let fake = FakeDiscord::start_with(config).await;
    ready_d["resume_gateway_url"] = json!(fake.gateway_url);
    fake.set_ready(Some(ready_d));

    let mut bot = Bot::connect(&fake).await;
    let seen_ready = bot.ready().await;
    assert_eq!(seen_ready.user.name, "Reacton");
    assert_eq!(seen_ready.session_id, "c5adc7ce7f411cde10440df5f888dc22");
    assert_eq!(seen_ready.guilds.len(), 6);
    assert_eq!(seen_ready.application.id.get(), application_id);
    assert_eq!(
        fake.session_id().as_deref(),
        Some("c5adc7ce7f411cde10440df5f888dc22")
    );

    // The capture as recorded lacks locale/entitlements/attachment_size_limit: serenity cannot
    // deserialize it and drops it. The adapted one arrives, and the reply reaches the fake.
    // Each added field is required by serenity: without it the payload does not deserialize.
    for field in ["locale", "entitlements", "attachment_size_limit", "type"] {
        let mut d = adapt_interaction(interaction["d"].clone());
        let object = if field == "type" {
            &mut d["data"]
        } else {
            &mut d
        };
        object.as_object_mut().expect("object").remove(field);
        let err = serde_json::from_value::<Interaction>(d)
            .expect_err(field)
            .to_string();
        assert!(err.contains(&format!("missing field `{field}`")), "{err}");
    }
    for d in [&interaction["d"], &group["d"]] {
        if let Err(e) = serde_json::from_value::<Interaction>(adapt_interaction(d.clone())) {
            panic!("the adapted capture does not deserialize: {e}");
        }
    }
    fake.send_dispatch("INTERACTION_CREATE", interaction["d"].clone());
    fake.send_dispatch(
        "INTERACTION_CREATE",
        adapt_interaction(interaction["d"].clone()),
    );
    fake.send_dispatch("INTERACTION_CREATE", adapt_interaction(group["d"].clone()));

    let Interaction::Command(first) = bot.interaction().await else {
        panic!("expected a command interaction");
    };
    assert_eq!(first.data.name, "payload");
    assert_eq!(first.token, "hunter2");
    assert_eq!(first.data.options.len(), 6);
    assert_eq!(
        first.data.options[1].value,
        CommandDataOptionValue::Integer(52)
    );
    assert_eq!(first.user.name, "Shadorc");

    let Interaction::Command(second) = bot.interaction().await else {
        panic!("expected the subcommand-group interaction");
    };
    assert_eq!(
        second.id.get(),
        snowflake(&group["d"]["id"]),
        "the raw capture was dropped"
    );
    let CommandDataOptionValue::SubCommandGroup(subs) = &second.data.options[0].value else {
        panic!("expected a subcommand group: {:?}", second.data.options);
    };
    let CommandDataOptionValue::SubCommand(options) = &subs[0].value else {
        panic!("expected a subcommand: {subs:?}");
    };
    assert_eq!(
        (second.data.options[0].name.as_str(), subs[0].name.as_str()),
        ("group", "cmd")
    );
    assert_eq!(options[0].value.as_str(), Some("hello"));

    fake.wait_until("two callbacks", || fake.callbacks().len() == 2)
        .await;
    let callbacks = fake.callbacks();
    assert_eq!(
        callbacks[0].interaction_id,
        snowflake(&interaction["d"]["id"])
    );
    assert_eq!(callbacks[0].token, "hunter2");
    assert_eq!(
        callbacks[0].data.as_ref().map(|d| d["content"].clone()),
        Some(json!("payload received"))
    );
    assert!(!matches!(bot.events.try_recv(), Ok(Seen::Interaction(_))));
}
