//! The config file as written: serde structs that mirror docs/configuration.md key for key.
//!
//! Every struct denies unknown keys. Values that need validation beyond their TOML type are kept
//! as `Spanned<String>` so a later check can point at the line they were written on.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

pub type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub bind: Option<Text>,
    pub public_url: Option<Text>,
    pub header_timeout: Option<Text>,
    pub body_timeout: Option<Text>,
    pub idle_timeout: Option<Text>,
    pub max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub token_env: Option<Text>,
    pub read_token_env: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGithub {
    pub webhook_secret_env: Option<Text>,
    pub token_env: Option<Text>,
    pub app_id: Option<Spanned<u64>>,
    pub private_key_env: Option<Text>,
    pub api_url: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscord {
    pub token_env: Option<Text>,
    pub api_url: Option<Text>,
    pub guild_id: Option<Text>,
    #[serde(default)]
    pub channels: BTreeMap<String, Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub person: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    pub tick: Option<Text>,
    pub lease: Option<Text>,
    pub renew: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerson {
    pub name: Text,
    pub github: Option<Text>,
    pub discord: Option<Text>,
    #[serde(default)]
    pub groups: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Text,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Text,
    #[serde(default)]
    pub repos: Vec<Text>,
    pub owners: Text,
    pub environments: Spanned<Vec<Text>>,
    #[serde(default)]
    pub windows: Vec<Text>,
    pub channel: Option<Text>,
    pub timezone: Option<Text>,
    pub change_duration: Option<Text>,
    #[serde(default)]
    pub deploy: BTreeMap<Text, RawDeploy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    pub url: Option<Text>,
    pub secret_env: Option<Text>,
    pub timeout: Option<Text>,
    /// The deployment is made by a GitHub Actions workflow gated by changebot's deployment
    /// protection rule; its `deployment_status` reports the outcome.
    pub github_actions: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: Text,
    #[serde(default)]
    pub when: RawWhen,
    pub require: Vec<RawRequirement>,
    pub reset_on_push: Option<bool>,
    /// Check runs or commit statuses that must be green on a PR's head commit.
    #[serde(default)]
    pub checks: Vec<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<OneOrMany>>,
    pub risk: Option<Spanned<OneOrMany>>,
    pub service: Option<Spanned<OneOrMany>>,
    pub environment: Option<Spanned<OneOrMany>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequirement {
    pub group: Text,
    /// Defaults to 1.
    pub count: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub name: Text,
    pub cron: Text,
    pub duration: Text,
    pub timezone: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFreeze {
    pub name: Text,
    pub start: Option<Spanned<TimeText>>,
    pub end: Option<Spanned<TimeText>>,
    pub cron: Option<Text>,
    pub duration: Option<Text>,
    pub timezone: Option<Text>,
    #[serde(default)]
    pub services: Vec<Text>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnouncement {
    pub name: Text,
    pub cron: Text,
    pub timezone: Option<Text>,
    pub channel: Text,
    pub what: Text,
}

/// A `when` value: one string or a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A point in time written either as a quoted RFC 3339 string or as a bare TOML date-time.
/// Kept as text; `build` parses it so the error can name the freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeText(pub String);

impl<'de> Deserialize<'de> for TimeText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 date-time such as \"2026-12-18T00:00:00+01:00\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TimeText, E> {
                Ok(TimeText(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TimeText, A::Error> {
                let dt =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(TimeText(dt.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
