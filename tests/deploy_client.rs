//! The deployment webhook client (docs/deployment-webhook.md) against a real in-process HTTP server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use changebot::deploy::{
    Attempt, Callback, CallbackStatus, DeployClient, DeployRequest, callback_url, retry_delay,
    sign, verify,
};
use changebot::domain::{ChangeId, DeploymentId};
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Sha256;

const SECRET: &[u8] = b"s3cret-deploy-key";

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// Serves `POST /deploy` answering `status`, `headers` and `body`, recording every request.
async fn target(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let headers: Vec<(&'static str, &'static str)> = headers.to_vec();
    let app = Router::new().route(
        "/deploy",
        post(move |h: HeaderMap, b: Bytes| {
            let record = record.clone();
            let headers = headers.clone();
            async move {
                record.lock().unwrap().push((h, b));
                let mut out = HeaderMap::new();
                for (name, value) in headers {
                    out.insert(name, HeaderValue::from_static(value));
                }
                (StatusCode::from_u16(status).unwrap(), out, body)
            }
        }),
    );
    (serve(app).await, seen)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/deploy")
}

fn request() -> DeployRequest {
    DeployRequest {
        deployment_id: DeploymentId(7),
        change_id: ChangeId(12),
        service: "payments-api".into(),
        environment: "production".into(),
        repository: Some("acme/payments".into()),
        git_ref: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
        pull_request: Some(42),
        requested_by: "alice".into(),
        callback_url: callback_url("https://bot.example/", DeploymentId(7)),
    }
}

fn client() -> DeployClient {
    DeployClient::new(Duration::from_secs(5)).unwrap()
}

async fn outcome_for(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> Attempt {
    let (url, _) = target(status, headers, body).await;
    let report = client().attempt(&url, Some(SECRET), &request()).await;
    assert_eq!(report.http_status, Some(status));
    report.outcome
}

#[tokio::test]
async fn a_deployment_post_carries_the_documented_body_and_signed_headers() {
    let (url, seen) = target(202, &[], "").await;
    let client = client();
    let first = client.attempt(&url, Some(SECRET), &request()).await;
    let second = client.attempt(&url, Some(SECRET), &request()).await;
    assert_eq!(first.outcome, Attempt::InProgress);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let (headers, body) = &seen[0];
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "deployment_id": "DEP-7", "change_id": "CHG-12", "service": "payments-api",
            "environment": "production", "repository": "acme/payments",
            "ref": "9fceb02d0ae598e95dc970b74767f19372d61af8", "pull_request": 42,
            "requested_by": "alice",
            "callback_url": "https://bot.example/webhooks/deployments/DEP-7"
        })
    );
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-changebot-event"), "deployment");
    assert_eq!(header("idempotency-key"), "DEP-7");
    assert!(header("user-agent").starts_with("changebot/"));

    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header("x-changebot-signature-256"), expected);
    assert!(verify(SECRET, body, Some(&expected)));

    let delivery = uuid::Uuid::parse_str(&header("x-changebot-delivery")).unwrap();
    assert_eq!(delivery, first.delivery);
    let (headers2, body2) = &seen[1];
    let delivery2 = headers2
        .get("x-changebot-delivery")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(delivery.to_string(), delivery2);
    assert_eq!(delivery2, second.delivery.to_string());
    assert_eq!(headers2.get("idempotency-key").unwrap(), "DEP-7");
    assert_eq!(body, body2, "a retry sends the same body");
}

#[tokio::test]
async fn a_change_without_a_pull_request_sends_nulls_and_no_secret_means_no_signature() {
    let (url, seen) = target(202, &[], "").await;
    let mut req = request();
    req.repository = None;
    req.git_ref = None;
    req.pull_request = None;
    client().attempt(&url, None, &req).await;
    let seen = seen.lock().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
    for key in ["repository", "ref", "pull_request"] {
        assert_eq!(json[key], serde_json::Value::Null, "{key}");
    }
    assert!(seen[0].0.get("x-changebot-signature-256").is_none());
}

#[tokio::test]
async fn a_target_reporting_success_or_failure_finishes_the_deployment() {
    let ok = r#"{"status":"succeeded","log_url":"https://ci.example/run/1"}"#;
    assert_eq!(
        outcome_for(200, &[], ok).await,
        Attempt::Finished {
            succeeded: true,
            log_url: Some("https://ci.example/run/1".into()),
            message: None
        }
    );
    let bad = r#"{"status":"failed","message":"migration 42 failed"}"#;
    assert_eq!(
        outcome_for(200, &[], bad).await,
        Attempt::Finished {
            succeeded: false,
            log_url: None,
            message: Some("migration 42 failed".into())
        }
    );
}

#[tokio::test]
async fn an_accepted_or_in_progress_answer_waits_for_the_callback() {
    assert_eq!(outcome_for(202, &[], "queued").await, Attempt::InProgress);
    let body = r#"{"status":"in_progress"}"#;
    assert_eq!(outcome_for(200, &[], body).await, Attempt::InProgress);
}

#[tokio::test]
async fn an_unavailable_or_throttling_target_is_retried() {
    for status in [503, 500, 408] {
        match outcome_for(status, &[], "busy").await {
            Attempt::Retry {
                reason,
                retry_after,
            } => {
                assert!(reason.contains(&status.to_string()), "{reason}");
                assert_eq!(retry_after, None);
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    match outcome_for(429, &[("retry-after", "7")], "").await {
        Attempt::Retry { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    let past = [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")];
    match outcome_for(503, &past, "").await {
        Attempt::Retry { retry_after, .. } => assert_eq!(retry_after, Some(Duration::ZERO)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_rejected_request_fails_at_once() {
    for status in [400, 404, 422] {
        match outcome_for(status, &[], "{\"error\":\"unknown service\"}").await {
            Attempt::Failed { reason } => {
                assert!(reason.contains(&status.to_string()), "{reason}");
                assert!(reason.contains("unknown service"), "{reason}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_fails() {
    let (elsewhere, seen_elsewhere) = target(200, &[], r#"{"status":"succeeded"}"#).await;
    let location: &'static str = Box::leak(elsewhere.into_boxed_str());
    match outcome_for(302, &[("location", location)], "").await {
        Attempt::Failed { reason } => assert!(reason.contains("302"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(seen_elsewhere.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_target_is_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let report = client()
        .attempt(&format!("http://{addr}/deploy"), Some(SECRET), &request())
        .await;
    assert_eq!(report.http_status, None);
    match report.outcome {
        Attempt::Retry {
            reason,
            retry_after,
        } => {
            assert!(reason.starts_with("could not connect"), "{reason}");
            assert_eq!(retry_after, None);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_target_slower_than_the_attempt_timeout_is_retried() {
    let app = Router::new().route(
        "/deploy",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }),
    );
    let url = serve(app).await;
    let client = DeployClient::new(Duration::from_millis(300)).unwrap();
    let report = client.attempt(&url, Some(SECRET), &request()).await;
    match &report.outcome {
        Attempt::Retry { reason, .. } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        report.elapsed < Duration::from_secs(3),
        "{:?}",
        report.elapsed
    );
}

#[tokio::test]
async fn a_success_status_with_a_garbage_body_fails_with_a_clear_reason() {
    for body in ["<html>welcome</html>", r#"{"status":"done"}"#, ""] {
        match outcome_for(200, &[], body).await {
            Attempt::Failed { reason } => {
                assert!(reason.contains("not a deployment result"), "{reason}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_huge_error_body_is_cut_short_in_the_reason() {
    let body: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
    match outcome_for(400, &[], body).await {
        Attempt::Failed { reason } => assert!(reason.chars().count() <= 500, "{}", reason.len()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unusable_url_fails_without_a_request() {
    for url in ["not a url", "ftp://example.com/deploy"] {
        let report = client().attempt(url, Some(SECRET), &request()).await;
        assert_eq!(report.http_status, None);
        match report.outcome {
            Attempt::Failed { reason } => {
                assert!(reason.contains("URL"), "{url}: {reason}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn signatures_round_trip_and_reject_tampering() {
    assert_eq!(
        sign(b"key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    let body = br#"{"status":"succeeded"}"#;
    let header = sign(SECRET, body);
    assert!(verify(SECRET, body, Some(&header)));
    assert!(!verify(b"other-secret", body, Some(&header)));
    assert!(!verify(SECRET, br#"{"status":"failed"}"#, Some(&header)));
    assert!(!verify(SECRET, body, None));
    let digest = header.trim_start_matches("sha256=");
    assert!(!verify(SECRET, body, Some(&format!("sha1={digest}"))));
    assert!(!verify(SECRET, body, Some(digest)));
    assert!(!verify(SECRET, body, Some("sha256=not-hex-at-all")));
    assert!(!verify(SECRET, body, Some("sha256=")));
    assert!(!verify(SECRET, body, Some(&header[..header.len() - 2])));
    assert!(!verify(b"", body, Some(&sign(b"", body))));
}

#[test]
fn retry_delays_grow_exponentially_with_jitter_and_are_capped() {
    let mut rng = StdRng::seed_from_u64(7);
    for (attempt, step) in [(1u32, 2u64), (2, 4), (3, 8), (4, 16), (8, 256)] {
        for _ in 0..50 {
            let d = retry_delay(attempt, &mut rng);
            assert!(
                d >= Duration::from_secs(step) / 2 && d <= Duration::from_secs(step),
                "{attempt}: {d:?}"
            );
        }
    }
    for attempt in [9, 10, 30, u32::MAX] {
        let d = retry_delay(attempt, &mut rng);
        assert!(
            d >= Duration::from_secs(150) && d <= Duration::from_secs(300),
            "{attempt}: {d:?}"
        );
    }
    let a: Vec<_> = (0..20).map(|_| retry_delay(5, &mut rng)).collect();
    assert!(
        a.windows(2).any(|w| w[0] != w[1]),
        "jitter varies the delay"
    );
    let mut same = StdRng::seed_from_u64(1);
    let mut again = StdRng::seed_from_u64(1);
    assert_eq!(retry_delay(3, &mut same), retry_delay(3, &mut again));
}

#[test]
fn a_callback_body_is_parsed_and_an_unknown_status_rejected() {
    let cb = Callback::parse(
        br#"{"status":"succeeded","log_url":"https://ci.example/1","message":"deployed v1.2"}"#,
    )
    .unwrap();
    assert_eq!(cb.status, CallbackStatus::Succeeded);
    assert_eq!(cb.log_url.as_deref(), Some("https://ci.example/1"));
    assert_eq!(cb.message.as_deref(), Some("deployed v1.2"));
    let cb = Callback::parse(br#"{"status":"in_progress","log_url":null}"#).unwrap();
    assert_eq!(
        (cb.status, cb.log_url, cb.message),
        (CallbackStatus::InProgress, None, None)
    );
    assert_eq!(
        Callback::parse(br#"{"status":"failed"}"#).unwrap().status,
        CallbackStatus::Failed
    );
    assert!(Callback::parse(br#"{"status":"exploded"}"#).is_err());
    assert!(Callback::parse(br#"{"message":"no status"}"#).is_err());
    assert!(Callback::parse(b"not json").is_err());
}

#[test]
fn a_callback_message_is_shortened_and_an_unsafe_log_link_dropped() {
    let long = "y".repeat(5000);
    let body =
        format!(r#"{{"status":"failed","message":"{long}","log_url":"javascript:alert(1)"}}"#);
    let cb = Callback::parse(body.as_bytes()).unwrap();
    assert!(cb.message.unwrap().chars().count() <= 500);
    assert_eq!(cb.log_url, None);
}
