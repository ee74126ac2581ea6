//! When a pull request's first commit was authored (change lead time starts there): read from
//! `GET /repos/{owner}/{repo}/pulls/{number}/commits` by backfill, and filled in by
//! reconciliation for live PR changes that lack it.

use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use serde::Deserialize;

use super::GithubClient;
use super::client::classify;
use crate::domain::Change;
use crate::workflow::Workflow;

/// GitHub lists at most 250 commits of a pull request, 100 per page.
pub const ALL_PAGES: u32 = 3;

#[derive(Deserialize)]
struct RawCommit {
    commit: RawCommitDetail,
}

#[derive(Deserialize)]
struct RawCommitDetail {
    #[serde(default)]
    author: Option<Signature>,
    #[serde(default)]
    committer: Option<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    #[serde(default)]
    date: Option<DateTime<Utc>>,
}

/// The earliest author date (the committer's when a commit has none) among the first `pages`
/// pages of the pull request's commits; `None` when GitHub lists no dated commit.
pub async fn first_commit(
    crab: &Octocrab,
    repository: &str,
    number: i64,
    pages: u32,
) -> Result<Option<DateTime<Utc>>, octocrab::Error> {
    let mut earliest: Option<DateTime<Utc>> = None;
    for page in 1..=pages.max(1) {
        let batch: Vec<RawCommit> = crab
            .get(
                format!("/repos/{repository}/pulls/{number}/commits"),
                Some(&[("per_page", 100), ("page", page)]),
            )
            .await?;
        let last = batch.len() < 100;
        for c in batch {
            let date = c
                .commit
                .author
                .and_then(|s| s.date)
                .or_else(|| c.commit.committer.and_then(|s| s.date));
            if let Some(date) = date {
                earliest = Some(earliest.map_or(date, |e| e.min(date)));
            }
        }
        if last {
            break;
        }
    }
    Ok(earliest)
}

/// Reconciliation's share: fills in when the PR of `change` got its first commit (from the
/// first page of its commits), if that is not known yet. Best effort: a failure is logged and
/// tried again next round; it never stops the round.
pub(super) async fn fill_first_commit(workflow: &Workflow, client: &GithubClient, change: &Change) {
    let Some(pr) = change
        .pull_request
        .as_ref()
        .filter(|_| change.first_commit_at.is_none())
    else {
        return;
    };
    let found = match client.for_repo(&pr.repository).await {
        Ok(crab) => first_commit(&crab, &pr.repository, pr.number, 1)
            .await
            .map_err(|e| classify(e, false)),
        Err(e) => Err(e),
    };
    match found {
        Ok(Some(at)) => {
            if let Err(e) = workflow.record_first_commit(change.id, at).await {
                tracing::warn!(change = %change.id, error = %e, "could not record the first commit's time");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(change = %change.id, error = %e, "could not read the pull request's commits; tried again next round");
        }
    }
}
