//! Words that mean what they say (issue 11, point 4): replies label only real blockers as
//! `blocked:`, name the field and what is expected when input is wrong, and never pass a
//! library's own message through. On SQLite and PostgreSQL.

mod support;

use support::Harness;

/// Wednesday 2026-12-16, 10:00 in Berlin. Windows open Mon–Thu 22:00 Berlin for 3h.
const WEDNESDAY_MORNING: &str = "2026-12-16T09:00:00Z";

/// A harness per backend (PostgreSQL only when CHANGEBOT_TEST_POSTGRES_URL is set), with the
/// fixture config passed through `edit`.
async fn backends(edit: fn(String) -> String) -> Vec<(&'static str, Harness)> {
    let mut out = Vec::new();
    for (name, postgres) in [("sqlite", false), ("postgres", true)] {
        if let Some(h) = Harness::with_config(postgres, edit, WEDNESDAY_MORNING).await {
            out.push((name, h));
        }
    }
    out
}

fn same(text: String) -> String {
    text
}

#[tokio::test]
async fn a_passed_over_window_is_a_note_not_a_blocker() {
    for (db, h) in backends(same).await {
        h.ok(
            "dave",
            "change open payments-api Rotate TLS certificates --type standard --duration 3h",
        )
        .await;
        let second = h
            .ok(
                "dave",
                "change open payments-api Bump log level --type standard",
            )
            .await;
        assert!(second.starts_with("CHG-2 · scheduled"), "{db}: {second}");
        let explain = h.ok("alice", "change explain CHG-2").await;
        assert!(
            !explain.lines().any(|l| l.contains("blocked:")),
            "{db}: a booked change with nothing in its way is not blocked: {explain}"
        );
        assert!(explain.contains("  nothing blocks it"), "{db}: {explain}");
        assert!(
            explain.lines().any(|l| l.trim_start().starts_with("note: ")
                && l.contains("passed over")
                && l.contains("conflicts with CHG-1")),
            "{db}: the passed-over window is history: {explain}"
        );
        let json = h
            .outcome("alice", "change explain CHG-2")
            .await
            .expect("ok");
        let json = serde_json::to_value(&json).expect("json");
        assert_eq!(
            json["explanation"]["blockers"],
            serde_json::json!([]),
            "{db}"
        );
        assert_eq!(
            json["explanation"]["notes"][0]["kind"], "passed_over",
            "{db}: {json}"
        );
    }
}

#[tokio::test]
async fn a_change_in_review_waits_for_change_close_review() {
    for (db, h) in backends(same).await {
        h.ok(
            "alice",
            "change open payments-api Hotfix the vault --type emergency",
        )
        .await;
        h.ok("erin", "change approve CHG-1").await;
        h.ok("alice", "release now CHG-1 --reason customers cannot pay")
            .await;
        h.run_due().await;
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(explain.starts_with("CHG-1 · review"), "{db}: {explain}");
        assert!(
            explain.contains("blocked: waits for its post-implementation review")
                && explain.contains("`change close CHG-1 --review TEXT…`"),
            "{db}: {explain}"
        );
        assert!(!explain.contains("nothing blocks it"), "{db}: {explain}");
    }
}

#[tokio::test]
async fn an_ended_change_is_a_note_not_a_blocker() {
    for (db, h) in backends(same).await {
        h.ok("alice", "change open payments-api Not needed after all")
            .await;
        let canceled = h.ok("alice", "change cancel CHG-1 superseded").await;
        assert!(
            canceled.contains("policy normal (never satisfied)") && !canceled.contains("pending"),
            "{db}: an ended change waits for nothing: {canceled}"
        );
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(
            !explain.contains("blocked:"),
            "{db}: nothing can lift an ended change: {explain}"
        );
        assert!(
            explain.contains("note: the change is canceled; nothing more will happen"),
            "{db}: {explain}"
        );
    }
}

#[tokio::test]
async fn a_time_that_starts_in_a_window_but_runs_past_its_end_says_so() {
    for (db, h) in backends(same).await {
        h.ok(
            "dave",
            "change open payments-api Reindex --type standard --duration 2h",
        )
        .await;
        // The window runs 22:00–01:00 Berlin; 23:30 + 2h ends at 01:30.
        let refusal = h
            .refused("dave", "change schedule CHG-1 --at 2026-12-16 23:30")
            .await;
        assert!(
            refusal.contains("starts in window weeknights but runs 30m past its end"),
            "{db}: {refusal}"
        );
        assert!(!refusal.contains("outside every window"), "{db}: {refusal}");
        assert!(
            refusal.contains("start at least 30m earlier, or pick a later window"),
            "{db}: advice a user can follow: {refusal}"
        );
        // A change longer than the window is told so, not to start earlier than it opens.
        h.ok(
            "dave",
            "change open payments-api Migrate --type standard --duration 4h",
        )
        .await;
        let refusal = h
            .refused("dave", "change schedule CHG-2 --at 2026-12-16 22:30")
            .await;
        assert!(
            refusal.contains("the window is too short for the whole change")
                && !refusal.contains("earlier"),
            "{db}: {refusal}"
        );
        let explain = h.ok("dave", "change explain CHG-2").await;
        assert!(
            explain
                .contains("blocked: a 4h change fits in no window: the longest, weeknights, is 3h")
                && !explain.contains("no legal slot"),
            "{db}: {explain}"
        );
        // Outside every window, the suggestion is a start that is legal: past the year-end
        // freeze (18 December to 4 January), not the next window opening inside it.
        let refusal = h
            .refused("dave", "change schedule CHG-1 --at 2026-12-19 12:00")
            .await;
        assert!(
            refusal.contains("the next legal start is 2027-01-04 22:00 CET in weeknights"),
            "{db}: {refusal}"
        );
    }
}

/// normal-high also names the owners' group itself, which `owners` stands for.
fn owners_twice(text: String) -> String {
    text.replace(
        r#"require = [{ group = "cab", count = 2 }, { group = "owners", count = 1 }]"#,
        r#"require = [{ group = "cab", count = 1 }, { group = "owners", count = 1 }, { group = "payments-owners", count = 1 }]"#,
    )
}

#[tokio::test]
async fn a_group_that_two_requirements_name_is_listed_once() {
    for (db, h) in backends(owners_twice).await {
        let opened = h
            .ok("bob", "change open payments-api Migrate ledger --risk high")
            .await;
        assert!(
            opened.contains("policy normal-high (pending): cab 0/1, payments-owners 0/2"),
            "{db}: {opened}"
        );
        assert_eq!(
            opened.matches("group payments-owners").count(),
            1,
            "{db}: {opened}"
        );
        assert!(
            opened.contains("needs 2 more approvals from group payments-owners (ask alice, dave)"),
            "{db}: {opened}"
        );
        let refusal = h.refused("frank", "change approve CHG-1").await;
        assert!(
            refusal.contains("(cab, payments-owners)"),
            "{db}: {refusal}"
        );
        let refusal = h.refused("frank", "change cancel CHG-1").await;
        assert!(
            refusal.contains("members of payments-owners, cab may"),
            "{db}: {refusal}"
        );
        h.ok("alice", "change approve CHG-1").await;
        h.ok("carol", "change approve CHG-1").await;
        let last = h.ok("dave", "change approve CHG-1").await;
        assert!(last.starts_with("CHG-1 · scheduled"), "{db}: {last}");
    }
}

#[tokio::test]
async fn numbers_in_commands_are_explained_not_parsed_at_the_user() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    for (line, expected) in [
        (
            "calendar --days abc",
            "--days must be a whole number from 1 to",
        ),
        (
            "calendar --days 99999999999999999999",
            "--days must be a whole number from 1 to",
        ),
        (
            "metrics --days -3",
            "--days must be a whole number from 1 to",
        ),
    ] {
        let refusal = h.refused("alice", line).await;
        assert!(refusal.contains(expected), "{line}: {refusal}");
        for raw in ["invalid digit", "too large", "number too"] {
            assert!(
                !refusal.contains(raw),
                "{line}: raw library text: {refusal}"
            );
        }
    }
}

#[tokio::test]
async fn help_finds_a_command_by_its_last_word() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    let help = h.ok("alice", "help approve").await;
    assert!(help.contains("change approve CHG-N"), "{help}");
    let both = h.ok("alice", "help list").await;
    assert!(
        both.contains("change list") && both.contains("freeze list"),
        "{both}"
    );
    let unknown = h.refused("alice", "approve CHG-1").await;
    assert!(unknown.contains("`change approve`"), "{unknown}");
}

/// Runs the console as alice on `input` until it ends; returns what it wrote.
async fn console(h: &Harness, input: &[u8], json: bool) -> String {
    let actor = changebot::workflow::Actor::acting_as(
        &h.app.workflow.config().org,
        "alice",
        changebot::workflow::Surface::Console,
    )
    .expect("alice");
    let mut output = Vec::new();
    changebot::console::run(
        h.app.workflow.clone(),
        std::sync::Arc::new(h.clock.clone()),
        actor,
        input,
        &mut output,
        changebot::console::Style {
            prompt: false,
            json,
        },
        None,
    )
    .await
    .expect("console");
    String::from_utf8(output).expect("utf-8")
}

#[tokio::test]
async fn exit_and_quit_end_the_console() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    for word in ["exit", "quit", "/quit", " EXIT "] {
        let input =
            format!("help approve\n{word}\nchange open payments-api Never --type standard\n");
        let output = console(&h, input.as_bytes(), false).await;
        assert!(output.contains("change approve"), "{word}: {output}");
        assert!(
            !output.contains("Never"),
            "{word}: ran past the end: {output}"
        );
    }
    assert_eq!(
        h.app.workflow.store().count_changes().await.expect("count"),
        0
    );
}

#[tokio::test]
async fn the_console_answers_in_json_when_a_line_or_serve_says_json() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    // `--json` anywhere on a line: that reply is JSON, the next one text again.
    let out = console(
        &h,
        b"change open payments-api Rotate keys --json\n--json change show CHG-9\nchange list\n",
        false,
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    let opened: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(opened["ok"], true, "{out}");
    assert_eq!(opened["outcome"]["change"]["id"], "CHG-1", "{out}");
    let missing: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    assert_eq!(missing["error"]["kind"], "not_found", "{out}");
    assert!(lines[2].starts_with("CHG-1 "), "text again: {out}");
    // `serve --console --json`: every reply is JSON, usage errors included.
    let out = console(&h, b"change list\nchange frobnicate\n", true).await;
    for line in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["ok"].is_boolean(), "{line}");
    }
    assert!(out.contains("\"kind\":\"usage\""), "{out}");
}

#[tokio::test]
async fn votes_say_what_they_mean() {
    for (db, h) in backends(same).await {
        h.ok("alice", "change open payments-api Rotate keys").await;
        // dave, the only other owner, rejects: he is still the one to ask (by approving he
        // lifts his rejection), not "nobody else can approve".
        h.ok("dave", "change reject CHG-1 not this week").await;
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(
            explain.contains("needs 1 more approval from group payments-owners (ask dave)"),
            "{db}: {explain}"
        );
        assert!(!explain.contains("nobody else"), "{db}: {explain}");
        // The requester cannot reject her own change; she is told how to withdraw it.
        let own = h.refused("alice", "change reject CHG-1 nope").await;
        assert!(
            own.contains("a requester does not reject their own change")
                && own.contains("change cancel CHG-1"),
            "{db}: {own}"
        );
        assert!(!own.contains("self-approval"), "{db}: {own}");
        // The same vote twice is recorded once.
        h.ok("dave", "change approve CHG-1").await;
        let history = |h: &Harness| {
            let h = h.app.workflow.store().clone();
            async move {
                h.audit(changebot::domain::ChangeId(1))
                    .await
                    .expect("audit")
                    .iter()
                    .filter(|a| a.action == "approved")
                    .count()
            }
        };
        assert_eq!(history(&h).await, 1, "{db}");
        h.ok("dave", "change approve CHG-1").await;
        assert_eq!(
            history(&h).await,
            1,
            "{db}: a repeated approval is not audited twice"
        );
        // Canceling twice says it is already canceled.
        h.ok("alice", "change cancel CHG-1 superseded").await;
        let again = h.refused("alice", "change cancel CHG-1 superseded").await;
        assert!(
            again.contains("CHG-1 is already canceled; nothing changed"),
            "{db}: {again}"
        );
    }
}

#[tokio::test]
async fn a_flag_where_a_command_goes_and_a_zero_duration_are_explained() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    let flag = h.refused("alice", "--bogus").await;
    assert!(
        flag.contains("`--bogus` is a flag") && !flag.contains("unknown command"),
        "{flag}"
    );
    let zero = h
        .refused("alice", "change open payments-api Fix --duration 0m")
        .await;
    assert!(
        zero.contains("a duration must be more than 0") && !zero.contains("is not a duration"),
        "{zero}"
    );
}

#[tokio::test]
async fn freezes_show_in_the_zone_they_are_read_in() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    // friday-afternoons is configured in Europe/Berlin for every service.
    let freezes = h.ok("alice", "freeze list").await;
    let line = freezes
        .lines()
        .find(|l| l.starts_with("friday-afternoons"))
        .unwrap_or_else(|| panic!("{freezes}"));
    assert!(line.contains("15:00 CET"), "{line}");
    // A calendar of one service shows every entry in that service's zone.
    let calendar = h
        .ok("alice", "calendar --service payments-api --days 3")
        .await;
    let freeze = calendar
        .lines()
        .find(|l| l.contains("freeze friday-afternoons"))
        .unwrap_or_else(|| panic!("{calendar}"));
    assert!(freeze.contains("2026-12-18 15:00 CET"), "{freeze}");
    assert!(!calendar.contains("UTC"), "{calendar}");
}

#[tokio::test]
async fn an_unknown_service_is_answered_with_the_known_ones_everywhere() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    for line in [
        "calendar --service paymnts-api",
        "change list --service paymnts-api",
        "metrics --service paymnts-api",
        "freeze start fix --until +2h --service paymnts-api --reason db",
        "change open paymnts-api Fix",
    ] {
        let refusal = h.refused("alice", line).await;
        assert!(
            refusal.contains("unknown service `paymnts-api` (known: payments-api"),
            "{line}: {refusal}"
        );
    }
}

#[tokio::test]
async fn in_json_mode_even_a_line_that_is_not_text_is_answered_in_json() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    let output = console(&h, b"\xff\xfe not text\nchange list\n", true).await;
    let lines: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{output}");
    assert_eq!(lines[0]["error"]["kind"], "usage", "{output}");
    assert_eq!(lines[1]["ok"], true, "{output}");
}
