//! `/metrics` in Prometheus text format. Gauges about durable state (jobs, outbox,
//! deployments) are read from the database at scrape time, so every replica reports the same
//! truth; counters about this process's traffic are kept in memory.

use chrono::{DateTime, Duration, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::domain::release::DeploymentStatus;
use crate::store::{Store, StoreError};

/// A job this far past due counts as late.
pub const LATE_AFTER: Duration = Duration::seconds(60);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabel {
    source: String,
    result: String,
}

pub struct Metrics {
    registry: Registry,
    jobs_due: Gauge,
    jobs_late: Gauge,
    outbox_backlog: Gauge,
    outbox_parked: Gauge,
    deployments: Family<StatusLabel, Gauge>,
    deliveries: Family<DeliveryLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("changebot");
        let jobs_due = Gauge::default();
        let jobs_late = Gauge::default();
        let outbox_backlog = Gauge::default();
        let outbox_parked = Gauge::default();
        let deployments = Family::<StatusLabel, Gauge>::default();
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        registry.register("jobs_due", "Jobs due now and not yet run", jobs_due.clone());
        registry.register(
            "jobs_late",
            "Jobs more than 60 s past due",
            jobs_late.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Side effects waiting for delivery",
            outbox_backlog.clone(),
        );
        registry.register(
            "outbox_parked",
            "Outbox items that kept failing and wait for `release retry`",
            outbox_parked.clone(),
        );
        registry.register("deployments", "Deployments by status", deployments.clone());
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by source and result",
            deliveries.clone(),
        );
        Metrics {
            registry,
            jobs_due,
            jobs_late,
            outbox_backlog,
            outbox_parked,
            deployments,
            deliveries,
        }
    }
}

impl Metrics {
    /// Counts one inbound webhook delivery (`source`: github, deployment; `result`: accepted, rejected, …).
    pub fn webhook(&self, source: &str, result: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabel {
                source: source.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Refreshes the database gauges and renders everything.
    pub async fn render(&self, store: &Store, now: DateTime<Utc>) -> Result<String, StoreError> {
        let counts = store.counts(now, LATE_AFTER).await?;
        self.jobs_due.set(counts.jobs_due);
        self.jobs_late.set(counts.jobs_late);
        self.outbox_backlog.set(counts.outbox_backlog);
        self.outbox_parked.set(counts.outbox_parked);
        for status in DeploymentStatus::ALL {
            let n = counts
                .deployments
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.deployments
                .get_or_create(&StatusLabel {
                    status: status.as_str().into(),
                })
                .set(n);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry)
            .map_err(|e| StoreError::Corrupt(format!("metrics encoding: {e}")))?;
        Ok(out)
    }
}
