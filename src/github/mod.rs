//! GitHub: pull requests become change records.
//!
//! - `receiver`: `POST /webhooks/github`: verify the signature, keep only events changebot
//!   uses, store the delivery durably in the inbox (once per `X-GitHub-Delivery`), then
//!   acknowledge. A crash after the acknowledgement loses nothing.
//! - `inbox`: one writer that stores deliveries in groups (one commit for all that arrive
//!   together), in a store of its own on SQLite, so acknowledging never waits for the
//!   workflow's writes.
//! - `process`: claims stored deliveries and turns each into workflow calls
//!   (`workflow::github`), as the sender's identity (`github:LOGIN`).
//! - `events`: the payload fields changebot reads, as its own types (`evidence`: check runs,
//!   check suites, statuses, deployment protection rules and deployment statuses).
//! - `client`: authentication (a token, or a GitHub App's installation tokens, minted and
//!   refreshed before they expire): `GithubClient::for_repo` hands out an authorised octocrab
//!   client for a repository.
//! - `reconcile`: at start and every 10 minutes, reads open pull requests back from GitHub so
//!   a delivery missed while changebot was down never leaves a change stale.
//! - `sink`: replies through octocrab: the sticky comment per change and the
//!   `changebot/change` commit status, edited as the change moves.
//! - `backfill`: `changebot backfill`: merged pull requests of a period and their
//!   deployments, read once and imported as closed changes (`Workflow::import_pull`).
//! - `commits`: when a pull request's first commit was authored (backfill, and reconciliation
//!   for live PR changes).

pub mod backfill;
pub mod client;
pub mod commits;
pub mod events;
pub mod evidence;
pub mod inbox;
pub mod process;
pub mod receiver;
pub mod reconcile;
pub mod sink;
mod wiring;

use std::sync::Arc;

pub use client::GithubClient;
pub use inbox::InboxWriter;
pub use process::Processor;
pub use wiring::{Parts, parts, sink_for};

/// What the webhook receiver needs.
#[derive(Clone)]
pub struct Intake {
    /// The webhook secret (`[github] webhook_secret_env`); `None` answers 503.
    pub secret: Option<Arc<[u8]>>,
    pub inbox: InboxWriter,
}
