//! Driving the GitHub webhook through the real router: the fixture organisation with GitHub
//! on, signed deliveries, and payload builders.
#![allow(dead_code)]

use serde_json::json;

use super::Harness;
use super::github::signed_headers;

pub const MONDAY: &str = "2026-11-23T09:00:00Z";
pub const SECRET_ENV: &str = "CHANGEBOT_TEST_GITHUB_SECRET";
pub const SECRET: &str = "gh-test-secret";
pub const TOKEN_ENV: &str = "CHANGEBOT_TEST_GITHUB_TOKEN";
pub const SHA1: &str = "1111111111111111111111111111111111111111";
pub const SHA2: &str = "2222222222222222222222222222222222222222";

pub fn export_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any thread reads them, to the values every test expects.
    ONCE.call_once(|| unsafe {
        std::env::set_var(SECRET_ENV, SECRET);
        std::env::set_var(TOKEN_ENV, "gh-test-token");
    });
}

/// The fixture organisation with GitHub on (replies to `api_url`), payments-api owning
/// acme/payments and the octokit examples' Codertocat/Hello-World.
pub async fn harness(postgres: bool, api_url: &str) -> Option<Harness> {
    harness_edited(postgres, api_url, |t| t).await
}

/// [`harness`] with the organisation's text edited first.
pub async fn harness_edited(
    postgres: bool,
    api_url: &str,
    edit: impl FnOnce(String) -> String + Send + 'static,
) -> Option<Harness> {
    export_env();
    let api = api_url.to_string();
    Harness::with_config(
        postgres,
        move |text| {
            let text = edit(text).replace(
                "repos = [\"acme/payments\"]",
                "repos = [\"acme/payments\", \"Codertocat/Hello-World\"]",
            );
            format!(
                "{text}\n[github]\nwebhook_secret_env = \"{SECRET_ENV}\"\ntoken_env = \"{TOKEN_ENV}\"\napi_url = \"{api}\"\n"
            )
        },
        MONDAY,
    )
    .await
}

pub async fn backends() -> Vec<(&'static str, bool)> {
    let mut all = vec![("sqlite", false)];
    if super::postgres_url().is_some() {
        all.push(("postgres", true));
    } else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
    }
    all
}

pub async fn deliver(base: &str, event: &str, delivery: &str, body: &[u8]) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/webhooks/github"))
        .headers(signed_headers(SECRET, event, delivery, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("deliver");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

pub fn pr_body(action: &str, sender: &str, sha: &str, merged: bool, labels: &[&str]) -> Vec<u8> {
    let labels: Vec<_> = labels.iter().map(|l| json!({ "name": l })).collect();
    json!({
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42, "title": "Enable card vault v2", "draft": false, "merged": merged,
            "head": { "sha": sha, "ref": "vault" }, "labels": labels,
            "user": { "login": sender }
        },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": sender }
    })
    .to_string()
    .into_bytes()
}

pub fn review_body(reviewer: &str, state: &str, sha: &str) -> Vec<u8> {
    json!({
        "action": "submitted",
        "review": { "state": state, "user": { "login": reviewer }, "commit_id": sha, "body": "" },
        "pull_request": { "number": 42 },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": reviewer }
    })
    .to_string()
    .into_bytes()
}

pub fn comment_body(author: &str, text: &str) -> Vec<u8> {
    json!({
        "action": "created",
        "issue": { "number": 42, "pull_request": { "url": "x" } },
        "comment": { "body": text, "user": { "login": author } },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": author }
    })
    .to_string()
    .into_bytes()
}

/// A `check_run` delivery on acme/payments.
pub fn check_run_body(
    name: &str,
    sha: &str,
    status: &str,
    conclusion: Option<&str>,
    at: &str,
) -> Vec<u8> {
    json!({
        "action": if status == "completed" { "completed" } else { "created" },
        "check_run": {
            "name": name, "head_sha": sha, "status": status, "conclusion": conclusion,
            "started_at": at, "completed_at": if status == "completed" { Some(at) } else { None },
            "app": { "slug": "github-actions", "name": "GitHub Actions" },
            "pull_requests": [{ "number": 42 }]
        },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": "github-actions[bot]" }
    })
    .to_string()
    .into_bytes()
}

/// A `status` delivery on acme/payments.
pub fn status_body(context: &str, sha: &str, state: &str, at: &str) -> Vec<u8> {
    json!({
        "sha": sha, "context": context, "state": state, "updated_at": at,
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": "ci-bot" }
    })
    .to_string()
    .into_bytes()
}

/// Delivers one signed event and runs what fell due (twice: processing, then its effects).
pub async fn send(h: &Harness, base: &str, event: &str, delivery: &str, body: Vec<u8>) {
    let (status, text) = deliver(base, event, delivery, &body).await;
    assert!(
        (200..300).contains(&status),
        "{event} {delivery}: {status} {text}"
    );
    h.run_due().await;
    h.run_due().await;
}

/// A `deployment_protection_rule` (`requested`) delivery for run `run_id` of acme/payments,
/// answered at `api_url`.
pub fn protection_body(
    api_url: &str,
    run_id: u64,
    environment: &str,
    sha: &str,
    prs: &[i64],
) -> Vec<u8> {
    let prs: Vec<_> = prs.iter().map(|n| json!({ "number": n })).collect();
    json!({
        "action": "requested",
        "environment": environment,
        "event": "push",
        "sha": sha,
        "ref": "refs/heads/main",
        "deployment_callback_url": format!(
            "{api_url}/repos/acme/payments/actions/runs/{run_id}/deployment_protection_rule"
        ),
        "deployment": { "id": 9000 + run_id, "sha": sha, "environment": environment },
        "pull_requests": prs,
        "repository": { "full_name": "acme/payments" },
        "installation": { "id": 4242 },
        "sender": { "login": "alice-gh" }
    })
    .to_string()
    .into_bytes()
}

/// A `deployment_status` delivery for GitHub deployment `id` of acme/payments.
pub fn deployment_status_body(id: u64, environment: &str, sha: &str, state: &str) -> Vec<u8> {
    json!({
        "action": "created",
        "deployment_status": {
            "state": state, "description": format!("deploy {state}"),
            "log_url": "https://github.com/acme/payments/actions/runs/1",
            "environment": environment, "updated_at": "2026-11-23T21:05:00Z"
        },
        "deployment": { "id": id, "sha": sha, "environment": environment },
        "repository": { "full_name": "acme/payments" },
        "sender": { "login": "github-actions[bot]" }
    })
    .to_string()
    .into_bytes()
}
