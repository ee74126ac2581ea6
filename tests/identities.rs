//! Typed identities (issue 7, point 1): only `[[person]]` mappings make an outside identity a
//! person; approvals come only from mapped people; the audit trail names the person and the
//! identity they used, and the surface.

mod support;

use changebot::domain::ChangeId;
use changebot::store::AuditEntry;
use support::Harness;

const MONDAY: &str = "2026-11-23T09:00:00Z";

async fn harnesses() -> Vec<(&'static str, Harness)> {
    let mut all = vec![("sqlite", Harness::sqlite(MONDAY).await)];
    if let Some(h) = Harness::postgres(MONDAY).await {
        all.push(("postgres", h));
    }
    all
}

async fn audit(h: &Harness, change: i64) -> Vec<AuditEntry> {
    h.app
        .workflow
        .store()
        .audit(ChangeId(change))
        .await
        .expect("audit")
}

#[tokio::test]
async fn a_github_login_equal_to_a_persons_name_is_not_that_person() {
    for (db, h) in harnesses().await {
        h.ok("alice", "change open payments-api Enable card vault v2")
            .await;
        // carol is a person, but her GitHub login is carol-gh: `github:carol` is someone else.
        let refusal = h
            .say("github:carol", "change approve CHG-1")
            .await
            .expect_err("a look-alike may not approve");
        assert!(
            refusal.contains("github:carol is not mapped")
                && refusal.contains("not the person carol"),
            "{db}: {refusal}"
        );
        let shown = h.ok("alice", "change show CHG-1").await;
        assert!(!shown.contains("approved by carol"), "{db}: {shown}");
        let trail = audit(&h, 1).await;
        let refused = trail
            .iter()
            .find(|e| e.action.contains("refused"))
            .unwrap_or_else(|| panic!("{db}: the refusal is audited: {trail:#?}"));
        assert_eq!(refused.actor, "github:carol", "{db}");
        assert_eq!(refused.surface, "console", "{db}");
        // The same for a Discord id that merely looks like a name.
        let refusal = h
            .say("discord:1234", "change approve CHG-1")
            .await
            .expect_err("an unmapped Discord user may not approve");
        assert!(
            refusal.contains("discord:1234 is not mapped"),
            "{db}: {refusal}"
        );
    }
}

#[tokio::test]
async fn a_mapped_identity_acts_as_its_person_and_the_audit_names_both() {
    for (db, h) in harnesses().await {
        h.ok("alice", "change open payments-api Enable card vault v2")
            .await;
        let reply = h.ok("github:dave-gh", "change approve CHG-1 lgtm").await;
        assert!(reply.contains("dave"), "{db}: {reply}");
        let approved = audit(&h, 1).await;
        let vote = approved
            .iter()
            .find(|e| e.action == "approved")
            .unwrap_or_else(|| panic!("{db}: {approved:#?}"));
        assert_eq!(vote.actor, "dave via github:dave-gh", "{db}");
        // Carol's Discord id is carol (whatever she may do with it).
        let again = h
            .say("discord:402911858224791552", "change approve CHG-1")
            .await;
        let trail = audit(&h, 1).await;
        assert!(
            trail
                .iter()
                .any(|e| e.actor == "carol via discord:402911858224791552"),
            "{db}: {again:?} {trail:#?}"
        );
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            history.contains("dave via github:dave-gh"),
            "{db}: {history}"
        );
    }
}

#[tokio::test]
async fn an_unknown_identity_may_open_and_read_but_never_approve() {
    for (db, h) in harnesses().await {
        let opened = h
            .ok(
                "github:outsider",
                "change open payments-api Bump TLS ciphers",
            )
            .await;
        assert!(opened.contains("CHG-1"), "{db}: {opened}");
        let shown = h.ok("github:outsider", "change show CHG-1").await;
        assert!(
            shown.contains("github:outsider"),
            "{db}: the requester: {shown}"
        );
        let refusal = h
            .say("github:outsider", "change approve CHG-1")
            .await
            .expect_err("unknown identities never approve");
        assert!(refusal.contains("not mapped"), "{db}: {refusal}");
        let refusal = h
            .say(
                "github:outsider",
                "freeze start lock --until 2026-11-24T00:00:00Z --reason mine",
            )
            .await
            .expect_err("nor start freezes");
        assert!(refusal.contains("not mapped"), "{db}: {refusal}");
        let audited = h
            .app
            .workflow
            .store()
            .audit_unattached(10)
            .await
            .expect("audit");
        assert!(
            audited.iter().any(|e| e.actor == "github:outsider"
                && e.action == "refused"
                && e.detail.starts_with("freeze start")),
            "{db}: the refused freeze is audited: {audited:#?}"
        );
        // A person approving a change an outsider opened is not self-approval.
        h.ok("dave", "change approve CHG-1").await;
    }
}
