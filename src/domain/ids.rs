//! Identifiers as users type and read them: `CHG-12`, `DEP-7`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// A change record's id. Displays as `CHG-N`; parses `CHG-N` (any case) or a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ChangeId(pub i64);

/// A deployment's id. Displays as `DEP-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DeploymentId(pub i64);

fn parse_prefixed(input: &str, prefix: &str) -> Option<i64> {
    let trimmed = input.trim();
    let digits = match trimmed.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &trimmed[prefix.len()..],
        _ => trimmed,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|n| *n > 0)
}

macro_rules! prefixed_id {
    ($ty:ident, $prefix:literal, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl FromStr for $ty {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_prefixed(s, $prefix).map($ty).ok_or_else(|| {
                    DomainError::Invalid(format!(
                        concat!(
                            "`{}` is not a ",
                            $what,
                            " id (expected ",
                            $prefix,
                            "N, e.g. ",
                            $prefix,
                            "12)"
                        ),
                        s
                    ))
                })
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.to_string()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

prefixed_id!(ChangeId, "CHG-", "change");
prefixed_id!(DeploymentId, "DEP-", "deployment");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_round_trip_and_reject_garbage() {
        assert_eq!("CHG-12".parse::<ChangeId>().unwrap(), ChangeId(12));
        assert_eq!("chg-7".parse::<ChangeId>().unwrap(), ChangeId(7));
        assert_eq!("42".parse::<ChangeId>().unwrap(), ChangeId(42));
        assert_eq!(ChangeId(3).to_string(), "CHG-3");
        for bad in [
            "",
            "CHG-",
            "CHG-x",
            "DEP-3",
            "CHG--1",
            "CHG-0",
            "CHG-99999999999999999999",
        ] {
            assert!(bad.parse::<ChangeId>().is_err(), "{bad} should not parse");
        }
        assert_eq!(DeploymentId(7).to_string(), "DEP-7");
    }
}
