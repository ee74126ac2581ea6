//! Discord through serenity: slash commands and buttons run the chat grammar through the
//! workflow; notices and change cards are posted to the channels `[discord].channels` maps.
//!
//! - `commands`: the slash-command definitions, derived from `chat::spec`.
//! - `interactions`: slash commands, buttons, the reject modal, autocomplete.
//! - `gateway`: the gateway connection, held by one process at a time (a database lease).
//! - `sink`: posting through REST (any process may post; only the holder listens).
//! - `card`: a change card as an embed with Approve and Reject buttons.
//!
//! With `[discord] api_url`, REST goes through that proxy (twilight-http-proxy or alike) with
//! serenity's own rate limiter off (serenity's limiter would bypass the proxy): the proxy rate
//! limits, and a 429 it passes back is retried from the outbox.

pub mod card;
pub mod commands;
pub mod gateway;
pub mod interactions;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use serenity::all::{ChannelId, GuildId};
use serenity::http::{Http, HttpBuilder};

use crate::clock::Clock;
use crate::config::Config;
use crate::holder::Holder;
use crate::notify::ChatSink;
use crate::workflow::Workflow;

/// serenity's REST client: through `api_url` when set (its rate limiter off), else straight to
/// Discord.
pub fn build_http(token: &str, api_url: Option<&str>) -> Http {
    // A hung call must not hold its outbox lane; nobody is ever pinged by what changebot
    // posts (titles are anyone's text).
    let mut builder = HttpBuilder::new(token)
        .default_allowed_mentions(serenity::all::CreateAllowedMentions::new());
    if let Ok(client) = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()
    {
        builder = builder.client(client);
    }
    match api_url {
        Some(url) => builder
            .proxy(url.trim_end_matches('/'))
            .ratelimiter_disabled(true)
            .build(),
        None => builder.build(),
    }
}

/// Discord's running parts, when `[discord]` has a token.
pub struct Discord {
    pub sink: Arc<dyn ChatSink>,
    pub gateway: gateway::Gateway,
}

/// Reads `[discord]`: `Ok(None)` (with one log line saying why) when Discord is off.
pub fn from_config(
    config: &Config,
    inner: Arc<dyn ChatSink>,
    workflow: &Workflow,
    clock: &Arc<dyn Clock>,
    holder: &Holder,
) -> anyhow::Result<Option<Discord>> {
    let Some(d) = &config.discord else {
        tracing::debug!("discord: off (no [discord] section)");
        return Ok(None);
    };
    let Some(token) = config
        .secret(d.token_env.as_deref())
        .filter(|t| !t.trim().is_empty())
    else {
        // check-config's warning at start already says so, once.
        tracing::debug!(
            token_env = d.token_env.as_deref().unwrap_or("(not set)"),
            "discord: off (no bot token in the environment); everything else runs"
        );
        return Ok(None);
    };
    let mut channels = BTreeMap::new();
    for (name, id) in &d.channels {
        let id: u64 = id
            .parse()
            .ok()
            .filter(|n| *n != 0)
            .with_context(|| format!("discord: channel {name} = `{id}` is not a channel id"))?;
        channels.insert(name.clone(), ChannelId::new(id));
    }
    let guild = match &d.guild_id {
        Some(g) => Some(GuildId::new(
            g.parse()
                .ok()
                .filter(|n| *n != 0)
                .with_context(|| format!("discord: guild_id `{g}` is not a guild id"))?,
        )),
        None => None,
    };
    let rest = sink::Rest::new(&token, d.api_url.as_deref());
    let sink = Arc::new(sink::DiscordSink::new(inner, rest, channels));
    let scheduler = &config.scheduler;
    Ok(Some(Discord {
        sink,
        gateway: gateway::Gateway {
            shared: interactions::Shared {
                workflow: workflow.clone(),
                clock: clock.clone(),
            },
            token,
            api_url: d.api_url.clone(),
            guild,
            holder: holder.clone(),
            lease: scheduler.lease,
            renew: scheduler.renew_every(),
        },
    }))
}
