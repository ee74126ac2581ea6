//! The weekly review announcement (`what = "weekly-review"`): the last 7 days' KPIs against
//! the 7 before, a PNG chart attached, reminders for emergency and failed changes still
//! waiting for their review; posted once per week across restarts, and to Discord as a file.

mod support;

use changebot::clock::Clock;
use changebot::domain::effect::Notice;
use support::Harness;
use support::discord::FakeDiscord;

/// Tuesday 2026-11-17 08:00 Berlin.
const START: &str = "2026-11-17T07:00:00Z";
const REVIEW: &str = "\n[[announcement]]\nname = \"weekly-review\"\ncron = \"0 9 * * Mon\"\ntimezone = \"Europe/Berlin\"\nchannel = \"releases\"\nwhat = \"weekly-review\"\n";

fn reviews(h: &Harness) -> Vec<(String, Notice)> {
    h.sink
        .notices()
        .into_iter()
        .filter(|(_, n)| n.text.starts_with("weekly-review:"))
        .collect()
}

async fn plan(h: &Harness) {
    // `serve` plans announcements when it starts; planning again books nothing new.
    for _ in 0..2 {
        h.app
            .scheduler
            .plan_announcements(h.clock.now())
            .await
            .expect("plan");
    }
}

async fn at(h: &Harness, now: &str) {
    h.set_time(now);
    h.run_due().await;
}

/// The PNG's width and height.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let info = reader.info();
    (info.width, info.height)
}

#[tokio::test]
async fn the_weekly_review_is_posted_once_a_week_across_restarts() {
    let h = Harness::sqlite_with_config(|t| format!("{t}{REVIEW}"), START).await;
    once_a_week(h).await;
}

#[tokio::test]
async fn on_postgres_the_weekly_review_is_posted_once_a_week() {
    let Some(h) = Harness::with_config(true, |t| format!("{t}{REVIEW}"), START).await else {
        return;
    };
    once_a_week(h).await;
}

async fn once_a_week(h: Harness) {
    plan(&h).await;
    // Week one: a standard change released Tuesday night (a dry run; standard changes close
    // themselves).
    h.ok(
        "alice",
        "change open payments-api Rotate keys --type standard",
    )
    .await;
    at(&h, "2026-11-17T21:00:00Z").await;
    at(&h, "2026-11-17T21:01:00Z").await;

    // Monday 09:00 Berlin: the first review, once.
    at(&h, "2026-11-23T07:59:00Z").await;
    assert!(reviews(&h).is_empty(), "not before its time");
    at(&h, "2026-11-23T08:00:00Z").await;
    at(&h, "2026-11-23T08:05:00Z").await;
    let first = reviews(&h);
    assert_eq!(first.len(), 1, "{first:?}");
    let (channel, notice) = &first[0];
    assert_eq!(channel, "releases");
    assert!(
        notice.text.starts_with(
            "weekly-review: Mon 2026-11-16 to Sun 2026-11-22 (Europe/Berlin) against the 7 days before"
        ),
        "{}",
        notice.text
    );
    assert!(
        notice
            .text
            .contains("deployments: 1 succeeded (was 0), 0 failed (was 0)"),
        "{}",
        notice.text
    );
    let chart = notice.attachment.as_ref().expect("the chart is attached");
    assert_eq!(
        (chart.filename.as_str(), chart.content_type.as_str()),
        ("weekly-review.png", "image/png")
    );
    assert_eq!(png_size(&chart.data), (960, 540));
    assert!(
        notice
            .text
            .contains("No failed or emergency change is waiting")
    );

    // Week two: an emergency change released at once (and not yet reviewed), and a standard
    // one released Wednesday night.
    let h = h.restart().await;
    plan(&h).await;
    at(&h, "2026-11-24T10:00:00Z").await;
    h.ok(
        "alice",
        "change open payments-api \"Hotfix the vault\" --type emergency",
    )
    .await;
    h.ok("erin", "change approve CHG-2").await;
    h.ok("alice", "release now CHG-2 --reason customers cannot pay")
        .await;
    at(&h, "2026-11-24T10:01:00Z").await;
    h.ok(
        "alice",
        "change open payments-api Tidy logs --type standard",
    )
    .await;
    at(&h, "2026-11-24T21:00:00Z").await;
    at(&h, "2026-11-24T21:01:00Z").await;

    assert!(reviews(&h).is_empty(), "nothing due this week yet");

    // A restart just before the review: it is posted once all the same, and a process
    // started after it posts nothing again (each process has its own sink here).
    let h = h.restart().await;
    plan(&h).await;
    at(&h, "2026-11-30T08:00:00Z").await;
    let mut sent: Vec<Notice> = first.into_iter().map(|(_, n)| n).collect();
    sent.extend(reviews(&h).into_iter().map(|(_, n)| n));
    let h = h.restart().await;
    plan(&h).await;
    at(&h, "2026-11-30T08:00:30Z").await;
    at(&h, "2026-11-30T09:00:00Z").await;
    assert!(
        reviews(&h).is_empty(),
        "the next process posts nothing again"
    );
    assert_eq!(sent.len(), 2, "one per week: {sent:#?}");
    let second = &sent[1];
    assert!(
        second
            .text
            .contains("deployments: 2 succeeded (was 1), 0 failed (was 0)"),
        "{}",
        second.text
    );
    assert!(
        second.text.contains("emergency 50% (was 0%)"),
        "{}",
        second.text
    );
    assert!(
        second.text.contains(
            "CHG-2 · review · payments-api/production · Hotfix the vault (emergency change)"
        ),
        "{}",
        second.text
    );
    assert!(
        !second.text.contains("CHG-3 · review"),
        "a successful normal change needs no reminder: {}",
        second.text
    );
    let chart = second.attachment.as_ref().expect("chart");
    assert_ne!(
        chart.data,
        sent[0].attachment.as_ref().expect("chart").data,
        "a different week draws a different chart"
    );
}

#[tokio::test]
async fn on_discord_the_review_is_posted_with_its_chart_as_a_file() {
    let fake = FakeDiscord::start().await;
    let url = fake.url.clone();
    let guild = fake.config.guild_ids[0];
    // SAFETY: only this test of this binary reads this variable.
    unsafe { std::env::set_var("CHANGEBOT_TEST_REVIEW_DISCORD_TOKEN", "discord-test-token") };
    let h = Harness::sqlite_with_config(
        move |t| {
            format!(
                "{t}{REVIEW}\n[discord]\ntoken_env = \"CHANGEBOT_TEST_REVIEW_DISCORD_TOKEN\"\napi_url = \"{url}\"\nguild_id = \"{guild}\"\nchannels = {{ releases = \"1300000000000000001\", cab = \"1300000000000000002\" }}\n"
            )
        },
        START,
    )
    .await;
    plan(&h).await;
    at(&h, "2026-11-23T08:00:00Z").await;
    let posted: Vec<_> = fake
        .messages(1_300_000_000_000_000_001)
        .into_iter()
        .filter(|m| m.content.starts_with("weekly-review:"))
        .collect();
    assert_eq!(posted.len(), 1, "{posted:#?}");
    let file = posted[0].files.first().expect("the chart as a file");
    assert_eq!(file.filename, "weekly-review.png");
    assert_eq!(file.content_type, "image/png");
    assert_eq!(png_size(&file.data), (960, 540));
    let body = posted[0].versions.first().expect("the body");
    assert_eq!(body["attachments"][0]["filename"], "weekly-review.png");
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
}
