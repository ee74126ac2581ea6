//! The HTTP surface: health, readiness and the read-only change API behind a bearer token.

mod support;

use support::Harness;

const TOKEN_ENV: &str = "CHANGEBOT_TEST_API_TOKEN";
const TOKEN: &str = "test-api-token";

async fn serve(state: changebot::http::AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = changebot::http::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

#[tokio::test]
async fn the_change_api_answers_with_the_right_token_only() {
    // SAFETY: this test binary has one test reading this variable, and it sets it first.
    unsafe { std::env::set_var(TOKEN_ENV, TOKEN) };
    let h = Harness::sqlite("2026-11-23T09:00:00Z").await;
    h.ok("alice", "change open payments-api Rotate keys --risk high")
        .await;
    h.ok("bob", "change approve CHG-1 fine by me").await;
    let base = serve(h.app.http_state()).await;
    let http = reqwest::Client::new();

    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );

    let anonymous = http
        .get(format!("{base}/api/changes"))
        .send()
        .await
        .expect("call");
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .get(format!("{base}/api/changes"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("call");
    assert_eq!(wrong.status(), 401);

    let list: serde_json::Value = http
        .get(format!(
            "{base}/api/changes?state=authorize&service=payments-api"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call")
        .json()
        .await
        .expect("json");
    assert_eq!(list["changes"][0]["id"], "CHG-1");
    assert_eq!(list["changes"][0]["state"], "authorize");

    // Hostile query text is refused in JSON, on both counts.
    for query in ["service=pay%00ments", "requester=a%0D%0Aforged"] {
        let res = http
            .get(format!("{base}/api/changes?{query}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("call");
        assert_eq!(res.status(), 400, "{query}");
        let body: serde_json::Value = res.json().await.expect("json error");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("control character")),
            "{body}"
        );
    }
    let res = http
        .get(format!("{base}/no/such/thing"))
        .send()
        .await
        .expect("call");
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.expect("json 404");
    assert!(body["error"].is_string());

    let one: serde_json::Value = http
        .get(format!("{base}/api/changes/CHG-1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call")
        .json()
        .await
        .expect("json");
    assert_eq!(one["change"]["title"], "Rotate keys");
    assert_eq!(one["approvals"][0]["person"], "bob");
    assert_eq!(one["approvals"][0]["comment"], "fine by me");
    assert!(
        one["audit"].as_array().is_some_and(|a| a.len() >= 4),
        "{one}"
    );
    assert!(one["deployments"].as_array().is_some_and(|d| d.is_empty()));

    let missing = http
        .get(format!("{base}/api/changes/CHG-9"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(missing.status(), 404);
    let bad = http
        .get(format!("{base}/api/changes/banana"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(bad.status(), 400);
    let bad_state = http
        .get(format!("{base}/api/changes?state=sleeping"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(bad_state.status(), 400);

    // Without a configured token the API is off, not open.
    let mut closed = h.app.http_state();
    closed.api_token = None;
    let base = serve(closed).await;
    let off = http
        .get(format!("{base}/api/changes"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(off.status(), 503);
}
