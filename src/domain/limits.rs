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

/// Invisible characters that change how text reads without showing: Unicode's format
/// characters (category Cf: bidirectional overrides and isolates, zero-width spaces, the
/// byte-order mark, tags, …) and the line and paragraph separators, which would break "one
/// line" text. The zero-width non-joiner and joiner (U+200C, U+200D) are left out: emoji and
/// some scripts need them.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200B}'),
    ('\u{200E}', '\u{200F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// A character that does not belong in text people type: a control character (other than
/// the newlines and tabs `allowed`), or an [`INVISIBLE`] one, the stuff of "Trojan Source"
/// titles.
pub fn unwanted_char(text: &str, allowed: &[char]) -> Option<(usize, char)> {
    text.chars().enumerate().find(|(_, c)| {
        (c.is_control() && !allowed.contains(c))
            || INVISIBLE.iter().any(|(lo, hi)| (*lo..=*hi).contains(c))
    })
}

/// What is wrong with `c` at character `at` (0-based) of the `what`, as a sentence part.
pub fn describe_char(what: &str, at: usize, c: char) -> String {
    let kind = if c.is_control() {
        "a control character"
    } else {
        "an invisible formatting character"
    };
    format!(
        "the {what} contains {kind} (U+{:04X}) at character {}",
        u32::from(c),
        at + 1
    )
}

/// Checks one line of text: no control or invisible characters, at most `max` characters.
pub fn single_line(what: &str, text: &str, max: usize) -> Result<(), String> {
    if let Some((at, c)) = unwanted_char(text, &[]) {
        return Err(format!(
            "{}; use plain text on one line",
            describe_char(what, at, c)
        ));
    }
    within(what, text, max)
}

/// Checks text that may span lines: newlines and tabs are fine, other control characters
/// and invisible ones are not; at most `max` characters.
pub fn multi_line(what: &str, text: &str, max: usize) -> Result<(), String> {
    if let Some((at, c)) = unwanted_char(text, &['\n', '\t']) {
        return Err(format!(
            "{}; only newlines and tabs are allowed besides plain text",
            describe_char(what, at, c)
        ));
    }
    within(what, text, max)
}

/// Multi-line text for a one-line place (a blocker, a history line): each run of line breaks
/// and tabs becomes ` / `.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.trim().chars() {
        if matches!(c, '\n' | '\r' | '\t') {
            gap = true;
            continue;
        }
        if gap {
            out.push_str(" / ");
            gap = false;
        }
        out.push(c);
    }
    out
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
