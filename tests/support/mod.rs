//! Test harness: the real workflow on a real database (a temporary SQLite file, or a fresh
//! PostgreSQL database when CHANGEBOT_TEST_POSTGRES_URL is set), with a manual clock.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use changebot::app::App;
use changebot::chat::{self, render::render};
use changebot::clock::{Clock, ManualClock};
use changebot::config::Config;
use changebot::notify::MemorySink;
use changebot::workflow::{Actor, Identity, Outcome, Surface, WorkflowError};

pub mod backfill;
pub mod discord;
pub mod flaky;
pub mod github;
pub mod hooks;
pub mod target;

pub const ORG: &str = include_str!("../fixtures/org.toml");
/// The env var the test deploy target's secret is read from, and its value.
pub const DEPLOY_SECRET_ENV: &str = "CHANGEBOT_TEST_DEPLOY_SECRET";
pub const DEPLOY_SECRET: &str = "test-deploy-secret";

/// The fixture organisation with payments-api/production deploying to `target_url`.
pub fn config_text(database_url: &str, target_url: Option<&str>) -> String {
    let mut text = ORG.replace("sqlite://unused.db", database_url);
    if let Some(url) = target_url {
        let deploy = format!(
            "change_duration = \"30m\"\n[service.deploy.production]\nurl = \"{url}\"\nsecret_env = \"{DEPLOY_SECRET_ENV}\"\ntimeout = \"15m\"\n"
        );
        text = text.replacen("change_duration = \"30m\"\n", &deploy, 1);
    }
    text
}

/// Makes the deploy secret visible to `Config::secret` in this test process.
pub fn export_deploy_secret() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any thread reads it, to the same value every test expects.
    ONCE.call_once(|| unsafe { std::env::set_var(DEPLOY_SECRET_ENV, DEPLOY_SECRET) });
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test time")
        .with_timezone(&Utc)
}

/// The fixture organisation pointed at `database_url`.
pub fn config(database_url: &str) -> Config {
    config_for(database_url, None)
}

/// The fixture organisation, optionally deploying payments-api/production to `target_url`.
pub fn config_for(database_url: &str, target_url: Option<&str>) -> Config {
    let text = config_text(database_url, target_url);
    let env = |name: &str| (name == DEPLOY_SECRET_ENV).then(|| DEPLOY_SECRET.to_string());
    Config::parse(&text, Path::new("tests/fixtures/org.toml"), &env)
        .expect("fixture config is valid")
}

pub struct Harness {
    pub app: App,
    pub clock: ManualClock,
    pub url: String,
    pub sink: Arc<MemorySink>,
    target: Option<String>,
    /// The edited config text of a `with_config` harness (a restart reads it again).
    edited: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// A fresh SQLite database in a temporary directory.
    pub async fn sqlite(now: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
        Self::on(url, Some(dir), now).await
    }

    /// A fresh PostgreSQL database, when CHANGEBOT_TEST_POSTGRES_URL is set.
    pub async fn postgres(now: &str) -> Option<Harness> {
        let Some(admin) = postgres_url() else {
            eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
            return None;
        };
        let url = changebot::store::testing::fresh_postgres(&admin)
            .await
            .expect("fresh postgres database");
        Some(Self::on(url, None, now).await)
    }

    pub async fn on(url: String, dir: Option<tempfile::TempDir>, now: &str) -> Harness {
        Self::with_target(url, dir, None, now).await
    }

    /// A fresh SQLite database; payments-api/production deploys to `target_url`.
    pub async fn sqlite_deploying_to(target_url: &str, now: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
        Self::with_target(url, Some(dir), Some(target_url.to_string()), now).await
    }

    async fn with_target(
        url: String,
        dir: Option<tempfile::TempDir>,
        target: Option<String>,
        now: &str,
    ) -> Harness {
        export_deploy_secret();
        Self::assemble(url, dir, target, ManualClock::new(at(now))).await
    }

    /// Another replica: a second app on the same database with the same (edited) config and
    /// clock, while this one keeps running.
    pub async fn second_replica(&self) -> Harness {
        let text = self.edited.clone().expect("a with_config harness");
        let sink = Arc::new(MemorySink::default());
        let config = Config::parse(
            &text,
            Path::new("tests/fixtures/org.toml"),
            &|name: &str| (name == DEPLOY_SECRET_ENV).then(|| DEPLOY_SECRET.to_string()),
        )
        .expect("edited config");
        let app = App::build_with(config, Arc::new(self.clock.clone()), sink.clone())
            .await
            .expect("app builds");
        Harness {
            app,
            clock: self.clock.clone(),
            url: self.url.clone(),
            sink,
            target: self.target.clone(),
            edited: Some(text),
            _dir: None,
        }
    }

    /// A second process's view: a new app on the same database.
    pub async fn restart(self) -> Harness {
        let Harness {
            app,
            clock,
            url,
            target,
            edited,
            _dir,
            ..
        } = self;
        drop(app);
        let Some(text) = edited else {
            return Self::assemble(url, _dir, target, clock).await;
        };
        let sink = Arc::new(MemorySink::default());
        let config = Config::parse(
            &text,
            Path::new("tests/fixtures/org.toml"),
            &|name: &str| (name == DEPLOY_SECRET_ENV).then(|| DEPLOY_SECRET.to_string()),
        )
        .expect("edited config");
        let app = App::build_with(config, Arc::new(clock.clone()), sink.clone())
            .await
            .expect("app builds");
        Harness {
            app,
            clock,
            url,
            sink,
            target,
            edited: Some(text),
            _dir,
        }
    }

    async fn assemble(
        url: String,
        dir: Option<tempfile::TempDir>,
        target: Option<String>,
        clock: ManualClock,
    ) -> Harness {
        let sink = Arc::new(MemorySink::default());
        let config = config_for(&url, target.as_deref());
        let app = App::build_with(config, Arc::new(clock.clone()), sink.clone())
            .await
            .expect("app builds");
        Harness {
            app,
            clock,
            url,
            sink,
            target,
            edited: None,
            _dir: dir,
        }
    }

    /// Runs due jobs and delivers the outbox at the current test time.
    pub async fn run_due(&self) -> usize {
        self.app.run_due().await.expect("background round")
    }

    /// Chat messages delivered so far (text only).
    pub fn chat(&self) -> Vec<String> {
        self.sink
            .messages()
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }

    pub fn set_time(&self, now: &str) {
        self.clock.set(at(now));
    }

    /// Runs a chat line as `person`; Ok(reply) or Err(refusal/usage text).
    pub async fn say(&self, person: &str, line: &str) -> Result<String, String> {
        self.outcome(person, line)
            .await
            .map(|o| render(&o, &self.app.config.org))
    }

    pub async fn outcome(&self, person: &str, line: &str) -> Result<Outcome, String> {
        self.outcome_on(Surface::Console, person, line).await
    }

    /// Runs a chat line as `identity` (a person's name, `github:LOGIN`, `discord:ID`) arriving
    /// on `surface`; Ok(reply) or Err(refusal/usage text).
    pub async fn say_on(
        &self,
        surface: Surface,
        identity: &str,
        line: &str,
    ) -> Result<String, String> {
        self.outcome_on(surface, identity, line)
            .await
            .map(|o| render(&o, &self.app.config.org))
    }

    pub async fn outcome_on(
        &self,
        surface: Surface,
        person: &str,
        line: &str,
    ) -> Result<Outcome, String> {
        let command = chat::parse(line).map_err(|e| e.to_string())?;
        let identity = Identity::parse(person)?;
        let actor = Actor::resolve(&self.app.config.org, identity, surface);
        self.app
            .workflow
            .execute(&actor, command, self.clock.now())
            .await
            .map_err(|e: WorkflowError| {
                assert!(e.is_user_error(), "internal error for `{line}`: {e}");
                e.to_string()
            })
    }

    /// Like `say`, but the command must succeed.
    pub async fn ok(&self, person: &str, line: &str) -> String {
        match self.say(person, line).await {
            Ok(reply) => reply,
            Err(e) => panic!("`{line}` as {person} failed: {e}"),
        }
    }

    /// Like `say`, but the command must be refused; returns the refusal.
    pub async fn refused(&self, person: &str, line: &str) -> String {
        match self.say(person, line).await {
            Ok(reply) => panic!("`{line}` as {person} should be refused, got:\n{reply}"),
            Err(e) => e,
        }
    }
}

pub fn postgres_url() -> Option<String> {
    std::env::var("CHANGEBOT_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_changebot"))
}

impl Harness {
    /// A fresh SQLite database whose config is the fixture's text passed through `edit`, for
    /// calendars the fixture lacks. There is no deploy target (releases are dry runs); `restart`
    /// goes back to the unedited fixture.
    pub async fn sqlite_with_config(edit: impl FnOnce(String) -> String, now: &str) -> Harness {
        Self::with_config(false, edit, now)
            .await
            .expect("sqlite is always there")
    }

    /// A fresh database (PostgreSQL when `postgres` and CHANGEBOT_TEST_POSTGRES_URL is set,
    /// else `None`; SQLite otherwise) with the fixture config edited by `edit`.
    pub async fn with_config(
        postgres: bool,
        edit: impl FnOnce(String) -> String,
        now: &str,
    ) -> Option<Harness> {
        export_deploy_secret();
        let (url, dir) = fresh_database(postgres).await?;
        let text = edit(config_text(&url, None));
        let env = |name: &str| (name == DEPLOY_SECRET_ENV).then(|| DEPLOY_SECRET.to_string());
        let config = Config::parse(&text, Path::new("tests/fixtures/org.toml"), &env)
            .unwrap_or_else(|e| panic!("edited fixture config is invalid:\n{e}\n---\n{text}"));
        let clock = ManualClock::new(at(now));
        let sink = Arc::new(MemorySink::default());
        let app = App::build_with(config, Arc::new(clock.clone()), sink.clone())
            .await
            .expect("app builds");
        Some(Harness {
            app,
            clock,
            url,
            sink,
            target: None,
            edited: Some(text),
            _dir: dir,
        })
    }
}

impl Harness {
    /// Like `sqlite_deploying_to` / `postgres` (when `postgres` is true and PostgreSQL is
    /// available), with chat going through a sink that can be made to fail. `chat()` still reads
    /// what got through.
    pub async fn flaky(
        postgres: bool,
        target: Option<&str>,
        now: &str,
    ) -> Option<(Harness, Arc<flaky::FlakySink>)> {
        export_deploy_secret();
        let (url, dir) = fresh_database(postgres).await?;
        let memory = Arc::new(MemorySink::default());
        let sink = Arc::new(flaky::FlakySink::new(memory.clone()));
        let config = config_for(&url, target);
        let clock = ManualClock::new(at(now));
        let app = App::build_with(config, Arc::new(clock.clone()), sink.clone())
            .await
            .expect("app builds");
        let h = Harness {
            app,
            clock,
            url,
            sink: memory,
            target: target.map(str::to_string),
            edited: None,
            _dir: dir,
        };
        Some((h, sink))
    }
}

/// Serves the app's HTTP router on a free port through the server loop `serve` uses, with its
/// production limits; returns its base URL.
/// A fresh database: PostgreSQL when `postgres` (`None` when CHANGEBOT_TEST_POSTGRES_URL is
/// unset), else a SQLite file in a temporary directory (returned to keep it alive).
async fn fresh_database(postgres: bool) -> Option<(String, Option<tempfile::TempDir>)> {
    if postgres {
        let admin = postgres_url()?;
        let url = changebot::store::testing::fresh_postgres(&admin)
            .await
            .expect("fresh postgres database");
        return Some((url, None));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
    Some((url, Some(dir)))
}

pub async fn serve_http(h: &Harness) -> String {
    let router = changebot::http::router(h.app.http_state());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let limits = changebot::http_server::Limits::default();
    tokio::spawn(changebot::http_server::run(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    base
}
