//! Discord (issue 9) through the real serenity client against an in-process fake Discord
//! (REST through serenity's proxy setting, a local gateway): slash commands registered from the
//! one command definition, interactions run through the workflow, change cards edited in
//! place from any surface, posting that survives rate limits, a dropped gateway resumed.

mod support;

use std::time::Duration;

use changebot::domain::{ChangeId, State};
use serde_json::Value;
use support::Harness;
use support::discord::{FakeDiscord, Invoker, payloads};

const MONDAY: &str = "2026-11-23T09:00:00Z";
const TOKEN_ENV: &str = "CHANGEBOT_TEST_DISCORD_TOKEN";
const RELEASES: u64 = 1_300_000_000_000_000_001;
const CAB: u64 = 1_300_000_000_000_000_002;
/// dave's Discord id (payments-owners).
const DAVE: u64 = 1_500_000_000_000_000_042;
/// Nobody's Discord id.
const STRANGER: u64 = 1_500_000_000_000_000_099;

fn export_token() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any thread reads it, to the value every test expects.
    ONCE.call_once(|| unsafe { std::env::set_var(TOKEN_ENV, "discord-test-token") });
}

async fn harness(postgres: bool, fake: &FakeDiscord) -> Option<Harness> {
    export_token();
    let url = fake.url.clone();
    let guild = fake.config.guild_ids[0];
    Harness::with_config(
        postgres,
        move |text| {
            let text = text.replace(
                "name = \"dave\"\ngithub = \"dave-gh\"\n",
                &format!("name = \"dave\"\ngithub = \"dave-gh\"\ndiscord = \"{DAVE}\"\n"),
            );
            format!(
                "{text}\n[discord]\ntoken_env = \"{TOKEN_ENV}\"\napi_url = \"{url}\"\nguild_id = \"{guild}\"\nchannels = {{ releases = \"{RELEASES}\", cab = \"{CAB}\" }}\n"
            )
        },
        MONDAY,
    )
    .await
}

/// Starts this harness's gateway holder: aborting the task kills it (no clean stop).
fn connect(
    h: &Harness,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let gateway = h
        .app
        .discord
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .expect("discord is configured");
    (stop, tokio::spawn(gateway.run(rx)))
}

fn who(fake: &FakeDiscord, user: u64, name: &str) -> Invoker {
    Invoker {
        user_id: user,
        username: name.to_string(),
        ..fake.invoker()
    }
}

fn names(commands: &Value) -> Vec<String> {
    let mut out: Vec<String> = commands
        .as_array()
        .map(|all| {
            all.iter()
                .flat_map(|c| {
                    let top = c["name"].as_str().unwrap_or_default().to_string();
                    let subs: Vec<String> = c["options"]
                        .as_array()
                        .map(|o| {
                            o.iter()
                                .filter(|o| o["type"] == 1)
                                .map(|o| {
                                    format!("{top} {}", o["name"].as_str().unwrap_or_default())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if subs.is_empty() { vec![top] } else { subs }
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn card_in(fake: &FakeDiscord, channel: u64, id: &str) -> support::discord::FakeMessage {
    let needle = format!("{id} ·");
    fake.wait_for(&format!("the card of {id}"), || {
        fake.messages(channel).into_iter().find(|m| {
            m.embeds
                .iter()
                .any(|e| e["title"].as_str().is_some_and(|t| t.starts_with(&needle)))
        })
    })
    .await
}

fn buttons(m: &support::discord::FakeMessage) -> usize {
    m.components
        .iter()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .count()
}

#[tokio::test]
async fn a_cab_runs_a_change_in_discord_through_the_real_serenity_client() {
    let fake = FakeDiscord::start().await;
    let h = harness(false, &fake).await.expect("harness");
    let _running = connect(&h);
    fake.wait_until("IDENTIFY", || fake.identify_count() == 1)
        .await;

    // READY: the slash commands are registered in bulk for the guild, exactly the commands
    // of the one definition.
    let guild = fake.config.guild_ids[0];
    let registered = fake
        .wait_for("commands registered", || fake.guild_commands(guild))
        .await;
    let mut expected: Vec<String> = changebot::chat::spec::commands()
        .iter()
        .map(|d| d.words.join(" "))
        .collect();
    expected.sort();
    assert_eq!(names(&registered), expected);

    // `/change open` by someone unmapped: they may open; the reply names the change, then
    // the card appears in the service's channel with Approve and Reject.
    let stranger = who(&fake, STRANGER, "stranger");
    let open = fake.slash_command(
        &stranger,
        "change",
        vec![payloads::subcommand(
            "open",
            vec![
                payloads::string_option("service", "payments-api"),
                payloads::string_option("title", "Rotate the vault keys"),
                payloads::string_option("risk", "low"),
            ],
        )],
    );
    fake.send_dispatch("INTERACTION_CREATE", open.clone());
    let reply = fake
        .wait_for("the open reply", || {
            fake.all_messages()
                .into_iter()
                .find(|m| m.original_response && m.content.contains("CHG-1"))
        })
        .await;
    assert_eq!(reply.flags & 64, 0, "a success is public: {reply:?}");
    // The same interaction delivered again (a reconnect, another replica): handled once.
    fake.send_dispatch("INTERACTION_CREATE", open);
    let show = fake.slash_command(
        &stranger,
        "change",
        vec![payloads::subcommand(
            "show",
            vec![payloads::string_option("id", "CHG-1")],
        )],
    );
    fake.send_dispatch("INTERACTION_CREATE", show);
    fake.wait_until("the show reply", || {
        fake.all_messages()
            .iter()
            .filter(|m| m.original_response && m.content.contains("CHG-1"))
            .count()
            >= 2
    })
    .await;
    assert_eq!(
        h.app.workflow.store().count_changes().await.expect("count"),
        1
    );
    h.run_due().await;
    let card = card_in(&fake, RELEASES, "CHG-1").await;
    assert_eq!(buttons(&card), 2, "{card:?}");

    // The stranger clicks Approve: an ephemeral refusal, nothing recorded.
    fake.send_dispatch(
        "INTERACTION_CREATE",
        fake.button_click(&stranger, card.id, "approve:CHG-1"),
    );
    let refusal = fake
        .wait_for("the refusal", || {
            fake.all_messages().into_iter().find(|m| {
                m.original_response && m.flags & 64 != 0 && m.content.contains("not mapped")
            })
        })
        .await;
    assert!(refusal.content.contains("discord:"), "{refusal:?}");
    assert!(
        h.app
            .workflow
            .store()
            .votes(ChangeId(1))
            .await
            .expect("votes")
            .is_empty()
    );

    // dave (mapped, an owner) clicks Approve: approved, the card is edited, buttons gone.
    let dave = who(&fake, DAVE, "dave");
    fake.send_dispatch(
        "INTERACTION_CREATE",
        fake.button_click(&dave, card.id, "approve:CHG-1"),
    );
    eventually("dave's approval", || async {
        h.app
            .workflow
            .store()
            .change(ChangeId(1))
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.state == State::Scheduled)
    })
    .await;
    let change = h
        .app
        .workflow
        .store()
        .change(ChangeId(1))
        .await
        .expect("read")
        .expect("CHG-1");
    assert_eq!(
        change.state,
        State::Scheduled,
        "{:#?}",
        fake.callbacks()
            .iter()
            .map(|c| c.data.clone())
            .collect::<Vec<_>>()
    );
    h.run_due().await;
    let edited = fake
        .wait_for("the card edited", || {
            fake.messages(RELEASES)
                .into_iter()
                .find(|m| m.id == card.id && m.edits() >= 1 && buttons(m) == 0)
        })
        .await;
    assert!(
        edited.embeds[0].to_string().contains("scheduled"),
        "{edited:?}"
    );
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(
        history.contains(&format!("dave via discord:{DAVE}")),
        "{history}"
    );

    // A change approved on the console edits its Discord card too.
    h.ok(
        "alice",
        "change open payments-api \"Bump the TLS library\" --risk low",
    )
    .await;
    h.run_due().await;
    let second = card_in(&fake, RELEASES, "CHG-2").await;
    h.ok("dave", "change approve CHG-2 ok").await;
    h.run_due().await;
    fake.wait_until("CHG-2's card edited", || {
        fake.messages(RELEASES)
            .iter()
            .any(|m| m.id == second.id && m.edits() >= 1 && buttons(m) == 0)
    })
    .await;

    // Reject asks for a reason in a modal; submitting it rejects.
    h.ok(
        "alice",
        "change open payments-api \"Drop the legacy API\" --risk low",
    )
    .await;
    h.run_due().await;
    let third = card_in(&fake, RELEASES, "CHG-3").await;
    fake.send_dispatch(
        "INTERACTION_CREATE",
        fake.button_click(&dave, third.id, "reject:CHG-3"),
    );
    fake.wait_until("the reject modal", || {
        fake.callbacks().iter().any(|c| c.kind == 9)
    })
    .await;
    fake.send_dispatch(
        "INTERACTION_CREATE",
        fake.modal_submit(
            &dave,
            "reject:CHG-3",
            &[("reason", "clients still call it")],
        ),
    );
    eventually("CHG-3 rejected", || async {
        let votes = h
            .app
            .workflow
            .store()
            .votes(ChangeId(3))
            .await
            .unwrap_or_default();
        votes.iter().any(|v| v.comment == "clients still call it")
    })
    .await;
}

/// Polls `check` until it holds, failing after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rate_limited_announcement_is_posted_once_and_a_dropped_gateway_resumes() {
    let fake = FakeDiscord::start().await;
    let h = harness(false, &fake).await.expect("harness");
    let _running = connect(&h);
    fake.wait_until("IDENTIFY", || fake.identify_count() == 1)
        .await;

    // Discord (through the proxy) answers 429 to the first post: the card is retried from
    // the outbox and posted exactly once.
    let guild = fake.config.guild_ids[0];
    fake.wait_for("commands registered", || fake.guild_commands(guild))
        .await;
    fake.fail_next_rate_limited(30.0);
    h.ok(
        "alice",
        "change open payments-api \"Rotate the vault keys\" --risk low",
    )
    .await;
    h.run_due().await;
    assert!(fake.messages(RELEASES).is_empty(), "refused once");
    // Discord said 30 s: not sooner (the outbox's own first backoff would be 1 to 2 s)...
    h.set_time("2026-11-23T09:00:20Z");
    h.run_due().await;
    assert!(
        fake.messages(RELEASES).is_empty(),
        "retry_after is honoured"
    );
    // ...and then it goes out, once.
    h.set_time("2026-11-23T09:01:00Z");
    h.run_due().await;
    let cards: Vec<_> = fake
        .messages(RELEASES)
        .into_iter()
        .filter(|m| !m.embeds.is_empty())
        .collect();
    assert_eq!(cards.len(), 1, "{cards:#?}");

    // An emergency change is announced to the CAB channel at once.
    h.ok(
        "alice",
        "change open payments-api \"Hotfix the card vault\" --type emergency",
    )
    .await;
    h.run_due().await;
    fake.wait_until("the CAB alert", || {
        fake.messages(CAB)
            .iter()
            .any(|m| m.content.contains("emergency change: CHG-2"))
    })
    .await;

    // The gateway connection drops: serenity resumes, and commands keep working.
    fake.wait_for("the session", || fake.session_id()).await;
    fake.drop_connection();
    fake.wait_until("RESUME", || fake.resume_count() == 1).await;
    let show = fake.slash_command(
        &who(&fake, STRANGER, "stranger"),
        "change",
        vec![payloads::subcommand(
            "show",
            vec![payloads::string_option("id", "CHG-1")],
        )],
    );
    fake.send_dispatch("INTERACTION_CREATE", show);
    fake.wait_until("the show reply", || {
        fake.all_messages()
            .iter()
            .any(|m| m.original_response && m.content.contains("Rotate the vault keys"))
    })
    .await;
    assert_eq!(fake.identify_count(), 1, "resumed, not identified again");
}

#[tokio::test]
async fn with_two_replicas_one_holds_the_gateway_and_the_other_takes_over() {
    if support::postgres_url().is_none() {
        eprintln!("skipping: CHANGEBOT_TEST_POSTGRES_URL is unset");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter("changebot=debug,serenity=info")
        .with_test_writer()
        .try_init();
    let fake = FakeDiscord::start().await;
    let first = harness(true, &fake).await.expect("harness");
    let second = first.second_replica().await;
    let (_stop_first, first_task) = connect(&first);
    let (_stop_second, second_task) = connect(&second);
    fake.wait_until("IDENTIFY", || fake.identify_count() == 1)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.identify_count(), 1, "only one replica connects");

    // The holder dies (no clean stop, its lease is left to lapse); once the lease has run out
    // the other identifies within seconds and answers.
    let holder = first
        .app
        .workflow
        .store()
        .lease_holder(changebot::discord::gateway::LEASE, support::at(MONDAY))
        .await
        .expect("read the lease")
        .expect("someone holds it");
    let (dying, _survivor) = if holder == first.app.holder.instance() {
        (first_task, second_task)
    } else {
        (second_task, first_task)
    };
    dying.abort();
    let _ = dying.await; // gone for good: no renewal after this point
    first.set_time("2026-11-23T09:00:10Z");
    fake.wait_until("the second IDENTIFY", || fake.identify_count() == 2)
        .await;
    let list = fake.slash_command(
        &who(&fake, STRANGER, "stranger"),
        "change",
        vec![payloads::subcommand("list", vec![])],
    );
    fake.send_dispatch("INTERACTION_CREATE", list);
    fake.wait_until("the list reply", || {
        fake.callbacks().iter().any(|c| c.kind == 4)
    })
    .await;
}

#[tokio::test]
async fn a_change_approved_on_github_edits_its_discord_card() {
    use support::github::FakeGithub;
    use support::hooks;
    let fake = FakeDiscord::start().await;
    let gh = FakeGithub::start().await;
    export_token();
    hooks::export_env();
    let (url, api) = (fake.url.clone(), gh.url.clone());
    let guild = fake.config.guild_ids[0];
    let h = Harness::with_config(
        false,
        move |text| {
            format!(
                "{text}\n[discord]\ntoken_env = \"{TOKEN_ENV}\"\napi_url = \"{url}\"\nguild_id = \"{guild}\"\nchannels = {{ releases = \"{RELEASES}\", cab = \"{CAB}\" }}\n[github]\nwebhook_secret_env = \"{}\"\ntoken_env = \"{}\"\napi_url = \"{api}\"\n",
                hooks::SECRET_ENV,
                hooks::TOKEN_ENV
            )
        },
        MONDAY,
    )
    .await
    .expect("harness");
    let base = support::serve_http(&h).await;
    hooks::send(
        &h,
        &base,
        "pull_request",
        "gh-open",
        hooks::pr_body("opened", "alice-gh", hooks::SHA1, false, &["risk:low"]),
    )
    .await;
    let card = card_in(&fake, RELEASES, "CHG-1").await;
    assert_eq!(buttons(&card), 2, "{card:?}");
    hooks::send(
        &h,
        &base,
        "pull_request_review",
        "gh-review",
        hooks::review_body("dave-gh", "approved", hooks::SHA1),
    )
    .await;
    fake.wait_until("the Discord card edited by a GitHub review", || {
        fake.messages(RELEASES).iter().any(|m| {
            m.id == card.id
                && m.edits() >= 1
                && buttons(m) == 0
                && m.embeds[0].to_string().contains("dave")
        })
    })
    .await;
}
