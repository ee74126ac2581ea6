//! Deployment callbacks (`POST /webhooks/deployments/{id}`) cannot be replayed or probed: the
//! signature is checked before anything is looked up, the body must name the deployment in the
//! URL, and only the deployment's own target's secret can finish it. Refused callbacks change
//! nothing.

mod support;

use std::path::Path;
use std::sync::Arc;

use changebot::app::App;
use changebot::config::Config;
use changebot::domain::ChangeId;
use changebot::domain::release::{Deployment, DeploymentStatus};
use changebot::store::AuditEntry;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use support::target::{FakeTarget, Reply};
use support::{DEPLOY_SECRET, DEPLOY_SECRET_ENV, Harness};

/// Monday 2026-11-23 10:00 Berlin; the weeknights window opens at 22:00 Berlin (21:00Z).
const MONDAY: &str = "2026-11-23T09:00:00Z";

/// A second target (payments-api/staging) with a secret of its own.
const STAGING_SECRET_ENV: &str = "CHANGEBOT_TEST_STAGING_DEPLOY_SECRET";
const STAGING_SECRET: &str = "staging-deploy-secret";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn signed(secret: &str, body: &str) -> Option<String> {
    Some(format!("sha256={}", hmac_hex(secret, body.as_bytes())))
}

/// POSTs `body` as a callback for `deployment`; returns the status and the response body.
async fn callback(
    base: &str,
    deployment: &str,
    body: &str,
    signature: Option<String>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/webhooks/deployments/{deployment}"))
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("X-Changebot-Signature-256", signature);
    }
    let response = request.send().await.expect("callback");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}

/// Everything a callback could change about a change: its record, deployments and audit trail.
async fn snapshot(h: &Harness, change: i64) -> (String, Vec<Deployment>, Vec<AuditEntry>) {
    let store = h.app.workflow.store();
    let id = ChangeId(change);
    let shown = h.ok("alice", &format!("change show {id}")).await;
    let deployments = store.deployments(id).await.expect("deployments");
    let audit = store.audit(id).await.expect("audit");
    (shown, deployments, audit)
}

/// CHG-1 (booked for 22:00 Berlin) is released at its slot as DEP-1 and the target answers 202,
/// so DEP-1 waits for its callback.
async fn one_deployment_waiting(h: &Harness) {
    h.ok("alice", "change open payments-api Enable card vault v2")
        .await;
    h.ok("dave", "change approve CHG-1").await;
    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    let status = h.ok("alice", "release status CHG-1").await;
    assert!(status.contains("DEP-1 in_progress"), "{status}");
}

/// DEP-1 as above, and DEP-2: an emergency change CHG-2 released by hand, also answered 202.
async fn two_deployments_waiting(h: &Harness) {
    one_deployment_waiting(h).await;
    h.ok(
        "alice",
        "change open payments-api Roll back ledger --type emergency --risk high",
    )
    .await;
    h.ok("erin", "change approve CHG-2 go").await;
    h.ok("alice", "release now CHG-2 --reason double charges")
        .await;
    h.run_due().await;
    let status = h.ok("alice", "release status CHG-2").await;
    assert!(status.contains("DEP-2 in_progress"), "{status}");
}

fn sets_staging_secret() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    support::export_deploy_secret();
    // SAFETY: set once, before this test binary's harnesses read any secret, to a fixed value.
    ONCE.call_once(|| unsafe { std::env::set_var(STAGING_SECRET_ENV, STAGING_SECRET) });
}

/// The fixture with payments-api deploying production to `target_url` (the support secret)
/// and staging to the same URL with [`STAGING_SECRET`].
fn config_with_staging(database_url: &str, target_url: &str) -> Config {
    let production = support::config_text(database_url, Some(target_url));
    let staging = format!(
        "timeout = \"15m\"\n[service.deploy.staging]\nurl = \"{target_url}\"\nsecret_env = \"{STAGING_SECRET_ENV}\"\ntimeout = \"15m\"\n"
    );
    let text = production.replacen("timeout = \"15m\"\n", &staging, 1);
    assert!(text.contains("[service.deploy.staging]"), "{text}");
    let env = |name: &str| match name {
        DEPLOY_SECRET_ENV => Some(DEPLOY_SECRET.to_owned()),
        STAGING_SECRET_ENV => Some(STAGING_SECRET.to_owned()),
        _ => None,
    };
    Config::parse(&text, Path::new("tests/fixtures/org.toml"), &env).expect("valid config")
}

#[tokio::test]
async fn unsigned_or_mis_signed_callbacks_get_the_same_401_whether_or_not_the_deployment_exists() {
    sets_staging_secret();
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(202, "{}")]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    let base = support::serve_http(&h).await;
    one_deployment_waiting(&h).await;
    let before = snapshot(&h, 1).await;

    let existing = r#"{"deployment_id":"DEP-1","status":"succeeded"}"#;
    let missing = r#"{"deployment_id":"DEP-99","status":"succeeded"}"#;
    let unsigned_existing = callback(&base, "DEP-1", existing, None).await;
    let unsigned_missing = callback(&base, "DEP-99", missing, None).await;
    assert_eq!(unsigned_existing.0, 401, "{unsigned_existing:?}");
    assert_eq!(
        unsigned_existing, unsigned_missing,
        "an unsigned caller cannot tell which deployments exist"
    );
    assert!(
        unsigned_existing.1.contains("X-Changebot-Signature-256"),
        "the refusal says what is wrong: {}",
        unsigned_existing.1
    );

    let forged_existing = callback(&base, "DEP-1", existing, signed("guess", existing)).await;
    let forged_missing = callback(&base, "DEP-99", missing, signed("guess", missing)).await;
    assert_eq!(forged_existing.0, 401, "{forged_existing:?}");
    assert_eq!(forged_existing, forged_missing);
    assert_eq!(forged_existing, unsigned_existing);

    // Garbage after `sha256=` or a different scheme is no better.
    let garbage = callback(&base, "DEP-99", missing, Some("sha256=zz".into())).await;
    assert_eq!(garbage, unsigned_existing);
    let sha1 = callback(&base, "DEP-1", existing, Some("sha1=00".into())).await;
    assert_eq!(sha1, unsigned_existing);

    assert_eq!(
        snapshot(&h, 1).await,
        before,
        "refused callbacks change nothing"
    );

    // Only a correctly signed caller learns that DEP-99 does not exist.
    let (status, text) = callback(&base, "DEP-99", missing, signed(DEPLOY_SECRET, missing)).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("DEP-99"), "{text}");
}

#[tokio::test]
async fn a_callback_without_deployment_id_is_refused_and_changes_nothing() {
    sets_staging_secret();
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(202, "{}")]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    let base = support::serve_http(&h).await;
    one_deployment_waiting(&h).await;
    let before = snapshot(&h, 1).await;

    for body in [
        r#"{"status":"succeeded"}"#,
        r#"{"status":"failed","message":"boom"}"#,
        r#"{"status":"succeeded","deployment_id":null}"#,
    ] {
        let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            text.contains("deployment_id") && text.contains("DEP-1"),
            "the refusal says what is missing: {text}"
        );
    }
    assert_eq!(
        snapshot(&h, 1).await,
        before,
        "refused callbacks change nothing"
    );

    // Malformed bodies and ids that are not deployment ids are refused as well.
    for body in [
        "not json",
        r#"{"deployment_id":"DEP-1","status":"exploded"}"#,
        r#"{"deployment_id":"CHG-1","status":"succeeded"}"#,
        r#"{"deployment_id":7,"status":"succeeded"}"#,
    ] {
        let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
        assert_eq!(status, 400, "{body}: {text}");
    }
    assert_eq!(
        snapshot(&h, 1).await,
        before,
        "refused callbacks change nothing"
    );

    let body = r#"{"deployment_id":"DEP-1","status":"succeeded","message":"rolled out"}"#;
    let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
    assert_eq!(status, 200, "{text}");
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.starts_with("CHG-1 · closed"), "{shown}");
}

#[tokio::test]
async fn a_body_signed_for_one_deployment_cannot_finish_another() {
    sets_staging_secret();
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(202, "{}"), Reply::Status(202, "{}")]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    let base = support::serve_http(&h).await;
    two_deployments_waiting(&h).await;
    let before = (snapshot(&h, 1).await, snapshot(&h, 2).await);

    // A body that names no deployment could be replayed against any deployment of the target.
    let anonymous = r#"{"status":"failed","message":"rolled back"}"#;
    let (status, text) =
        callback(&base, "DEP-2", anonymous, signed(DEPLOY_SECRET, anonymous)).await;
    assert_eq!(status, 400, "{text}");
    // What the target sent for DEP-1, replayed against DEP-2 by someone who saw it.
    let for_dep1 = r#"{"deployment_id":"DEP-1","status":"failed","message":"rolled back"}"#;
    let (status, text) = callback(&base, "DEP-2", for_dep1, signed(DEPLOY_SECRET, for_dep1)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("DEP-1") && text.contains("DEP-2"), "{text}");
    assert_eq!(
        (snapshot(&h, 1).await, snapshot(&h, 2).await),
        before,
        "refused callbacks change nothing"
    );

    let (status, text) = callback(&base, "DEP-1", for_dep1, signed(DEPLOY_SECRET, for_dep1)).await;
    assert_eq!(status, 200, "{text}");
    let for_dep2 = r#"{"deployment_id":"DEP-2","status":"succeeded"}"#;
    let (status, text) = callback(&base, "DEP-2", for_dep2, signed(DEPLOY_SECRET, for_dep2)).await;
    assert_eq!(status, 200, "{text}");
    let dep1 = h.ok("alice", "release status CHG-1").await;
    assert!(dep1.contains("DEP-1 failed: rolled back"), "{dep1}");
    let dep2 = h.ok("alice", "release status CHG-2").await;
    assert!(dep2.contains("DEP-2 succeeded"), "{dep2}");
}

#[tokio::test]
async fn a_body_signed_with_another_targets_secret_is_refused() {
    sets_staging_secret();
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(202, "{}")]);
    let mut h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    // The same database, served by an app that also knows payments-api/staging.
    h.app = App::build_with(
        config_with_staging(&h.url, &target.url),
        Arc::new(h.clock.clone()),
        h.sink.clone(),
    )
    .await
    .expect("app builds");
    let base = support::serve_http(&h).await;
    one_deployment_waiting(&h).await;
    let before = snapshot(&h, 1).await;

    // DEP-1 is a production deployment; staging's secret must not finish it.
    let body = r#"{"deployment_id":"DEP-1","status":"succeeded"}"#;
    let (status, text) = callback(&base, "DEP-1", body, signed(STAGING_SECRET, body)).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(
        snapshot(&h, 1).await,
        before,
        "refused callbacks change nothing"
    );

    let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
    assert_eq!(status, 200, "{text}");
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.starts_with("CHG-1 · closed"), "{shown}");
}

#[tokio::test]
async fn callbacks_answer_503_when_no_target_has_a_secret() {
    sets_staging_secret();
    let h = Harness::sqlite(MONDAY).await;
    let base = support::serve_http(&h).await;
    let body = r#"{"deployment_id":"DEP-1","status":"succeeded"}"#;
    let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("secret_env"), "{text}");
    let unsigned = callback(&base, "DEP-7", body, None).await;
    assert_eq!(unsigned, (status, text), "the same answer for every id");
}

#[tokio::test]
async fn control_characters_in_a_callback_message_are_neutralised_not_an_internal_error() {
    for postgres in [false, true] {
        let target = FakeTarget::start().await;
        target.script(&[Reply::Status(202, "{}")]);
        let Some((h, _sink)) = Harness::flaky(postgres, Some(&target.url), MONDAY).await else {
            eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
            continue;
        };
        one_deployment_waiting(&h).await;
        let base = support::serve_http(&h).await;
        let body = r#"{"deployment_id":"DEP-1","status":"succeeded","message":"done\u0000\r\nchangebot: FORGED LINE"}"#;
        let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
        assert_eq!(status, 200, "postgres={postgres}: {text}");
        let (_, deployments, _) = snapshot(&h, 1).await;
        let message = deployments[0].message.clone().unwrap_or_default();
        assert_eq!(
            deployments[0].status,
            DeploymentStatus::Succeeded,
            "postgres={postgres}: the result is kept"
        );
        assert!(
            !message.chars().any(char::is_control) && message.contains("FORGED LINE"),
            "postgres={postgres}: {message:?}"
        );
    }
}

#[tokio::test]
async fn a_callback_driven_finish_is_audited_as_the_target_not_the_scheduler() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(202, "{}")]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    one_deployment_waiting(&h).await;
    let base = support::serve_http(&h).await;
    let body = r#"{"deployment_id":"DEP-1","status":"succeeded"}"#;
    let (status, text) = callback(&base, "DEP-1", body, signed(DEPLOY_SECRET, body)).await;
    assert_eq!(status, 200, "{text}");
    let (_, _, audit) = snapshot(&h, 1).await;
    let finished = audit
        .iter()
        .find(|e| e.action == "deployment_finished")
        .unwrap_or_else(|| panic!("{audit:#?}"));
    assert_eq!(finished.actor, "deploy-target:payments-api/production");
    assert_eq!(finished.surface, "webhook");
    assert!(
        audit
            .iter()
            .filter(|e| e.action.starts_with("state implement"))
            .all(|e| e.surface == "webhook"),
        "{audit:#?}"
    );
}
