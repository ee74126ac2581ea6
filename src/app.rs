//! Wiring: config → store → workflow → surfaces. `build` is separate from `serve` so tests start
//! the real app on port 0.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::deploy::DeployClient;
use crate::health::Health;
use crate::holder::Holder;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::notify::{ChatSink, LogSink};
use crate::outbox::Dispatcher;
use crate::scheduler::{Burst, Scheduler};
use crate::startup;
use crate::store::{Store, Usage};
use crate::workflow::{Actor, Surface, Workflow};

/// How long one HTTP attempt to a deployment target may take.
const DEPLOY_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often `serve` checks that every scheduled change has its start job.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A built application: everything connected, nothing listening yet.
pub struct App {
    pub workflow: Workflow,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub scheduler: Scheduler,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub sink: Arc<dyn ChatSink>,
    /// This process as a holder of claims.
    pub holder: Holder,
    /// How the background loops are doing (for `/readyz`).
    pub health: Health,
    /// The GitHub webhook and its inbox processor, when `[github]` is configured (servers
    /// only).
    pub github: Option<crate::github::Parts>,
    /// The Discord gateway, when `[discord]` has a token (servers only); taken by
    /// `run_background`.
    pub discord: std::sync::Mutex<Option<crate::discord::gateway::Gateway>>,
}

impl App {
    /// Connects the store named in config (a pool sized for a server) and applies migrations;
    /// chat goes to the log.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        Self::build_for(config, clock, Usage::Server).await
    }

    /// Like `build`, with the pool sized for `usage`: one-shot commands (`changebot chat`,
    /// `changebot migrate`) use [`Usage::OneShot`], a single connection.
    pub async fn build_for(
        config: Config,
        clock: Arc<dyn Clock>,
        usage: Usage,
    ) -> anyhow::Result<App> {
        Self::assemble(config, clock, Arc::new(LogSink::default()), usage).await
    }

    /// Like `build`, with chat messages delivered to `sink`.
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn ChatSink>,
    ) -> anyhow::Result<App> {
        Self::assemble(config, clock, sink, Usage::Server).await
    }

    async fn assemble(
        config: Config,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn ChatSink>,
        usage: Usage,
    ) -> anyhow::Result<App> {
        let store = Store::connect_for(&config.database.url, usage)
            .await
            .with_context(|| format!("opening database {}", redact(&config.database.url)))?;
        store.migrate().await.context("applying migrations")?;
        let config = Arc::new(config);
        let workflow = Workflow::new(store, config.clone());
        let client =
            DeployClient::new(DEPLOY_ATTEMPT_TIMEOUT).context("building the HTTP client")?;
        let holder = Holder::new();
        let burst = Burst::default();
        // With Discord, chat goes to Discord as well as to `sink` (the log, the console).
        let discord = match usage {
            Usage::Server => {
                crate::discord::from_config(&config, sink.clone(), &workflow, &clock, &holder)?
            }
            Usage::OneShot => None,
        };
        let chat_sink = discord
            .as_ref()
            .map_or_else(|| sink.clone(), |d| d.sink.clone());
        let mut dispatcher = Dispatcher::new(
            workflow.clone(),
            client,
            chat_sink,
            holder.clone(),
            burst.clone(),
        );
        // One GitHub client (its installation tokens and caches) for replies and reconciliation.
        let gh_client = crate::github::GithubClient::from_config(&config)?;
        let github = match usage {
            Usage::Server => {
                crate::github::parts(&workflow, &holder, &clock, gh_client.as_ref()).await?
            }
            Usage::OneShot => None,
        };
        if let Some(client) = &gh_client {
            dispatcher = dispatcher.with_sink(crate::github::sink_for(client));
        }
        Ok(App {
            scheduler: Scheduler::new(workflow.clone(), holder.clone(), burst),
            dispatcher,
            github,
            holder,
            health: Health::default(),
            workflow,
            clock,
            config,
            metrics: Arc::new(Metrics::default()),
            sink,
            discord: std::sync::Mutex::new(discord.map(|d| d.gateway)),
        })
    }

    pub fn http_state(&self) -> AppState {
        let api_token = self
            .config
            .secret(self.config.api.token_env.as_deref())
            .map(Arc::from);
        let read_token = self
            .config
            .secret(self.config.api.read_token_env.as_deref())
            .map(Arc::from);
        AppState {
            workflow: self.workflow.clone(),
            api_token,
            read_token,
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            github: self.github.as_ref().map(|g| g.intake.clone()),
        }
    }

    /// One round of background work at the clock's current time: due jobs, then the outbox.
    /// Returns how many jobs and deliveries were handled.
    pub async fn run_due(&self) -> anyhow::Result<usize> {
        let mut jobs = 0;
        if let Some(gh) = &self.github {
            jobs += gh.processor.run_once(self.clock.now()).await?;
        }
        jobs += self.scheduler.tick(self.clock.now()).await?;
        let sent = self.dispatcher.run_once(self.clock.now()).await?;
        Ok(jobs + sent)
    }

    /// Runs background work until `stop` turns true, each part on its own:
    /// - the scheduler runs due jobs every `[scheduler] tick` (and wakes for the next due job);
    /// - the dispatcher delivers the outbox continuously (woken at once by started releases);
    /// - the heartbeat renews the leases of the work in hand every `[scheduler] renew`;
    /// - reconciliation checks every `RECONCILE_EVERY` that each scheduled change has its
    ///   start job.
    ///
    /// On stop, the calls in flight finish and are recorded before this returns.
    pub async fn run_background(&self, stop: tokio::sync::watch::Receiver<bool>) {
        if let Err(e) = self.scheduler.plan_announcements(self.clock.now()).await {
            tracing::error!(error = %e, "could not plan announcements");
        }
        let tick = self
            .config
            .scheduler
            .tick
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1));
        let jobs = async {
            let mut stop = stop.clone();
            let mut last_reconcile: Option<std::time::Instant> = None;
            while !*stop.borrow() {
                if last_reconcile.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY) {
                    last_reconcile = Some(std::time::Instant::now());
                    match self.workflow.reconcile(self.clock.now()).await {
                        Ok(fixed) if fixed > 0 => {
                            tracing::warn!(
                                fixed,
                                "reconciled scheduled changes with their start jobs"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "reconciliation failed"),
                    }
                }
                match self.scheduler.tick(self.clock.now()).await {
                    Ok(n) => {
                        self.health.ok("scheduler");
                        if n > 0 {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "scheduler round failed");
                        self.health.failed("scheduler", &e);
                    }
                }
                // Wake for the next job if it is due before the next tick.
                let next = self.workflow.next_job_due().await.ok().flatten();
                let until_next = next.and_then(|due| (due - self.clock.now()).to_std().ok());
                let nap = until_next.map_or(tick, |d| d.min(tick));
                tokio::select! {
                    () = tokio::time::sleep(nap.max(std::time::Duration::from_millis(5))) => {}
                    _ = stop.changed() => {}
                }
            }
            self.health.stopped("scheduler");
        };
        let outbox =
            self.dispatcher
                .run(self.clock.clone(), tick, stop.clone(), self.health.clone());
        let heartbeat = async {
            let mut stop = stop.clone();
            let every = self.config.scheduler.renew_every();
            let lease = self.config.scheduler.lease;
            loop {
                if *stop.borrow() {
                    // Keep renewing while the last calls finish after a stop.
                    if self.holder.claims_in_hand() == 0 {
                        break;
                    }
                    tokio::time::sleep(every).await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = stop.changed() => {}
                    }
                }
                let until = self.clock.now() + lease;
                let renewal = self.holder.renew(self.workflow.store(), until);
                match tokio::time::timeout(every, renewal).await {
                    Ok(Ok(_)) => self.health.ok("lease renewal"),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "could not renew leases");
                        self.health.failed("lease renewal", &e);
                    }
                    Err(_) => {
                        tracing::error!("renewing leases took longer than one renewal interval");
                        self.health
                            .failed("lease renewal", "renewing leases timed out");
                    }
                }
            }
            self.health.stopped("lease renewal");
        };
        let github = async {
            if let Some(gh) = &self.github {
                gh.processor
                    .run(self.clock.clone(), tick, stop.clone(), self.health.clone())
                    .await;
            }
        };
        let gateway = self.discord.lock().ok().and_then(|mut g| g.take());
        let discord = async {
            if let Some(gateway) = gateway {
                gateway.run(stop.clone()).await;
            }
        };
        let reconcile = async {
            if let Some(r) = self.github.as_ref().and_then(|g| g.reconciler.as_ref()) {
                r.run(
                    self.clock.clone(),
                    self.holder.clone(),
                    stop.clone(),
                    self.health.clone(),
                )
                .await;
            }
        };
        tokio::join!(jobs, outbox, heartbeat, github, reconcile, discord);
    }
}

/// Options for `changebot serve`.
pub struct ServeOptions {
    pub console: bool,
    pub person: Option<String>,
    /// Listen here instead of `[server] bind`.
    pub bind: Option<String>,
    /// The console answers in JSON, as `changebot chat --json` does.
    pub json: bool,
}

/// Runs the bot until SIGINT/SIGTERM (or, with `--console`, until stdin ends).
pub async fn serve(config: Config, options: ServeOptions) -> anyhow::Result<()> {
    // A surface that is off is said once, in its start-up line below.
    for warning in config
        .warnings
        .iter()
        .filter(|w| !config.surface_warnings.contains(w))
    {
        tracing::warn!("{warning}");
    }
    let sink = Arc::new(LogSink::default());
    let notices = options.console.then(|| sink.subscribe());
    let app = App::build_with(config, Arc::new(SystemClock), sink).await?;
    app.workflow
        .store()
        .check_integrity()
        .await
        .context("checking the database at start (restore it from a backup, or point [database] url at a healthy one)")?;

    // Who the console acts as is checked before anything starts.
    let console_actor = if options.console {
        let person = options
            .person
            .clone()
            .or_else(|| app.config.console.person.clone())
            .context("--console needs --as PERSON or [console] person in config")?;
        let actor = Actor::acting_as(&app.config.org, &person, Surface::Console)
            .map_err(anyhow::Error::msg)?;
        Some((person, actor))
    } else {
        None
    };
    let bind = options
        .bind
        .clone()
        .unwrap_or_else(|| app.config.server.bind.clone());
    let listener = match TcpListener::bind(&bind).await {
        Ok(listener) => Some(listener),
        // Beside another `serve`: the console works on the same database without HTTP (the
        // claims keep the two processes from doing the same work twice).
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && options.console => None,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "{bind} is already in use, most likely by another changebot serve. Stop it, give \
             this one another address with --bind ADDR (or [server] bind), or use \
             `changebot chat --as NAME …` or `serve --console` beside it"
        ),
        Err(e) => return Err(e).with_context(|| format!("binding {bind}")),
    };
    let http = match &listener {
        Some(l) => startup::Http::Listening(l.local_addr()?),
        None => startup::Http::Busy,
    };
    let is_set = |name: &str| app.config.secret(Some(name)).is_some();
    let facts = startup::Facts {
        http,
        console: console_actor.as_ref().map(|(p, _)| p.as_str()),
        is_set: &is_set,
    };
    for line in startup::report(&app.config, &facts) {
        match line.level {
            startup::Level::Info => tracing::info!("{}", line.text),
            startup::Level::Warn => tracing::warn!("{}", line.text),
        }
    }
    tracing::info!(database = %redact(&app.config.database.url), "changebot ready");

    let server = async {
        match listener {
            Some(listener) => {
                let router = http::router(app.http_state());
                let limits = app.config.server.limits.clone();
                crate::http_server::run(listener, router, limits, shutdown_signal()).await;
            }
            None => shutdown_signal().await,
        }
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let background = app.run_background(stop_rx);
    tokio::pin!(background);
    if let Some((_, actor)) = console_actor {
        let prompt = std::io::stdin().is_terminal();
        let console = crate::console::run(
            app.workflow.clone(),
            app.clock.clone(),
            actor,
            tokio::io::stdin(),
            tokio::io::stdout(),
            crate::console::Style {
                prompt,
                json: options.json,
            },
            notices,
        );
        tokio::select! {
            () = server => {}
            r = console => r.context("console failed")?,
            () = &mut background => {}
        }
    } else {
        tokio::select! {
            () = server => {}
            () = &mut background => {}
        }
    }
    // Finish the background round in progress so its deliveries are recorded.
    let _ = stop.send(true);
    background.await;
    tracing::info!("changebot stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// A database URL without its password (in the user info or a `password=` parameter), for logs.
pub fn redact(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    if let Some((base, query)) = out.clone().split_once('?') {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}?{}", params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact("postgres://bob:hunter2@db/x"),
            "postgres://bob:***@db/x"
        );
        assert_eq!(
            redact("postgres://db/x?user=bob&password=hunter2"),
            "postgres://db/x?user=bob&password=***"
        );
        assert_eq!(
            redact("sqlite://data/changebot.db"),
            "sqlite://data/changebot.db"
        );
    }
}
