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
use changebot::workflow::{Actor, Outcome, Surface, WorkflowError};

pub const ORG: &str = include_str!("../fixtures/org.toml");

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test time")
        .with_timezone(&Utc)
}

/// The fixture organisation pointed at `database_url`.
pub fn config(database_url: &str) -> Config {
    let text = ORG.replace("sqlite://unused.db", database_url);
    Config::parse(&text, Path::new("tests/fixtures/org.toml"), &|_| None)
        .expect("fixture config is valid")
}

pub struct Harness {
    pub app: App,
    pub clock: ManualClock,
    pub url: String,
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
        let clock = ManualClock::new(at(now));
        let app = App::build(config(&url), Arc::new(clock.clone()))
            .await
            .expect("app builds");
        Harness {
            app,
            clock,
            url,
            _dir: dir,
        }
    }

    /// A second process's view: a new app on the same database.
    pub async fn restart(self) -> Harness {
        let Harness {
            app,
            clock,
            url,
            _dir,
        } = self;
        drop(app);
        let app = App::build(config(&url), Arc::new(clock.clone()))
            .await
            .expect("app rebuilds");
        Harness {
            app,
            clock,
            url,
            _dir,
        }
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
        let command = chat::parse(line).map_err(|e| e.to_string())?;
        let actor = Actor::new(person, Surface::Console);
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
