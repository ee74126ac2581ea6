//! Retry timing: our exponential backoff, and a target's `Retry-After`.

use std::time::Duration;

const RETRY_BASE: Duration = Duration::from_secs(2);
const RETRY_CAP: Duration = Duration::from_secs(5 * 60);

/// Delay before retry number `attempt` (1-based: after the first failed attempt, `attempt` is 1).
/// Exponential backoff (2 s, doubling, capped at 5 min) with equal jitter: half of the step is
/// fixed, the other half random, so the delay for step `d` lies in `[d/2, d]`. `attempt` 0 counts
/// as 1.
pub fn retry_delay(attempt: u32, rng: &mut impl rand::Rng) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    let step = RETRY_BASE
        .checked_mul(1u32 << doublings)
        .map_or(RETRY_CAP, |d| d.min(RETRY_CAP));
    let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    let half = step_ms / 2;
    Duration::from_millis(half + rng.gen_range(0..=step_ms - half))
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means "now").
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}
