//! The config file (docs/configuration.md): reading, validating and turning it into an [`Organisation`].
//!
//! [`Config::parse`] checks everything it can in one pass and returns *all* problems, each with
//! the file and line of the offending key, so `changebot check-config` can print them at once.
//! Secrets never live in the file: only the names of environment variables that hold them.

mod people;
mod policies;
mod raw;
mod read;
mod report;
mod schedule;
mod services;
mod settings;
pub use settings::is_host_port;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;

use crate::domain::calendar::CronExpr;
use crate::domain::organisation::Organisation;

/// The default config path, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/changebot.toml";
/// The environment variable that names the config file when no `--config` flag is given.
pub const PATH_ENV: &str = "CHANGEBOT_CONFIG";

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address the HTTP server listens on, `host:port`.
    pub bind: String,
    /// Base URL others reach this server at (callback URLs, links), without a trailing `/`.
    pub public_url: String,
    /// Timeouts and the connection cap (`header_timeout`, `body_timeout`, `idle_timeout`,
    /// `max_connections`).
    pub limits: crate::http_server::Limits,
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
}

/// `[api]`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// Env var holding the bearer token for `/api/*`; unset → the API is disabled.
    pub token_env: Option<String>,
    /// Env var holding a token that may only read: the web view and the GET routes of
    /// `/api/*`.
    pub read_token_env: Option<String>,
}

/// `[github]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubConfig {
    pub webhook_secret_env: Option<String>,
    pub token_env: Option<String>,
    pub app_id: Option<u64>,
    pub private_key_env: Option<String>,
    /// Without a trailing `/`.
    pub api_url: String,
}

/// `[discord]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordConfig {
    pub token_env: Option<String>,
    /// Optional REST proxy (twilight-http-proxy).
    pub api_url: Option<String>,
    pub guild_id: Option<String>,
    /// Channel name (as used by services and announcements) → Discord channel id.
    pub channels: BTreeMap<String, String>,
}

/// `[scheduler]`: how often due jobs and the outbox are polled, how long a claim lasts without
/// renewal before another process may take it over (its holder died or stalled), and how often
/// a holder renews the claims it is working on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub tick: chrono::Duration,
    pub lease: chrono::Duration,
    /// `None`: a third of the lease.
    pub renew: Option<chrono::Duration>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: chrono::Duration::seconds(1),
            lease: chrono::Duration::seconds(6),
            renew: None,
        }
    }
}

impl SchedulerConfig {
    /// How often leases are renewed; one renewal attempt is also given at most this long, so a
    /// lease must outlast two of these.
    pub fn renew_every(&self) -> std::time::Duration {
        self.renew
            .unwrap_or(self.lease / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(2))
            .max(std::time::Duration::from_millis(100))
    }
}

/// `[console]`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Who the console acts as when `--as` is not given.
    pub person: Option<String>,
}

/// What a scheduled announcement posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnouncementKind {
    /// `next-24h`: changes booked in the next 24 hours.
    Next24h,
    /// `forward-schedule`: the forward schedule of changes.
    ForwardSchedule,
    /// `weekly-review`: the last 7 days' KPIs against the 7 before, with a chart, and the
    /// failed and emergency changes still waiting for their review.
    WeeklyReview,
}

impl AnnouncementKind {
    pub const ALL: &'static [AnnouncementKind] = &[
        AnnouncementKind::Next24h,
        AnnouncementKind::ForwardSchedule,
        AnnouncementKind::WeeklyReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncementKind::Next24h => "next-24h",
            AnnouncementKind::ForwardSchedule => "forward-schedule",
            AnnouncementKind::WeeklyReview => "weekly-review",
        }
    }
}

impl fmt::Display for AnnouncementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[announcement]]`
#[derive(Debug, Clone)]
pub struct Announcement {
    pub name: String,
    pub cron: CronExpr,
    pub tz: Tz,
    /// A channel name (a key of `[discord].channels` when Discord is configured).
    pub channel: String,
    pub what: AnnouncementKind,
}

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub api: ApiConfig,
    pub github: Option<GithubConfig>,
    pub discord: Option<DiscordConfig>,
    pub console: ConsoleConfig,
    pub scheduler: SchedulerConfig,
    pub announcements: Vec<Announcement>,
    pub org: Organisation,
    /// Non-fatal findings (a feature disabled because its secret env var is unset, etc.).
    pub warnings: Vec<String>,
    /// The warnings that only say a surface is off; `serve`'s start-up lines restate them.
    pub surface_warnings: Vec<String>,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, in file order. Displays one per line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Config {
    /// The config path: the explicit flag, else `$CHANGEBOT_CONFIG`, else `config/changebot.toml`.
    pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        match std::env::var_os(PATH_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_PATH),
        }
    }

    /// Reads and validates the file at `path`, taking secrets' presence from the process env.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "there is no config file here; pass --config PATH or set {PATH_ENV} \
                     (the default, {DEFAULT_PATH}, is relative to the current directory; \
                     config/changebot.toml in the repository is a working example)"
                )
            } else {
                format!("cannot read the config file: {e}")
            };
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                message,
            }])
        })?;
        Config::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Validates config `text` (read from `path`, used in messages). `env` answers whether the
    /// environment variables named in the config are set; values are never kept.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut ctx = report::Ctx::new(path, text, env);
        let built = read::read(&mut ctx).map(|doc| build(&mut ctx, doc));
        let mut errors = ctx.errors;
        match built {
            Some(mut config) if errors.is_empty() => {
                config.path = path.to_path_buf();
                config.warnings = ctx.warnings;
                config.surface_warnings = ctx.surface_warnings;
                Ok(config)
            }
            _ => {
                errors.sort_by_key(|e| e.line.unwrap_or(0));
                Err(ConfigErrors(errors))
            }
        }
    }

    /// Reads a secret from the env var named in config (`None` if unset or empty).
    /// Never log the value.
    pub fn secret(&self, env_name: Option<&str>) -> Option<String> {
        let name = env_name?;
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// The GitHub credentials `[github]` names and the environment holds: the App's private
    /// key when `app_id` is set and `private_key_env` holds one (the App wins), else the token.
    /// Never log the value.
    pub fn github_credentials(&self) -> Option<GithubCredentials> {
        let gh = self.github.as_ref()?;
        if let (Some(app_id), Some(env)) = (gh.app_id, gh.private_key_env.as_deref())
            && let Some(private_key) = self.secret(Some(env))
        {
            return Some(GithubCredentials::App {
                app_id,
                key_env: env.to_string(),
                private_key,
            });
        }
        self.secret(gh.token_env.as_deref())
            .map(GithubCredentials::Token)
    }
}

/// How changebot authenticates to GitHub (`Config::github_credentials`).
#[derive(Clone, PartialEq, Eq)]
pub enum GithubCredentials {
    /// A personal access token.
    Token(String),
    /// A GitHub App: its id, the env var its key came from, and the PEM private key.
    App {
        app_id: u64,
        key_env: String,
        private_key: String,
    },
}

impl std::fmt::Debug for GithubCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GithubCredentials::Token(_) => f.write_str("Token(<redacted>)"),
            GithubCredentials::App {
                app_id, key_env, ..
            } => f
                .debug_struct("App")
                .field("app_id", app_id)
                .field("key_env", key_env)
                .finish_non_exhaustive(),
        }
    }
}

/// Validates every section, in dependency order, into a `Config` (meaningful only when no
/// error was recorded).
fn build(ctx: &mut report::Ctx<'_>, doc: read::RawDoc) -> Config {
    let s = settings::build(ctx, &doc);
    let people = people::build(ctx, &doc.persons, &doc.groups);
    let windows = schedule::windows(ctx, &doc.windows);
    let window_names = read::Declared::of(&doc.windows, |w| w.name.get_ref());
    let channels = settings::Channels::of(&doc);
    let known = services::Known {
        people: &people,
        windows: &windows,
        window_names: &window_names,
        channels: &channels,
    };
    let services = services::build(ctx, &doc.services, &known);
    let declared = services::Declared::of(&doc.services);
    let policies = policies::build(ctx, &doc.policies, &people, &services, &declared);
    let freezes = schedule::freezes(ctx, &doc.freezes, &declared.names);
    let announcements = schedule::announcements(ctx, &doc.announcements, &channels);
    settings::check_console(ctx, &doc.console, &people);
    let scheduler = schedule::scheduler(ctx, &doc.scheduler);

    let config = Config {
        path: PathBuf::new(),
        server: s.server,
        database: s.database,
        api: s.api,
        github: s.github,
        discord: s.discord,
        console: s.console,
        scheduler,
        announcements,
        org: Organisation {
            people: people.people,
            group_descriptions: people.descriptions,
            services,
            policies,
            windows,
            freezes,
        },
        warnings: Vec::new(),
        surface_warnings: Vec::new(),
    };
    // Only an otherwise valid organisation is worth asking who could approve what.
    if ctx.errors.is_empty() {
        policies::check_reachable(ctx, &doc.policies, &config.org);
    }
    config
}
