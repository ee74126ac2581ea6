//! GitHub App authentication: replies on pull requests go out with an installation token that
//! the App's JWT minted, a token close to its expiry is replaced before it is used, a key that
//! cannot be used stops the start, and an App that is not installed on the repository parks
//! the reply with a reason instead of retrying forever. Also: the sticky comment is found on
//! any page of a PR's comments, and only changebot's own.

mod support;

use std::path::Path;
use std::sync::Arc;

use changebot::app::App;
use changebot::clock::ManualClock;
use changebot::config::Config;
use changebot::notify::MemorySink;
use serde_json::json;
use support::Harness;
use support::github::{
    BOT_LOGIN, FakeGithub, TEST_APP_ID, TEST_APP_PRIVATE_KEY, TEST_INSTALLATION, signed_headers,
};

const MONDAY: &str = "2026-11-23T09:00:00Z";
const SECRET_ENV: &str = "CHANGEBOT_TEST_APP_WEBHOOK_SECRET";
const SECRET: &str = "gh-app-test-secret";
const KEY_ENV: &str = "CHANGEBOT_TEST_APP_PRIVATE_KEY";
const TOKEN_ENV: &str = "CHANGEBOT_TEST_APP_PERSONAL_TOKEN";
const SHA1: &str = "1111111111111111111111111111111111111111";

/// Keys that cannot be used, each in its own variable: (variable, value).
const NOT_PEM: (&str, &str) = ("CHANGEBOT_TEST_APP_KEY_NOT_PEM", "hunter2-is-not-a-key");
const PEM_JUNK: (&str, &str) = (
    "CHANGEBOT_TEST_APP_KEY_PEM_JUNK",
    "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END RSA PRIVATE KEY-----\n",
);
const TRUNCATED_ENV: &str = "CHANGEBOT_TEST_APP_KEY_TRUNCATED";

/// The test key with lines cut out of its middle: valid PEM and base64, not a usable key.
fn truncated_key() -> String {
    let lines: Vec<&str> = TEST_APP_PRIVATE_KEY.lines().collect();
    let keep = lines.len().saturating_sub(6);
    let mut out: Vec<&str> = lines[..keep / 2].to_vec();
    out.extend_from_slice(&lines[lines.len() - keep / 2..]);
    out.join("\n")
}

fn export_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any thread reads them, to the values every test expects.
    ONCE.call_once(|| unsafe {
        std::env::set_var(SECRET_ENV, SECRET);
        std::env::set_var(KEY_ENV, TEST_APP_PRIVATE_KEY);
        std::env::set_var(TOKEN_ENV, "gh-app-test-personal-token");
        std::env::set_var(NOT_PEM.0, NOT_PEM.1);
        std::env::set_var(PEM_JUNK.0, PEM_JUNK.1);
        std::env::set_var(TRUNCATED_ENV, truncated_key());
    });
}

/// The `[github]` section: the App with the key in `key_env`, or (`key_env` = None) a token.
fn github_section(api_url: &str, key_env: Option<&str>) -> String {
    let auth = match key_env {
        Some(env) => format!("app_id = {TEST_APP_ID}\nprivate_key_env = \"{env}\"\n"),
        None => format!("token_env = \"{TOKEN_ENV}\"\n"),
    };
    format!("\n[github]\nwebhook_secret_env = \"{SECRET_ENV}\"\n{auth}api_url = \"{api_url}\"\n")
}

/// The fixture organisation replying on GitHub at `api_url` as the test App (or with a token).
async fn harness(api_url: &str, app: bool) -> Harness {
    export_env();
    let section = github_section(api_url, app.then_some(KEY_ENV));
    Harness::sqlite_with_config(move |text| format!("{text}{section}"), MONDAY).await
}

async fn deliver(base: &str, event: &str, delivery: &str, body: &[u8]) {
    let res = reqwest::Client::new()
        .post(format!("{base}/webhooks/github"))
        .headers(signed_headers(SECRET, event, delivery, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("deliver");
    let status = res.status().as_u16();
    assert!((200..300).contains(&status), "{event}: {status}");
}

fn opened() -> Vec<u8> {
    json!({
        "action": "opened",
        "number": 42,
        "pull_request": {
            "number": 42, "title": "Enable card vault v2", "draft": false, "merged": false,
            "head": { "sha": SHA1, "ref": "vault" }, "labels": [{ "name": "risk:low" }],
            "user": { "login": "alice-gh" }
        },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": "alice-gh" }
    })
    .to_string()
    .into_bytes()
}

fn approved() -> Vec<u8> {
    json!({
        "action": "submitted",
        "review": { "state": "approved", "user": { "login": "dave-gh" }, "commit_id": SHA1, "body": "" },
        "pull_request": { "number": 42 },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": "dave-gh" }
    })
    .to_string()
    .into_bytes()
}

/// The calls that wrote or read the PR (comments, statuses), with the header each carried.
fn repo_calls(gh: &FakeGithub) -> Vec<(String, Option<String>)> {
    gh.requests()
        .into_iter()
        .filter(|r| r.path.contains("/issues/") || r.path.contains("/statuses/"))
        .map(|r| (format!("{} {}", r.method, r.path), r.authorization))
        .collect()
}

#[tokio::test]
async fn an_opened_pr_is_answered_with_an_installation_token_minted_with_the_apps_jwt() {
    let gh = FakeGithub::start().await;
    let h = harness(&gh.url, true).await;
    let base = support::serve_http(&h).await;
    deliver(&base, "pull_request", "app-1", &opened()).await;
    h.run_due().await;
    h.run_due().await;

    let comments = gh.comments();
    assert_eq!(comments.len(), 1, "one sticky comment: {comments:#?}");
    assert!(comments[0].body.contains("CHG-1"));
    let status = gh.statuses().last().cloned().expect("a status");
    assert_eq!(
        (status.state.as_str(), status.context.as_str()),
        ("pending", "changebot/change")
    );

    // One installation token, minted for the repository's installation with a JWT the fake
    // verified; every call on the PR carried that token.
    let minted = gh.minted();
    assert_eq!(minted.len(), 1, "{minted:#?}");
    assert_eq!(minted[0].installation, TEST_INSTALLATION);
    let token = format!("Bearer {}", minted[0].token);
    let calls = repo_calls(&gh);
    assert!(calls.len() >= 3, "list, create and status: {calls:#?}");
    for (call, auth) in &calls {
        assert_eq!(auth.as_deref(), Some(token.as_str()), "{call}");
    }
    let (verified, refused) = gh.jwts();
    assert!(verified >= 2, "installation lookup and mint: {verified}");
    assert_eq!(refused, 0);
    let lookup = gh
        .requests()
        .into_iter()
        .find(|r| r.path == "/repos/acme/payments/installation")
        .expect("the installation was looked up");
    assert!(
        lookup
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer ey")),
        "looked up with the App's JWT, not a token: {:?}",
        lookup.authorization
    );
    assert!(gh.requests().iter().all(|r| !r.bad_token));

    // The next reply reuses the installation and its token (an hour is left).
    deliver(&base, "pull_request_review", "app-2", &approved()).await;
    h.run_due().await;
    h.run_due().await;
    assert_eq!(
        gh.statuses().last().map(|s| s.state.clone()).as_deref(),
        Some("success")
    );
    assert_eq!(gh.minted().len(), 1, "the token was reused");
    assert_eq!(gh.installation_lookups(), 1, "the installation was cached");
    assert!(gh.comments()[0].edits >= 1);
    for (call, auth) in repo_calls(&gh) {
        assert_eq!(auth.as_deref(), Some(token.as_str()), "{call}");
    }
}

#[tokio::test]
async fn a_token_close_to_its_expiry_is_minted_again_before_the_next_call() {
    let gh = FakeGithub::start().await;
    // Tokens that expire in two minutes: octocrab alone would keep using one until its last
    // 30 seconds; changebot replaces any with less than five minutes left.
    gh.set_token_lifetime(chrono::Duration::minutes(2));
    let h = harness(&gh.url, true).await;
    let base = support::serve_http(&h).await;
    deliver(&base, "pull_request", "exp-1", &opened()).await;
    h.run_due().await;
    h.run_due().await;
    assert_eq!(gh.minted().len(), 1);
    let first_round = repo_calls(&gh).len();

    deliver(&base, "pull_request_review", "exp-2", &approved()).await;
    h.run_due().await;
    h.run_due().await;
    assert_eq!(
        gh.statuses().last().map(|s| s.state.clone()).as_deref(),
        Some("success")
    );
    let minted = gh.minted();
    assert_eq!(
        minted.len(),
        2,
        "a new token for the second reply: {minted:#?}"
    );
    // The second reply's calls all carried the new token, none the old one.
    let fresh = format!("Bearer {}", minted[1].token);
    let calls = repo_calls(&gh);
    assert!(calls.len() > first_round, "{calls:#?}");
    for (call, auth) in &calls[first_round..] {
        assert_eq!(auth.as_deref(), Some(fresh.as_str()), "{call}");
    }
    // The new token was minted while the old one was still valid, and no call was refused for
    // an expired or unknown token.
    assert!(minted[0].expires_at > chrono::Utc::now());
    assert!(gh.requests().iter().all(|r| !r.bad_token));
    assert_eq!(gh.installation_lookups(), 1);
}

/// The fixture organisation with the App's key read from `key_env`, on a fresh SQLite file.
fn app_config(dir: &tempfile::TempDir, api_url: &str, key_env: &str) -> Config {
    let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
    let text = format!(
        "{}{}",
        support::config_text(&url, None),
        github_section(api_url, Some(key_env))
    );
    Config::parse(&text, Path::new("tests/fixtures/org.toml"), &|_: &str| None)
        .expect("the config itself is valid")
}

#[tokio::test]
async fn a_private_key_that_cannot_be_used_stops_the_start_naming_its_variable() {
    export_env();
    let truncated = truncated_key();
    for (env, value) in [NOT_PEM, PEM_JUNK, (TRUNCATED_ENV, truncated.as_str())] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = app_config(&dir, "http://127.0.0.1:9", env);
        let clock = Arc::new(ManualClock::new(support::at(MONDAY)));
        let started = App::build_with(config, clock, Arc::new(MemorySink::default())).await;
        let Err(e) = started else {
            panic!("{env}: the app started with a key that cannot be used");
        };
        let message = format!("{e:#}");
        assert!(message.contains(env), "{env}: {message}");
        assert!(message.contains("private key"), "{env}: {message}");
        for line in value
            .lines()
            .filter(|l| l.len() > 8 && !l.starts_with("-----"))
        {
            assert!(!message.contains(line), "{env}: the key leaked: {message}");
        }
        println!("{env}: {message}");
    }
}

#[tokio::test]
async fn an_app_not_installed_on_the_repository_parks_the_reply_with_a_reason() {
    let gh = FakeGithub::start().await;
    gh.set_installation("acme/payments", None);
    let h = harness(&gh.url, true).await;
    let base = support::serve_http(&h).await;
    deliver(&base, "pull_request", "ni-1", &opened()).await;
    h.run_due().await;
    h.run_due().await;
    assert!(gh.comments().is_empty());
    assert!(gh.minted().is_empty());
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(
        history.contains("not installed on acme/payments"),
        "{history}"
    );
    let lookups = gh.installation_lookups();
    assert!(lookups >= 1);

    // Parked, not retried: an hour later nothing has asked GitHub again.
    h.set_time("2026-11-23T10:00:00Z");
    h.run_due().await;
    h.run_due().await;
    assert_eq!(gh.installation_lookups(), lookups, "no retry loop");
    // A card is audited when it is parked (it heals with the change's next move), once.
    let history = h.ok("alice", "change history CHG-1").await;
    assert_eq!(history.matches("not installed on").count(), 1, "{history}");
    println!("{history}");
}

#[tokio::test]
async fn the_sticky_comment_is_found_past_the_first_page_and_a_quoted_marker_is_not_taken_over() {
    for app in [true, false] {
        let mode = if app { "app" } else { "token" };
        let gh = FakeGithub::start().await;
        // A person pasted the marker into a comment of their own first; 130 comments later
        // (the second page of 100) is changebot's sticky comment, whose post's answer was lost.
        let marker = "<!-- changebot:CHG-1 -->";
        let quoted = gh.add_comment(
            "acme/payments",
            42,
            "mallory",
            &format!("{marker}\nlooks like the bot's comment"),
        );
        for i in 0..130 {
            gh.add_comment("acme/payments", 42, "alice-gh", &format!("comment {i}"));
        }
        let own = gh.add_comment(
            "acme/payments",
            42,
            BOT_LOGIN,
            &format!("{marker}\n**CHG-1** (before the lost answer)"),
        );
        let h = harness(&gh.url, app).await;
        let base = support::serve_http(&h).await;
        deliver(&base, "pull_request", &format!("{mode}-sticky"), &opened()).await;
        h.run_due().await;
        h.run_due().await;

        let comments = gh.comments();
        assert_eq!(comments.len(), 132, "{mode}: nothing new was posted");
        let find = |id: u64| comments.iter().find(|c| c.id == id).cloned();
        let own = find(own).expect("own comment");
        assert_eq!(own.edits, 1, "{mode}: the sticky comment was edited");
        assert!(own.body.contains("Status:"), "{mode}: {}", own.body);
        let quoted = find(quoted).expect("quoted comment");
        assert_eq!(quoted.edits, 0, "{mode}: mallory's comment is untouched");
        let pages: Vec<String> = gh
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/issues/42/comments"))
            .map(|r| r.query)
            .collect();
        assert!(
            pages.iter().any(|q| q.contains("page=2")),
            "{mode}: the second page was read: {pages:?}"
        );
    }
}
