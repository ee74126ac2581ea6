//! Typed effects and message references (issue 7, point 2): a change's card is posted once in
//! its channel and edited in place whenever the change moves, from any surface or the
//! scheduler; delivering the same effect twice never posts twice; a sink's retry-after is
//! honoured.

mod support;

use std::time::Duration as StdDuration;

use changebot::domain::{ChangeId, State};
use changebot::store::releases::{NewOutbox, OutboxKind};
use changebot::workflow::Surface;
use support::Harness;

const MONDAY: &str = "2026-11-23T09:00:00Z";

async fn backends() -> Vec<(&'static str, bool)> {
    let mut all = vec![("sqlite", false)];
    if support::postgres_url().is_some() {
        all.push(("postgres", true));
    } else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
    }
    all
}

#[tokio::test]
async fn a_card_is_posted_once_and_edited_in_place_as_the_change_moves_from_any_surface() {
    for (db, postgres) in backends().await {
        let (h, sink) = Harness::flaky(postgres, None, MONDAY)
            .await
            .expect("harness");
        h.ok("alice", "change open payments-api Enable card vault v2")
            .await;
        h.run_due().await;
        let cards = sink.inner.cards();
        assert_eq!(cards.len(), 1, "{db}: one card: {cards:#?}");
        assert_eq!(cards[0].channel, "releases", "{db}");
        assert_eq!(cards[0].card.state, State::Authorize, "{db}");
        assert!(cards[0].card.votes_open, "{db}");
        assert_eq!(cards[0].card.seats[0].approved_by.len(), 0, "{db}");

        // Approved from another surface (GitHub, by a mapped login): the same card changes.
        h.say_on(Surface::Github, "github:dave-gh", "change approve CHG-1")
            .await
            .expect("approve");
        h.run_due().await;
        let cards = sink.inner.cards();
        assert_eq!(cards.len(), 1, "{db}: still one card: {cards:#?}");
        assert_eq!(cards[0].card.state, State::Scheduled, "{db}");
        assert_eq!(cards[0].card.seats[0].approved_by, ["dave"], "{db}");
        assert!(cards[0].card.slot.is_some(), "{db}");
        assert!(cards[0].edits >= 1, "{db}");

        // The scheduler releases it at its slot (a dry run): the card follows again.
        h.set_time("2026-11-23T21:00:00Z");
        h.run_due().await;
        h.run_due().await;
        let cards = sink.inner.cards();
        assert_eq!(cards.len(), 1, "{db}: still one card: {cards:#?}");
        assert_eq!(cards[0].card.state, State::Closed, "{db}");
        assert!(!cards[0].card.votes_open, "{db}: no buttons once judged");

        let refs = h
            .app
            .workflow
            .store()
            .message_refs(ChangeId(1))
            .await
            .expect("refs");
        assert_eq!(refs.len(), 1, "{db}: {refs:#?}");
        assert_eq!(refs[0].message_id, cards[0].message_id, "{db}");
        assert_eq!(
            (refs[0].surface.as_str(), refs[0].place.as_str()),
            ("chat", "releases")
        );
    }
}

#[tokio::test]
async fn delivering_the_same_card_twice_never_posts_twice() {
    for (db, postgres) in backends().await {
        let (h, sink) = Harness::flaky(postgres, None, MONDAY)
            .await
            .expect("harness");
        h.ok("alice", "change open payments-api Enable card vault v2")
            .await;
        // The post reaches the chat service but its answer is lost: the item is retried.
        sink.set_lose_acks(true);
        h.run_due().await;
        assert_eq!(sink.inner.cards().len(), 1, "{db}");
        sink.set_lose_acks(false);
        h.set_time("2026-11-23T09:10:00Z");
        h.run_due().await;
        assert_eq!(
            sink.inner.cards().len(),
            1,
            "{db}: the retry posts nothing new"
        );

        // The same effect queued again (say, by a second replica): it edits, never posts.
        let store = h.app.workflow.store();
        let mut tx = store.begin().await.expect("tx");
        let again = NewOutbox {
            kind: OutboxKind::Card,
            surface: "chat",
            deployment: None,
            change: Some(ChangeId(1)),
            channel: Some("releases"),
            body: "",
            topic: None,
            parked_item: None,
        };
        tx.insert_outbox(&again, support::at("2026-11-23T09:10:00Z"))
            .await
            .expect("queue");
        tx.commit().await.expect("commit");
        h.run_due().await;
        let cards = sink.inner.cards();
        assert_eq!(cards.len(), 1, "{db}: {cards:#?}");
        assert!(cards[0].edits >= 1, "{db}");

        // Moves after that still edit the one card.
        h.ok("dave", "change approve CHG-1").await;
        h.run_due().await;
        let cards = sink.inner.cards();
        assert_eq!(cards.len(), 1, "{db}");
        assert_eq!(cards[0].card.state, State::Scheduled, "{db}");
    }
}

#[tokio::test]
async fn a_rate_limited_delivery_waits_for_the_retry_after_it_was_given() {
    let (h, sink) = Harness::flaky(false, None, MONDAY).await.expect("harness");
    sink.set_failing(true);
    sink.set_retry_after(Some(StdDuration::from_secs(90)));
    h.ok("alice", "change open payments-api Enable card vault v2")
        .await;
    h.run_due().await;
    assert!(sink.refused() >= 1);
    sink.set_failing(false);
    // Backoff alone would try again within seconds; the service asked for 90.
    h.set_time("2026-11-23T09:01:00Z");
    h.run_due().await;
    assert!(sink.inner.cards().is_empty(), "not before its retry-after");
    h.set_time("2026-11-23T09:01:31Z");
    h.run_due().await;
    assert_eq!(sink.inner.cards().len(), 1);
}
