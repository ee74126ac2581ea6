//! The weekly review announcement (`what = "weekly-review"`): the last 7 days' KPIs against
//! the 7 before, the day-by-day chart as a PNG attachment, and reminders for the failed and
//! emergency changes still waiting for their post-implementation review.
//!
//! Posted exactly once per occurrence like every announcement: the notice is queued, the next
//! occurrence booked and the job finished in one transaction, under the job's claim.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::effects::NoticeTo;
use super::{KpiFilter, Workflow, WorkflowError};
use crate::domain::ChangeType;
use crate::domain::effect::{Attachment, Notice, NoticeEvent};
use crate::report::chart;
use crate::store::releases::{Job, JobKind, NewJob};

/// The review looks back this many days (and compares with as many before them).
pub const REVIEW_DAYS: u32 = 7;

impl Workflow {
    /// Posts the weekly review to `channel` and books the next occurrence (`next`).
    pub async fn announce_review(
        &self,
        job: &Job,
        name: &str,
        channel: &str,
        tz: Tz,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        // The week ends where the job was due, however late it runs.
        let review = self
            .review(REVIEW_DAYS, &KpiFilter::default(), tz, job.due_at)
            .await?;
        let mut waiting = Vec::new();
        for id in &review.current.unreviewed {
            if let Some(c) = self.store.change(*id).await? {
                let why = match c.change_type {
                    ChangeType::Emergency => "emergency change",
                    _ => "failed deployment",
                };
                waiting.push((c.headline(), why));
            }
        }
        let text =
            crate::chat::render::review(name, &review.current, &review.previous, tz, &waiting);
        let title = format!(
            "{name}: {}",
            crate::chat::render::days_span(&review.days, tz)
        );
        let days = review.days.clone();
        let drawn = tokio::task::spawn_blocking(move || chart::render_png(&title, &days)).await;
        let attachment = match drawn {
            Ok(Ok(png)) => Some(Attachment {
                filename: format!("{name}.png"),
                content_type: "image/png".into(),
                data: png,
            }),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the weekly review goes out without its chart");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the weekly review goes out without its chart");
                None
            }
        };
        let mut tx = self.store.begin().await?;
        if !self.holds_job(&mut tx, job).await? {
            return Ok(()); // taken over: the new holder posts it
        }
        let notice = NoticeTo {
            surface: "chat",
            channel,
            notice: Notice {
                event: NoticeEvent::Review,
                change: None,
                text,
                attachment,
            },
            topic: None,
            parked_item: None,
        };
        self.queue_notice(&mut tx, notice, now).await?;
        if let Some(due_at) = next {
            let next_job = NewJob {
                kind: JobKind::Announcement,
                change: None,
                deployment: None,
                name: Some(name.to_string()),
                due_at,
            };
            tx.insert_job(&next_job, now).await?;
        }
        tx.finish_job(job.id, "done", None, now).await?;
        Ok(tx.commit().await?)
    }
}
