//! Wiring the GitHub integration into an app: the inbox (its own SQLite file, or the main
//! PostgreSQL database), the processor and the reply sink.

use std::sync::Arc;

use anyhow::Context as _;

use super::{GithubClient, InboxWriter, Intake, Processor, sink};
use crate::app::redact;
use crate::clock::Clock;
use crate::holder::Holder;
use crate::notify::ChatSink;
use crate::store::{Store, Usage};
use crate::workflow::Workflow;

/// The GitHub integration's running parts.
#[derive(Clone)]
pub struct Parts {
    pub intake: Intake,
    pub processor: Processor,
    /// Reading pull requests back from GitHub, when credentials are configured.
    pub reconciler: Option<super::reconcile::Reconciler>,
}

/// The GitHub webhook's inbox and processor, when `[github]` is configured. On SQLite the
/// inbox is a database of its own next to the main file (`NAME-inbox.db`), so storing a
/// delivery never waits behind the workflow's writes; on PostgreSQL it is a table of the same
/// database.
pub async fn parts(
    workflow: &Workflow,
    holder: &Holder,
    clock: &Arc<dyn Clock>,
    client: Option<&GithubClient>,
) -> anyhow::Result<Option<Parts>> {
    let config = workflow.config();
    let Some(gh) = &config.github else {
        return Ok(None);
    };
    let main = workflow.store();
    let inbox = match inbox_url(&config.database.url) {
        Some(url) => {
            let store = Store::connect_for(&url, Usage::Server)
                .await
                .with_context(|| format!("opening the GitHub inbox {}", redact(&url)))?;
            store
                .migrate()
                .await
                .context("applying migrations to the GitHub inbox")?;
            store
        }
        None => main.clone(),
    };
    let secret = config
        .secret(gh.webhook_secret_env.as_deref())
        .filter(|s| !s.is_empty())
        .map(|s| std::sync::Arc::<[u8]>::from(s.into_bytes()));
    let writer = InboxWriter::start(inbox.clone(), clock.clone());
    Ok(Some(Parts {
        intake: Intake {
            secret,
            inbox: writer.clone(),
        },
        processor: Processor::new(workflow.clone(), inbox, holder.clone()).yielding_to(writer),
        reconciler: client.map(|c| super::reconcile::Reconciler::new(workflow.clone(), c.clone())),
    }))
}

/// For a SQLite database `sqlite://dir/NAME.db?…`, the inbox's `sqlite://dir/NAME-inbox.db?…`;
/// `None` for PostgreSQL (the inbox is a table there).
fn inbox_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let (path, params) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let inbox = match path.strip_suffix(".db") {
        Some(stem) => format!("{stem}-inbox.db"),
        None => format!("{path}-inbox"),
    };
    Some(match params {
        Some(q) => format!("sqlite:{inbox}?{q}"),
        None => format!("sqlite:{inbox}"),
    })
}

/// The GitHub sink replying through `client`.
pub fn sink_for(client: &GithubClient) -> Arc<dyn ChatSink> {
    Arc::new(sink::GithubSink::new(client.clone()))
}
