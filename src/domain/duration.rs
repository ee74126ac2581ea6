//! Human durations as written in config and commands: `90s`, `15m`, `3h`, `2d`.

use std::fmt;
use std::str::FromStr;

use chrono::Duration;

use super::DomainError;

/// A positive span of time written as a number and one unit (`s`, `m`, `h`, `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub Duration);

impl Span {
    pub fn minutes(m: i64) -> Self {
        Span(Duration::minutes(m))
    }
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Span {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            DomainError::Invalid(format!(
                "`{s}` is not a duration (write a number and a unit: 90s, 15m, 3h, 2d)"
            ))
        };
        let s = s.trim();
        let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = s.split_at(unit_at);
        let n: i64 = digits.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(DomainError::Invalid(format!(
                "`{s}` is no time at all; a duration must be more than 0 (e.g. 15m)"
            )));
        }
        if n > 10_000_000 {
            return Err(bad());
        }
        let d = match unit {
            "s" => Duration::seconds(n),
            "m" => Duration::minutes(n),
            "h" => Duration::hours(n),
            "d" => Duration::days(n),
            _ => return Err(bad()),
        };
        Ok(Span(d))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.num_seconds();
        let (n, unit) = if secs % 86_400 == 0 {
            (secs / 86_400, "d")
        } else if secs % 3_600 == 0 {
            (secs / 3_600, "h")
        } else if secs % 60 == 0 {
            (secs / 60, "m")
        } else {
            (secs, "s")
        };
        write!(f, "{n}{unit}")
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_each_unit_and_print_back() {
        for (text, secs) in [("90s", 90), ("15m", 900), ("3h", 10_800), ("2d", 172_800)] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0.num_seconds(), secs);
            assert_eq!(span.to_string(), text);
        }
        for bad in ["", "15", "m", "0m", "-5m", "1.5h", "3w", "15 m"] {
            assert!(bad.parse::<Span>().is_err(), "{bad} should not parse");
        }
    }
}
