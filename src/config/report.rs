//! Collecting findings while the config is checked: errors located by line, and warnings.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ConfigError;

/// Everything a check needs to report: the file, its text (for lines) and the environment.
pub struct Ctx<'a> {
    pub file: PathBuf,
    pub text: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
    /// The warnings that say a surface is off ([`Ctx::warn_off`]).
    pub surface_warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &Path, text: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            file: file.to_path_buf(),
            text,
            env,
            errors: Vec::new(),
            warnings: Vec::new(),
            surface_warnings: Vec::new(),
        }
    }

    /// An error at a byte range of the file (`None`: the file as a whole).
    pub fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = span.map(|s| line_of(self.text, s.start));
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }

    /// An error at the place a value was written.
    pub fn error_at<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.error(Some(at.span()), message);
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// A warning that a surface (the API, GitHub, Discord) is off because its secret is not
    /// configured or set. `check-config` prints it like any warning; `serve` says it in its
    /// start-up line for that surface instead of twice.
    pub fn warn_off(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.surface_warnings.push(message.clone());
        self.warnings.push(message);
    }

    /// The value of an environment variable; unset and empty are the same.
    pub fn env_var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }
}

/// The 1-based line that byte `offset` of `text` is on.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Whether `s` works as a name typed in chat commands: non-empty, no spaces or control characters.
pub fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_map_to_one_based_lines() {
        let text = "a = 1\nb = 2\n\nc = 3";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 5), 1);
        assert_eq!(line_of(text, 6), 2);
        assert_eq!(line_of(text, 13), 4);
        assert_eq!(line_of(text, 999), 4);
    }

    #[test]
    fn names_are_single_words() {
        assert!(is_word("payments-api"));
        assert!(!is_word(""));
        assert!(!is_word("two words"));
    }
}
