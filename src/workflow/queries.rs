//! Read-only commands: show, history, explain, list, calendar, freeze list.

use chrono::{DateTime, Duration, Utc};

use super::context::Loaded;
use super::outcome::{CalendarLine, FreezeLine};
use super::{Actor, Outcome, Workflow, WorkflowError};
use crate::domain::calendar::{self, CalendarEntry, FreezeSpan};
use crate::domain::explain;
use crate::domain::{Change, ChangeId, State};
use crate::store::ChangeFilter;

impl Workflow {
    /// Loads a change and its context read-only (outside a transaction).
    pub(super) async fn load_readonly(
        &self,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Loaded, WorkflowError> {
        let change = self.find_change(id).await?;
        let votes = self.store.votes(id).await?;
        let booked = self
            .store
            .booked_between(
                now,
                now + crate::domain::lifecycle::HORIZON,
                Some(&change.service),
            )
            .await?
            .into_iter()
            .filter(|c| c.id != id && c.environment == change.environment)
            .filter_map(|c| {
                c.slot.map(|slot| calendar::Booked {
                    change: c.id.0,
                    slot,
                })
            })
            .collect();
        let stored = self.store.freezes(now).await?;
        let freezes = self.all_freezes(&stored);
        let checks = match &change.pull_request {
            Some(pr) => {
                self.store
                    .check_reports(&pr.repository, &pr.head_sha)
                    .await?
            }
            None => Vec::new(),
        };
        Ok(Loaded {
            change,
            votes,
            checks,
            booked,
            freezes,
        })
    }

    pub(super) async fn show(
        &self,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let loaded = self.load_readonly(id, now).await?;
        Ok(self.change_outcome(loaded.change.clone(), &loaded, Vec::new(), now))
    }

    pub(super) async fn history(&self, id: ChangeId) -> Result<Outcome, WorkflowError> {
        let change = self.find_change(id).await?;
        let audit = self.store.audit(id).await?;
        Ok(Outcome::History { change, audit })
    }

    pub(super) async fn explain(
        &self,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let loaded = self.load_readonly(id, now).await?;
        let cx = self.context(&loaded, now);
        let explanation = explain::explain(&loaded.change, &cx, self.tz_of(&loaded.change.service));
        Ok(Outcome::Explain {
            change: loaded.change.clone(),
            explanation,
        })
    }

    pub(super) async fn list(
        &self,
        actor: &Actor,
        state: Option<State>,
        service: Option<String>,
        mine: bool,
    ) -> Result<Outcome, WorkflowError> {
        if let Some(s) = service.as_deref() {
            self.known_service(s)?;
        }
        let filter = ChangeFilter {
            state,
            service,
            requester: mine.then(|| actor.name()),
            limit: 50,
            before: None,
        };
        let changes = self.store.list_changes(&filter).await?;
        let ids: Vec<ChangeId> = changes.iter().map(|c| c.id).collect();
        let unauthorized = self.store.flagged_unauthorized(&ids).await?;
        Ok(Outcome::List {
            changes,
            unauthorized,
        })
    }

    /// Refuses a service name config does not know.
    pub fn known_service(&self, name: &str) -> Result<(), WorkflowError> {
        self.service_named(name).map(|_| ())
    }

    /// The configured service `name`, or a refusal that lists the services there are.
    pub fn service_named(
        &self,
        name: &str,
    ) -> Result<&crate::domain::organisation::Service, WorkflowError> {
        let org = &self.config.org;
        org.service(name).ok_or_else(|| {
            let known: Vec<&str> = org.services.keys().map(String::as_str).collect();
            WorkflowError::NotFound(format!(
                "unknown service `{name}` (known: {})",
                known.join(", ")
            ))
        })
    }

    /// One page of changes, newest first, and the cursor of the next page (`before` for the
    /// next call) when there is more. An unknown service is an error, not an empty page.
    pub async fn changes_page(
        &self,
        filter: &ChangeFilter,
    ) -> Result<(Vec<Change>, Option<ChangeId>), WorkflowError> {
        if let Some(s) = filter.service.as_deref() {
            self.known_service(s)?;
        }
        let probe = ChangeFilter {
            limit: filter.limit.max(1) + 1,
            ..filter.clone()
        };
        let mut changes = self.store.list_changes(&probe).await?;
        let size = usize::try_from(filter.limit.max(1)).unwrap_or(usize::MAX);
        let next = (changes.len() > size).then(|| {
            changes.truncate(size);
            changes.last().map(|c| c.id)
        });
        Ok((changes, next.flatten()))
    }

    pub(super) async fn calendar(
        &self,
        days: Option<u32>,
        service: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let org = &self.config.org;
        let services: Vec<&crate::domain::organisation::Service> = match service.as_deref() {
            Some(name) => vec![self.service_named(name)?],
            None => org.services.values().collect(),
        };
        let to = now + Duration::days(i64::from(days.unwrap_or(7)));
        let mut window_names: Vec<&str> = services
            .iter()
            .flat_map(|s| s.windows.iter().map(String::as_str))
            .collect();
        window_names.sort_unstable();
        window_names.dedup();
        let windows: Vec<_> = window_names
            .iter()
            .filter_map(|w| org.windows.get(*w).cloned())
            .collect();
        let stored = self.store.freezes(now).await?;
        let freezes: Vec<_> = self
            .all_freezes(&stored)
            .into_iter()
            .filter(|f| services.iter().any(|s| f.applies_to(&s.name)))
            .collect();
        let mut entries: Vec<CalendarLine> = calendar::upcoming(&windows, &freezes, now, to)
            .into_iter()
            .map(|e| match e {
                CalendarEntry::Window { name, slot } => {
                    let users = services
                        .iter()
                        .filter(|s| s.windows.contains(&name))
                        .map(|s| s.name.clone())
                        .collect();
                    CalendarLine {
                        start: slot.start,
                        end: slot.end,
                        what: "window",
                        name,
                        services: users,
                        change: None,
                    }
                }
                CalendarEntry::Freeze { name, slot, .. } => {
                    let affected = freezes
                        .iter()
                        .find(|f| f.name == name)
                        .map(|f| f.services.clone())
                        .unwrap_or_default();
                    CalendarLine {
                        start: slot.start,
                        end: slot.end,
                        what: "freeze",
                        name,
                        services: affected,
                        change: None,
                    }
                }
            })
            .collect();
        let booked = self
            .store
            .booked_between(now, to, service.as_deref())
            .await?;
        entries.extend(booked.into_iter().filter_map(|c| {
            c.slot.map(|slot| CalendarLine {
                start: slot.start,
                end: slot.end,
                what: "change",
                name: format!("{} {}/{}", c.title, c.service, c.environment),
                services: vec![c.service.clone()],
                change: Some(c.id),
            })
        }));
        entries.sort_by_key(|e| (e.start, e.what));
        Ok(Outcome::Calendar {
            from: now,
            to,
            entries,
        })
    }

    pub(super) async fn freeze_list(&self, now: DateTime<Utc>) -> Result<Outcome, WorkflowError> {
        let horizon = now + Duration::days(366);
        let mut freezes: Vec<FreezeLine> = self
            .config
            .org
            .freezes
            .iter()
            .filter_map(|f| {
                let next = f.intervals_overlapping(now, horizon).into_iter().next();
                let recurring = matches!(f.span, FreezeSpan::Recurring(_));
                // One-off freezes that are over are not listed.
                if next.is_none() && !recurring {
                    return None;
                }
                Some(FreezeLine {
                    name: f.name.clone(),
                    start: next.map(|i| i.start),
                    end: next.map(|i| i.end),
                    services: f.services.clone(),
                    reason: f.reason.clone(),
                    source: "config",
                    recurring,
                })
            })
            .collect();
        freezes.extend(
            self.store
                .freezes(now)
                .await?
                .into_iter()
                .map(|f| FreezeLine {
                    name: f.name,
                    start: Some(f.start),
                    end: Some(f.end),
                    services: f.services,
                    reason: f.reason,
                    source: "chat",
                    recurring: false,
                }),
        );
        freezes.sort_by_key(|f| f.start);
        Ok(Outcome::Freezes { freezes })
    }
}
