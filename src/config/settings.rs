//! The single-table sections: `[server]`, `[database]`, `[api]`, `[github]`, `[discord]`,
//! `[console]`. A secret env var that is not set disables its feature with a warning.

use std::collections::{BTreeMap, BTreeSet};

use super::people::{People, is_snowflake};
use super::raw::{RawConsole, RawServer, Text};
use super::read::RawDoc;
use super::report::{Ctx, is_word};
use super::{ApiConfig, ConsoleConfig, DatabaseConfig, DiscordConfig, GithubConfig, ServerConfig};

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/changebot.db";
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

pub struct Settings {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub api: ApiConfig,
    pub github: Option<GithubConfig>,
    pub discord: Option<DiscordConfig>,
    pub console: ConsoleConfig,
}

/// The chat channel names services and announcements may use.
pub struct Channels {
    /// `None`: no `[discord]` section (or it could not be read), so any name is accepted.
    pub names: Option<BTreeSet<String>>,
}

impl Channels {
    pub fn of(doc: &RawDoc) -> Self {
        let names = match (&doc.discord, doc.discord_broken) {
            (Some(d), false) => Some(d.channels.keys().cloned().collect()),
            _ => None,
        };
        Channels { names }
    }

    /// Reports `channel` (written at `at` by `owner`) unless it is a `[discord].channels` key.
    pub fn check(&self, ctx: &mut Ctx<'_>, at: &Text, owner: &str) {
        let Some(names) = &self.names else { return };
        let channel = at.get_ref();
        if !names.contains(channel) {
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            ctx.error_at(
                at,
                format!(
                    "{owner}: channel `{channel}` is not in [discord].channels (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
}

/// Whether `text` reads as `host:port` (`127.0.0.1:8080`, `[::1]:0`, `localhost:8080`).
pub fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    })
}

pub fn build(ctx: &mut Ctx<'_>, doc: &RawDoc) -> Settings {
    let bind = text_or(&doc.server.bind, DEFAULT_BIND);
    if let Some(b) = &doc.server.bind
        && !is_host_port(b.get_ref())
    {
        ctx.error_at(
            b,
            format!(
                "server: bind `{}` is not host:port (e.g. 127.0.0.1:8080)",
                b.get_ref()
            ),
        );
    }
    let public_url = http_url(ctx, "server: public_url", &doc.server.public_url)
        .unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string());

    let database_url = text_or(&doc.database.url, DEFAULT_DATABASE_URL);
    if let Some(u) = &doc.database.url {
        let url = u.get_ref();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            ctx.error_at(
                u,
                format!("database: url `{url}` must start with sqlite:// or postgres://"),
            );
        }
    }

    let api = ApiConfig {
        token_env: env_name(ctx, "api: token_env", &doc.api.token_env),
        read_token_env: env_name(ctx, "api: read_token_env", &doc.api.read_token_env),
    };
    match &api.token_env {
        None => ctx.warn_off("api: no token_env configured; /api/* is disabled"),
        Some(name) if ctx.env_var(name).is_none() => {
            ctx.warn_off(format!("api: {name} is not set; /api/* is disabled"))
        }
        Some(_) => {}
    }
    if let Some(name) = &api.read_token_env
        && ctx.env_var(name).is_none()
    {
        ctx.warn_off(format!(
            "api: {name} is not set; there is no read-only token for the web view and GET /api/*"
        ));
    }

    Settings {
        server: ServerConfig {
            bind,
            public_url,
            limits: limits(ctx, &doc.server),
        },
        database: DatabaseConfig { url: database_url },
        api,
        github: github(ctx, doc),
        discord: discord(ctx, doc),
        console: ConsoleConfig {
            person: doc.console.person.as_ref().map(|p| p.get_ref().clone()),
        },
    }
}

/// The most `[server] max_connections` may be.
const MAX_CONNECTIONS_CEILING: i64 = 1_000_000;

/// `[server]` timeouts (durations such as `10s`) and `max_connections`, over the defaults.
fn limits(ctx: &mut Ctx<'_>, raw: &RawServer) -> crate::http_server::Limits {
    let mut limits = crate::http_server::Limits::default();
    for (key, value, slot) in [
        (
            "header_timeout",
            &raw.header_timeout,
            &mut limits.header_timeout,
        ),
        ("body_timeout", &raw.body_timeout, &mut limits.body_timeout),
        ("idle_timeout", &raw.idle_timeout, &mut limits.idle_timeout),
    ] {
        let parsed = value
            .as_ref()
            .and_then(|v| super::schedule::duration(ctx, "server", key, v))
            .and_then(|d| d.to_std().ok());
        if let Some(d) = parsed {
            *slot = d;
        }
    }
    if let Some(n) = &raw.max_connections {
        match u32::try_from(*n.get_ref()) {
            Ok(max) if (1..=MAX_CONNECTIONS_CEILING).contains(&i64::from(max)) => {
                limits.max_connections = max;
            }
            _ => ctx.error_at(
                n,
                format!(
                    "server: max_connections must be between 1 and {MAX_CONNECTIONS_CEILING} \
                     (default {})",
                    limits.max_connections
                ),
            ),
        }
    }
    limits
}

fn github(ctx: &mut Ctx<'_>, doc: &RawDoc) -> Option<GithubConfig> {
    let raw = doc.github.as_ref()?;
    let gh = GithubConfig {
        webhook_secret_env: env_name(ctx, "github: webhook_secret_env", &raw.webhook_secret_env),
        token_env: env_name(ctx, "github: token_env", &raw.token_env),
        app_id: raw.app_id.as_ref().map(|a| *a.get_ref()),
        private_key_env: env_name(ctx, "github: private_key_env", &raw.private_key_env),
        api_url: http_url(ctx, "github: api_url", &raw.api_url)
            .unwrap_or_else(|| DEFAULT_GITHUB_API_URL.to_string()),
    };
    match (&raw.app_id, &raw.private_key_env) {
        (Some(at), None) => ctx.error_at(at, "github: app_id needs private_key_env as well"),
        (None, Some(at)) => ctx.error_at(at, "github: private_key_env needs app_id as well"),
        _ => {}
    }
    match &gh.webhook_secret_env {
        None => ctx.warn_off("github: no webhook_secret_env; the GitHub webhook stays off"),
        Some(name) if ctx.env_var(name).is_none() => ctx.warn_off(format!(
            "github: {name} is not set; the GitHub webhook stays off"
        )),
        Some(_) => {}
    }
    let app_ready = gh.app_id.is_some()
        && gh
            .private_key_env
            .as_deref()
            .is_some_and(|n| ctx.env_var(n).is_some());
    let token_ready = gh
        .token_env
        .as_deref()
        .is_some_and(|n| ctx.env_var(n).is_some());
    if !app_ready && !token_ready {
        let missing: Vec<&str> = [gh.token_env.as_deref(), gh.private_key_env.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let why = if missing.is_empty() {
            "no token_env or app_id + private_key_env configured".to_string()
        } else {
            format!("{} is not set", missing.join(" / "))
        };
        ctx.warn_off(format!(
            "github: {why}; PR comments, commit statuses and deployment answers are disabled"
        ));
    }
    Some(gh)
}

fn discord(ctx: &mut Ctx<'_>, doc: &RawDoc) -> Option<DiscordConfig> {
    let raw = doc.discord.as_ref()?;
    let token_env = env_name(ctx, "discord: token_env", &raw.token_env);
    match &token_env {
        None => ctx.warn_off("discord: no token_env configured; Discord is disabled"),
        Some(name) if ctx.env_var(name).is_none() => {
            ctx.warn_off(format!("discord: {name} is not set; Discord is disabled"))
        }
        Some(_) => {}
    }
    if let Some(g) = &raw.guild_id
        && !is_snowflake(g.get_ref())
    {
        ctx.error_at(
            g,
            format!("discord: guild_id `{}` must be a numeric id", g.get_ref()),
        );
    }
    let mut channels = BTreeMap::new();
    for (name, id) in &raw.channels {
        if !is_word(name) {
            ctx.error_at(
                id,
                format!("discord: channel name `{name}` must be a single word"),
            );
        } else if !is_snowflake(id.get_ref()) {
            ctx.error_at(
                id,
                format!(
                    "discord: channel {name} = `{}` must be a numeric channel id",
                    id.get_ref()
                ),
            );
        }
        channels.insert(name.clone(), id.get_ref().clone());
    }
    if !channels.contains_key("cab") {
        ctx.warn(
            "discord: [discord].channels has no `cab`: emergency and unauthorized-change alerts will only be logged",
        );
    }
    Some(DiscordConfig {
        token_env,
        api_url: http_url(ctx, "discord: api_url", &raw.api_url),
        guild_id: raw.guild_id.as_ref().map(|g| g.get_ref().clone()),
        channels,
    })
}

pub fn check_console(ctx: &mut Ctx<'_>, console: &RawConsole, people: &People) {
    if let Some(p) = &console.person
        && !people.declared.resolves(p.get_ref())
    {
        ctx.error_at(
            p,
            format!("console: person `{}` is not a [[person]]", p.get_ref()),
        );
    }
}

fn text_or(value: &Option<Text>, default: &str) -> String {
    value
        .as_ref()
        .map_or_else(|| default.to_string(), |v| v.get_ref().clone())
}

/// An `http(s)://` URL, without a trailing slash.
pub fn http_url(ctx: &mut Ctx<'_>, label: &str, value: &Option<Text>) -> Option<String> {
    let v = value.as_ref()?;
    let url = v.get_ref().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
        ctx.error_at(
            v,
            format!(
                "{label} `{}` is not an http:// or https:// URL",
                v.get_ref()
            ),
        );
    }
    Some(url.to_string())
}

/// The name of an environment variable. Catches a secret pasted where its variable's name goes.
pub fn env_name(ctx: &mut Ctx<'_>, label: &str, value: &Option<Text>) -> Option<String> {
    let v = value.as_ref()?;
    let name = v.get_ref();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        // Never echo the value: it may be a secret pasted into the wrong key.
        ctx.error_at(
            v,
            format!(
                "{label} must be the NAME of an environment variable (letters, digits, _); \
                 secrets never go in the config file"
            ),
        );
        return None;
    }
    Some(name.clone())
}
