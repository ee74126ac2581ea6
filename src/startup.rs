//! What `serve` says when it starts: one line per surface (what is on, what is off and why),
//! a warning when `public_url` and the address the server listens on disagree, and where to
//! go next. Everything here is worked out from the config, the environment (only whether a
//! secret is set, never its value) and the bound address, so it is tested without a server.

use std::net::{IpAddr, SocketAddr};

use crate::config::Config;

/// How loud a start-up line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    /// Something configured does not work (a secret it names is unset), or addresses disagree.
    Warn,
}

/// One start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub level: Level,
    pub text: String,
}

impl Line {
    fn info(text: impl Into<String>) -> Line {
        Line {
            level: Level::Info,
            text: text.into(),
        }
    }

    fn warn(text: impl Into<String>) -> Line {
        Line {
            level: Level::Warn,
            text: text.into(),
        }
    }
}

/// The HTTP server as `serve` got it.
#[derive(Debug, Clone, Copy)]
pub enum Http {
    /// Listening on this address.
    Listening(SocketAddr),
    /// `[server] bind` was taken (most likely by another `serve`); a console runs without it.
    Busy,
}

/// What start-up knows besides the config.
pub struct Facts<'a> {
    pub http: Http,
    /// Who the console acts as, when `--console` is on.
    pub console: Option<&'a str>,
    /// Whether an environment variable holds a value.
    pub is_set: &'a dyn Fn(&str) -> bool,
}

impl Facts<'_> {
    /// `Some(name)` when config names an env var and it is unset (a surface that was meant to
    /// be on); `None` when it is set or not named.
    fn unset<'n>(&self, name: Option<&'n str>) -> Option<&'n str> {
        name.filter(|n| !(self.is_set)(n))
    }

    fn holds(&self, name: Option<&str>) -> bool {
        name.is_some_and(|n| (self.is_set)(n))
    }
}

/// The start-up report: one line per surface, the address check, then where to go next.
pub fn report(config: &Config, facts: &Facts<'_>) -> Vec<Line> {
    let mut lines = surfaces(config, facts);
    if let Http::Listening(addr) = facts.http
        && let Some(why) = address_disagreement(&config.server.public_url, addr)
    {
        lines.push(Line::warn(why));
    }
    lines.extend(next_steps(config, facts).into_iter().map(Line::info));
    lines
}

fn base(config: &Config) -> &str {
    config.server.public_url.trim_end_matches('/')
}

fn api_on(config: &Config, facts: &Facts<'_>) -> bool {
    facts.holds(config.api.token_env.as_deref())
        || facts.holds(config.api.read_token_env.as_deref())
}

/// One line per surface: http, api, web, github, discord, deployments, scheduler, console.
pub fn surfaces(config: &Config, facts: &Facts<'_>) -> Vec<Line> {
    let mut lines = Vec::new();
    let reachable = reachable_base(config, facts);
    let base = reachable.as_str();
    let http_on = match facts.http {
        Http::Listening(addr) => {
            lines.push(Line::info(format!(
                "http: on, listening on {addr} (/healthz, /readyz, /metrics)"
            )));
            true
        }
        Http::Busy => {
            lines.push(Line::warn(format!(
                "http: off, {} is already in use (most likely by another changebot serve); \
                 this console works beside it on the same database. For a server of its own, \
                 start it with --bind 127.0.0.1:0",
                config.server.bind
            )));
            false
        }
    };

    // The API and the web view share their tokens.
    let api = &config.api;
    let api_line = if !http_on {
        Line::info("api: off here (no HTTP server in this process)")
    } else if api_on(config, facts) {
        let mut tokens = Vec::new();
        if let Some(n) = api.token_env.as_deref().filter(|n| (facts.is_set)(n)) {
            tokens.push(format!("the API token from {n}"));
        }
        if let Some(n) = api.read_token_env.as_deref().filter(|n| (facts.is_set)(n)) {
            tokens.push(format!("the read-only token from {n}"));
        }
        let on = format!("api: on, {base}/api/* with {}", tokens.join(" or "));
        match facts.unset(api.read_token_env.as_deref()) {
            Some(n) => Line::warn(format!("{on}; no read-only token ({n} is not set)")),
            None => Line::info(on),
        }
    } else if let Some(n) = facts.unset(api.token_env.as_deref()) {
        Line::warn(format!("api: off, {n} is not set"))
    } else if let Some(n) = facts.unset(api.read_token_env.as_deref()) {
        Line::warn(format!("api: off, {n} is not set"))
    } else {
        Line::info("api: off, [api] names no token_env")
    };
    lines.push(api_line);
    lines.push(if http_on && api_on(config, facts) {
        Line::info(format!(
            "web: on, {base}/ (sign in with the API or read-only token)"
        ))
    } else if http_on {
        Line::info("web: off, it needs the API token or the read-only token (see api)")
    } else {
        Line::info("web: off here (no HTTP server in this process)")
    });

    lines.push(github(config, facts, http_on));
    lines.push(discord(config, facts));
    lines.push(deployments(config, facts, http_on));

    let announcements = config.announcements.len();
    lines.push(Line::info(format!(
        "scheduler: on, every {}s; {announcements} announcement{}",
        config.scheduler.tick.num_seconds().max(1),
        if announcements == 1 { "" } else { "s" }
    )));
    lines.push(match facts.console {
        Some(person) => Line::info(format!("console: on, as {person}")),
        None => Line::info(
            "console: off (serve --console for one here, or changebot chat --as NAME … beside this server)",
        ),
    });
    lines
}

fn github(config: &Config, facts: &Facts<'_>, http_on: bool) -> Line {
    let Some(gh) = &config.github else {
        return Line::info("github: off, no [github] section");
    };
    let base = base(config);
    let webhook = if !http_on {
        Err("the webhook is the other server's".to_string())
    } else if facts.holds(gh.webhook_secret_env.as_deref()) {
        Ok(format!("webhook at {base}/webhooks/github"))
    } else {
        match gh.webhook_secret_env.as_deref() {
            Some(n) => Err(format!("no webhook ({n} is not set)")),
            None => Err("no webhook (no webhook_secret_env)".to_string()),
        }
    };
    let app = gh
        .app_id
        .filter(|_| facts.holds(gh.private_key_env.as_deref()));
    let client = match (app, facts.holds(gh.token_env.as_deref())) {
        (Some(id), _) => Ok(format!("replies as GitHub App {id}")),
        (None, true) => Ok("replies with the token".to_string()),
        (None, false) => {
            let missing: Vec<&str> = [gh.token_env.as_deref(), gh.private_key_env.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            Err(if missing.is_empty() {
                "no replies (no token_env or app_id + private_key_env)".to_string()
            } else {
                format!("no replies ({} is not set)", missing.join(" / "))
            })
        }
    };
    if !http_on {
        // Beside another server: only this process's own part (replies) is worth a word.
        return match client {
            Ok(c) => Line::info(format!(
                "github: on, {c}; the webhook is the other server's"
            )),
            Err(c) => Line::info(format!(
                "github: off here, {c}; the webhook is the other server's"
            )),
        };
    }
    match (webhook, client) {
        (Ok(w), Ok(c)) => Line::info(format!("github: on, {w}; {c}")),
        (Ok(w), Err(c)) => Line::warn(format!("github: partly on, {w}; {c}")),
        (Err(w), Ok(c)) => Line::warn(format!("github: partly on, {c}; {w}")),
        (Err(w), Err(c)) => Line::warn(format!("github: off, {w}; {c}")),
    }
}

fn discord(config: &Config, facts: &Facts<'_>) -> Line {
    let Some(d) = &config.discord else {
        return Line::info("discord: off, no [discord] section");
    };
    if facts.holds(d.token_env.as_deref()) {
        let names: Vec<&str> = d.channels.keys().map(String::as_str).collect();
        let channels = if names.is_empty() {
            "no channels".to_string()
        } else {
            format!("channels {}", names.join(", "))
        };
        return Line::info(format!("discord: on, slash commands and {channels}"));
    }
    match d.token_env.as_deref() {
        Some(n) => Line::warn(format!("discord: off, {n} is not set")),
        None => Line::info("discord: off, [discord] names no token_env"),
    }
}

fn deployments(config: &Config, facts: &Facts<'_>, http_on: bool) -> Line {
    let (mut live, mut dry, mut actions, mut signed) = (0, 0, 0, 0);
    for service in config.org.services.values() {
        for target in service.deploy.values() {
            if target.github_actions {
                actions += 1;
            } else if target.url.is_some() {
                live += 1;
            } else {
                dry += 1;
            }
            if target.url.is_some() && facts.holds(target.secret_env.as_deref()) {
                signed += 1;
            }
        }
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (live, "calling a deployment webhook"),
        (actions, "through GitHub Actions"),
        (dry, "dry runs (no url)"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let total = live + actions + dry;
    if parts.is_empty() {
        return Line::info("deployments: off, no service has a deploy target");
    }
    let callbacks = if signed == 0 {
        String::new()
    } else if http_on {
        format!("; callbacks at {}/webhooks/deployments/DEP-N", base(config))
    } else {
        "; callbacks go to the other server".to_string()
    };
    let targets = if total == 1 { "target" } else { "targets" };
    Line::info(format!(
        "deployments: {total} {targets}: {}{callbacks}",
        parts.join(", ")
    ))
}

/// Where to go next, for a person who just started `serve`.
pub fn next_steps(config: &Config, facts: &Facts<'_>) -> Vec<String> {
    let mut steps = Vec::new();
    match facts.console {
        Some(_) => steps.push("next: type `help` in the console to see the commands".to_string()),
        None => {
            let person = config
                .console
                .person
                .clone()
                .or_else(|| config.org.people.keys().next().cloned())
                .unwrap_or_else(|| "NAME".to_string());
            steps.push(format!(
                "next: in another terminal, `changebot chat --as {person} help` (or run serve --console)"
            ));
        }
    }
    let http_on = matches!(facts.http, Http::Listening(_));
    if http_on && api_on(config, facts) {
        let base = reachable_base(config, facts);
        steps.push(format!(
            "next: open {base}/ in a browser for the change calendar"
        ));
        let env = config
            .api
            .token_env
            .as_deref()
            .filter(|n| (facts.is_set)(n))
            .or(config.api.read_token_env.as_deref())
            .unwrap_or("TOKEN");
        steps.push(format!(
            "next: curl -H \"Authorization: Bearer ${env}\" {base}/api/changes"
        ));
    } else if http_on && let Some(n) = config.api.token_env.as_deref() {
        steps.push(format!(
            "next: set {n} and restart for the API and the web view"
        ));
    }
    steps
}

/// Where a person on this machine reaches the server now: `public_url`, unless it leads
/// elsewhere (then the address it listens on).
fn reachable_base(config: &Config, facts: &Facts<'_>) -> String {
    match facts.http {
        Http::Listening(addr)
            if address_disagreement(&config.server.public_url, addr).is_some() =>
        {
            local_url(addr)
        }
        _ => base(config).to_string(),
    }
}

/// `http://ADDR` for a listening address, with a wildcard address shown as loopback.
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Whether `public_url` (what others are told to call) can reach the server listening on
/// `bound`; `Some` says how they disagree. A public name on a loopback bind is normal behind a
/// reverse proxy on the same host, and is not flagged.
pub fn address_disagreement(public_url: &str, bound: SocketAddr) -> Option<String> {
    let url = reqwest::Url::parse(public_url).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let public_ip: Option<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
        Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    } else {
        host.parse().ok()
    };
    let public_loopback = public_ip.is_some_and(|ip| ip.is_loopback());
    let bound_ip = bound.ip();
    if public_loopback && !bound_ip.is_loopback() {
        let port_too = if port == bound.port() {
            String::new()
        } else {
            format!(" (and on port {}, not {port})", bound.port())
        };
        return Some(format!(
            "public_url {public_url} points at this machine only, but the server listens on \
             {bound} for other machines{port_too}: GitHub, Discord and deployment targets would \
             be given callback URLs they cannot reach; set [server] public_url to the address \
             they use"
        ));
    }
    if let Some(ip) = public_ip
        && !bound_ip.is_unspecified()
        && (ip != bound_ip || port != bound.port())
        && !(ip.is_loopback() && bound_ip.is_loopback() && port == bound.port())
    {
        return Some(format!(
            "public_url {public_url} and the address the server listens on ({bound}) disagree: \
             callbacks and links sent to {public_url} will not reach this server unless a proxy \
             forwards them; make [server] public_url and the listening address ([server] bind or --bind) agree"
        ));
    }
    if public_ip.is_some() && bound_ip.is_unspecified() && port != bound.port() {
        return Some(format!(
            "public_url {public_url} uses port {port}, but the server listens on port {}: \
             callbacks will not reach it unless a proxy forwards them",
            bound.port()
        ));
    }
    None
}

#[cfg(test)]
mod tests;
