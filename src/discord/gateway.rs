//! The Discord gateway connection: exactly one process holds it at a time (the lease
//! `discord-gateway` in the database, renewed like other claims); another takes it over once
//! the holder stops renewing. The holder runs serenity's client, registers the slash commands
//! in bulk when it is ready, and hands interactions to `interactions`.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{
    Command as SlashCommand, Context, EventHandler, GatewayIntents, GuildId, Interaction, Ready,
};

use super::interactions::Shared;
use crate::holder::Holder;

/// The lease's name.
pub const LEASE: &str = "discord-gateway";

struct Handler {
    shared: Shared,
    guild: Option<GuildId>,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        // Registered in bulk; retried with backoff (behind a proxy a 429 or 5xx comes back).
        let defs = super::commands::definitions(&self.shared.workflow.config().org);
        let count = defs.len();
        let guild = self.guild;
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_secs(1);
            for attempt in 1..=6 {
                let registered = match guild {
                    Some(guild) => guild
                        .set_commands(&ctx.http, defs.clone())
                        .await
                        .map(|_| ()),
                    None => SlashCommand::set_global_commands(&ctx.http, defs.clone())
                        .await
                        .map(|_| ()),
                };
                match registered {
                    Ok(()) => {
                        tracing::info!(
                            user = %ready.user.name,
                            commands = count,
                            scope = if guild.is_some() { "guild" } else { "global" },
                            "discord: connected; slash commands registered"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!(
                        attempt,
                        error = %super::sink::describe(&e),
                        "discord: could not register the slash commands; retrying"
                    ),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(60));
            }
            tracing::error!(
                "discord: gave up registering the slash commands until the next connection"
            );
        });
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        self.shared.handle(&ctx, interaction).await;
    }
}

/// A running client: shut down when dropped (the lease lost, a stop, or the task holding it
/// ended).
struct Running {
    manager: Arc<serenity::gateway::ShardManager>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let manager = self.manager.clone();
        self.task.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { manager.shutdown_all().await });
        }
    }
}

/// Holds the gateway while this process has the lease.
pub struct Gateway {
    pub shared: Shared,
    pub token: String,
    /// The REST proxy (`[discord] api_url`), if any.
    pub api_url: Option<String>,
    pub guild: Option<GuildId>,
    pub holder: Holder,
    /// How long the lease lasts without renewal, and how often it is renewed.
    pub lease: chrono::Duration,
    pub renew: std::time::Duration,
}

impl Gateway {
    /// Runs until `stop` turns true: waits for the lease, connects, renews; lets go of the
    /// connection as soon as the lease is lost, and of the lease on a clean stop.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let store = self.shared.workflow.store().clone();
        let me = self.holder.instance().to_string();
        let mut running: Option<Running> = None;
        // Until when the lease is surely ours (the last renewal that went through): a failed
        // renewal alone does not drop the connection, only the lease running out does.
        let mut held_until: Option<chrono::DateTime<chrono::Utc>> = None;
        while !*stop.borrow() {
            let now = self.shared.clock.now();
            let until = now + self.lease;
            let renewal =
                tokio::time::timeout(self.renew, store.take_lease(LEASE, &me, now, until));
            match renewal.await {
                Ok(Ok(true)) => held_until = Some(until),
                Ok(Ok(false)) => held_until = None,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "discord: could not renew the gateway lease");
                }
                Err(_) => tracing::warn!("discord: renewing the gateway lease timed out"),
            }
            let held = held_until.is_some_and(|t| self.shared.clock.now() < t);
            tracing::debug!(holder = %me, held, running = running.is_some(), "discord: gateway lease round");
            // A client whose connection ended for good (serenity gave up) is replaced.
            if running.as_ref().is_some_and(|r| r.task.is_finished()) {
                tracing::warn!("discord: the gateway connection ended; reconnecting");
                running = None;
            }
            match (&running, held) {
                (None, true) => match self.connect().await {
                    Ok(client) => {
                        tracing::info!(holder = %me, "discord: this process holds the gateway");
                        running = Some(client);
                    }
                    Err(e) => tracing::error!(
                        error = %super::sink::describe(&e),
                        "discord: cannot start the client"
                    ),
                },
                (Some(_), false) => {
                    tracing::warn!("discord: the gateway lease was lost; disconnecting");
                    running = None;
                }
                _ => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.renew) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break; // whoever could stop it is gone: stop
                    }
                }
            }
        }
        if let Some(client) = running.take() {
            let closing = client.manager.shutdown_all();
            if tokio::time::timeout(std::time::Duration::from_secs(5), closing)
                .await
                .is_err()
            {
                tracing::warn!("discord: the gateway did not close within 5 s; leaving it");
            }
            drop(client);
            if let Err(e) = store.release_lease(LEASE, &me).await {
                tracing::warn!(error = %e, "discord: could not release the gateway lease");
            }
        }
    }

    async fn connect(&self) -> serenity::Result<Running> {
        let http = super::build_http(&self.token, self.api_url.as_deref());
        let mut client = serenity::all::ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
            .event_handler(Handler {
                shared: self.shared.clone(),
                guild: self.guild,
            })
            .await?;
        let manager = client.shard_manager.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = client.start().await {
                tracing::error!(error = %e, "discord: the gateway connection ended");
            }
        });
        Ok(Running { manager, task })
    }
}
