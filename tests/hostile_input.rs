//! Hostile input through the chat grammar (every surface parses with it) is refused with a
//! clear message and stores nothing, on SQLite and PostgreSQL.

mod support;

use support::Harness;

const MONDAY: &str = "2026-11-23T09:00:00Z";

#[tokio::test]
async fn control_characters_oversized_text_and_absurd_times_are_refused_and_store_nothing() {
    let huge = "x".repeat(1_000_000);
    let cases: Vec<(String, &str)> = vec![
        (
            "change open payments-api Fix\0the ledger".to_string(),
            "control character",
        ),
        (
            format!("change open payments-api {huge}"),
            "the limit is 200",
        ),
        (
            "change open payments-api Fix --duration 10000000d".to_string(),
            "at most 30 days",
        ),
        (
            "change open payments-api Fix --type emergency".to_string(),
            "",
        ),
        (
            "change schedule CHG-1 --at 9999-01-01T00:00:00Z".to_string(),
            "out of range",
        ),
        (
            "change reject CHG-1 no\u{7}bell".to_string(),
            "the word after `change reject CHG-1` contains a control character (U+0007) at character 3",
        ),
        // Invisible characters that make a title read differently than it is stored.
        (
            "change open payments-api Fix rtl\u{202E}lanigiro".to_string(),
            "an invisible formatting character (U+202E)",
        ),
        (
            "change open payments-api Fix zero\u{200B}width".to_string(),
            "an invisible formatting character (U+200B)",
        ),
    ];
    for postgres in [false, true] {
        let h = if postgres {
            match Harness::postgres(MONDAY).await {
                Some(h) => h,
                None => continue,
            }
        } else {
            Harness::sqlite(MONDAY).await
        };
        for (line, expected) in &cases {
            if expected.is_empty() {
                h.ok("alice", line).await; // CHG-1, to aim the later cases at
                continue;
            }
            let refusal = h.refused("alice", line).await;
            assert!(
                refusal.contains(expected),
                "postgres={postgres}: `{}`: {refusal}",
                line.chars().take(60).collect::<String>()
            );
        }
        let count = h.app.workflow.store().count_changes().await.expect("count");
        assert_eq!(count, 1, "postgres={postgres}: only the legitimate change");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(!history.contains("bell"), "nothing audited: {history}");
    }
}

#[test]
fn a_line_break_inside_one_argument_is_refused_as_the_cli_passes_it() {
    // `changebot chat` hands each shell argument over as one word, line breaks included.
    let words: Vec<String> = ["change", "open", "payments-api", "Fix\r\nchangebot: forged"]
        .iter()
        .map(|w| w.to_string())
        .collect();
    let err = changebot::chat::grammar::parse_words(&words).expect_err("refused");
    assert!(err.message.contains("control character"), "{err}");
}

#[tokio::test]
async fn a_reason_over_several_lines_stays_on_its_line_in_replies() {
    let h = Harness::sqlite(MONDAY).await;
    h.ok("alice", "change open payments-api Rotate keys").await;
    let command = changebot::chat::parse_words(&[
        "change".to_string(),
        "reject".to_string(),
        "CHG-1".to_string(),
        "not this week\nthe auditors are in".to_string(),
    ])
    .expect("a reason may span lines");
    let actor = changebot::workflow::Actor::acting_as(
        &h.app.workflow.config().org,
        "dave",
        changebot::workflow::Surface::Cli,
    )
    .expect("dave");
    h.app
        .workflow
        .execute(&actor, command, changebot::clock::Clock::now(&h.clock))
        .await
        .expect("rejected");
    let explain = h.ok("alice", "change explain CHG-1").await;
    assert!(
        explain.contains("rejected by dave: not this week / the auditors are in"),
        "{explain}"
    );
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(
        history.contains("not this week / the auditors are in"),
        "{history}"
    );
}
