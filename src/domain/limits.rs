//! Limits on what people and outside systems may put into a change record, defined once and
//! applied on every surface (the chat grammar serves console, CLI, Discord and GitHub).
//!
//! Single-line text (titles, names) may hold no control characters at all: a CR or LF would
//! forge a line in a log or a reply, and PostgreSQL refuses NUL. Multi-line text (reasons,
//! comments, reviews) may hold newlines and tabs, nothing else of the kind.

use chrono::{DateTime, Datelike, Duration, Utc};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest name (freezes and other identifiers typed by people).
pub const MAX_NAME: usize = 64;
/// Longest reason, comment or review, in characters.
pub const MAX_TEXT: usize = 4_000;
/// Longest planned duration of a change.
pub const MAX_DURATION: Duration = Duration::days(30);
/// Times people give must fall inside these years.
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2200;

/// Checks one line of text: no control characters, at most `max` characters.
pub fn single_line(what: &str, text: &str, max: usize) -> Result<(), String> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the {what} contains a control character ({}); use plain text on one line",
            c.escape_unicode()
        ));
    }
    within(what, text, max)
}

/// Checks text that may span lines: newlines and tabs are fine, other control characters
/// are not; at most `max` characters.
pub fn multi_line(what: &str, text: &str, max: usize) -> Result<(), String> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(format!(
            "the {what} contains a control character ({}); only newlines and tabs are allowed",
            c.escape_unicode()
        ));
    }
    within(what, text, max)
}

fn within(what: &str, text: &str, max: usize) -> Result<(), String> {
    let n = text.chars().count();
    if n > max {
        return Err(format!(
            "the {what} is {n} characters long; the limit is {max}"
        ));
    }
    Ok(())
}

/// Checks a planned duration.
pub fn duration(d: Duration) -> Result<(), String> {
    if d <= Duration::zero() || d > MAX_DURATION {
        return Err(format!(
            "a change's duration must be more than 0 and at most {} days",
            MAX_DURATION.num_days()
        ));
    }
    Ok(())
}

/// Checks a time a person gave.
pub fn time(t: DateTime<Utc>) -> Result<(), String> {
    if !YEARS.contains(&t.year()) {
        return Err(format!(
            "{} is out of range; times must fall between the years {} and {}",
            t.to_rfc3339(),
            YEARS.start(),
            YEARS.end()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_sizes_are_refused() {
        assert!(single_line("title", "Fix\r\nforged", MAX_TITLE).is_err());
        assert!(single_line("title", "nul\0", MAX_TITLE).is_err());
        assert!(single_line("title", &"x".repeat(MAX_TITLE + 1), MAX_TITLE).is_err());
        assert!(single_line("title", "Enable card vault v2", MAX_TITLE).is_ok());
        assert!(multi_line("review", "line one\nline two\tok", MAX_TEXT).is_ok());
        assert!(multi_line("review", "bell\u{7}", MAX_TEXT).is_err());
        assert!(duration(Duration::days(10_000_000)).is_err());
        assert!(duration(Duration::minutes(30)).is_ok());
    }
}
