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
struct KpiLabel {
    kpi: String,
    /// A service's name, or `all`.
    service: String,
    /// An environment's name, or `all`.
    environment: String,
}

/// A KPI gauge: a fraction, a per-day rate, a count, or seconds; NaN when there is nothing to
/// measure (the family is always present).
type KpiGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The days KPI gauges look back over.
pub const KPI_DAYS: u32 = 30;

/// The sources of inbound webhooks, each counted from start (at 0 until its first delivery).
pub const WEBHOOK_SOURCES: [&str; 2] = ["github", "deployment"];

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
    kpis: Family<KpiLabel, KpiGauge>,
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
        let kpis = Family::<KpiLabel, KpiGauge>::default();
        registry.register(
            "kpi",
            "Delivery and change KPIs over the last 30 days, by service (`all`: every service); \
             rates and shares are fractions, times are seconds, NaN when there is nothing to measure",
            kpis.clone(),
        );
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
        // Every family has a sample from the first scrape on, so a dashboard or alert never
        // sees one appear only after its first event.
        for source in WEBHOOK_SOURCES {
            drop(deliveries.get_or_create(&DeliveryLabel {
                source: source.into(),
                result: "accepted".into(),
            }));
        }
        Metrics {
            registry,
            jobs_due,
            jobs_late,
            outbox_backlog,
            outbox_parked,
            deployments,
            deliveries,
            kpis,
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

    /// Sets the KPI gauges of what `filter` selects (`all` stands for every service or
    /// environment).
    pub fn set_kpis(&self, filter: &crate::workflow::KpiFilter, k: &crate::domain::kpi::Kpis) {
        let service = filter.service.as_deref().unwrap_or("all");
        let environment = filter.environment.as_deref().unwrap_or("all");
        let secs = |v: Option<i64>| v.map_or(f64::NAN, |s| s as f64);
        let frac = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let values: [(&str, f64); 13] = [
            ("deployments_per_day", k.deployments_per_day),
            ("change_failure_rate", frac(k.change_failure_rate)),
            ("lead_time_median_seconds", secs(k.lead_time.median_secs)),
            ("recovery_time_median_seconds", secs(k.recovery.median_secs)),
            ("unrecovered_failures", k.unrecovered_failures as f64),
            ("rework_rate", frac(k.rework_rate)),
            ("change_success_rate", frac(k.change_success_rate)),
            ("emergency_share", frac(k.emergency_share)),
            ("unauthorized_changes", k.unauthorized_changes as f64),
            (
                "approval_latency_median_seconds",
                secs(k.approval_latency.median_secs),
            ),
            ("first_slot_share", frac(k.first_slot_share)),
            ("rebookings_per_change", frac(k.rebookings_per_change)),
            ("unreviewed_changes", k.unreviewed.len() as f64),
        ];
        for (kpi, value) in values {
            self.kpis
                .get_or_create(&KpiLabel {
                    kpi: kpi.to_string(),
                    service: service.to_string(),
                    environment: environment.to_string(),
                })
                .set(value);
        }
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
