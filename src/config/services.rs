//! `[[service]]`: repos, owners, environments, windows and deployment targets.

use std::collections::BTreeMap;

use chrono::Duration;

use crate::domain::calendar::Window;
use crate::domain::organisation::{DeployTarget, Service};

use super::people::{People, check_name};
use super::raw::{RawDeploy, RawService, Text};
use super::read::{self, Section};
use super::report::{Ctx, is_word};
use super::schedule::{duration, timezone};
use super::settings::{Channels, env_name, http_url};

pub const DEFAULT_CHANGE_DURATION: i64 = 30; // minutes
pub const DEFAULT_DEPLOY_TIMEOUT: i64 = 15; // minutes

/// What services may refer to.
pub struct Known<'a> {
    pub people: &'a People,
    /// Valid windows (to check durations against).
    pub windows: &'a BTreeMap<String, Window>,
    /// Every window name written, valid or not (to check references against).
    pub window_names: &'a read::Declared,
    pub channels: &'a Channels,
}

/// The services written (valid or not) and their environments, for references to them.
pub struct Declared {
    pub names: read::Declared,
    /// Service → environments.
    pub environments: BTreeMap<String, Vec<String>>,
}

impl Declared {
    pub fn of(raw: &Section<RawService>) -> Self {
        let mut environments: BTreeMap<String, Vec<String>> = raw
            .broken
            .iter()
            .filter_map(|b| Some((b.name.clone()?, b.list("environments").to_vec())))
            .collect();
        for s in &raw.entries {
            let envs = s.environments.get_ref().iter().map(|e| e.get_ref().clone());
            environments
                .entry(s.name.get_ref().clone())
                .or_default()
                .extend(envs);
        }
        Declared {
            names: read::Declared::of(raw, |s| s.name.get_ref()),
            environments,
        }
    }
}

pub fn build(
    ctx: &mut Ctx<'_>,
    raw: &Section<RawService>,
    known: &Known<'_>,
) -> BTreeMap<String, Service> {
    let mut out = BTreeMap::new();
    let mut seen = BTreeMap::new();
    // Lower-cased repo → the service it maps to.
    let mut repo_owner: BTreeMap<String, String> = BTreeMap::new();
    for s in &raw.entries {
        let keep = check_name(ctx, "service", &s.name, &mut seen);
        let name = s.name.get_ref();
        let label = format!("service {name}");

        let mut repos = Vec::new();
        for r in &s.repos {
            let repo = r.get_ref();
            let well_formed = repo
                .split_once('/')
                .is_some_and(|(o, n)| is_word(o) && is_word(n) && !n.contains('/'));
            if !well_formed {
                ctx.error_at(r, format!("{label}: repo `{repo}` is not owner/name"));
            } else if let Some(other) = repo_owner.insert(repo.to_ascii_lowercase(), name.clone()) {
                ctx.error_at(
                    r,
                    format!("{label}: repo {repo} is already mapped to service {other}"),
                );
            } else {
                repos.push(repo.clone());
            }
        }

        known
            .people
            .check_group(ctx, &s.owners, &format!("{label}: owners"));

        let environments = environments(ctx, &label, s);
        for w in &s.windows {
            if !known.window_names.resolves(w.get_ref()) {
                ctx.error_at(
                    w,
                    format!("{label}: window `{}` is not a [[window]]", w.get_ref()),
                );
            }
        }
        if s.windows.is_empty() {
            ctx.warn(format!(
                "{label}: no windows; only emergency changes can be scheduled for it"
            ));
        }
        if let Some(c) = &s.channel {
            known.channels.check(ctx, c, &label);
        }
        let tz = timezone(ctx, &label, s.timezone.as_ref());
        let change_duration = match &s.change_duration {
            Some(d) => duration(ctx, &label, "change_duration", d),
            None => Some(Duration::minutes(DEFAULT_CHANGE_DURATION)),
        };
        if let Some(d) = change_duration {
            check_fits(ctx, &label, s, d, known);
        }

        let mut deploy = BTreeMap::new();
        for (env, target) in &s.deploy {
            if !environments.contains(env.get_ref()) {
                ctx.error_at(
                    env,
                    format!(
                        "{label}: deploy.{e}: `{e}` is not one of its environments ({})",
                        if environments.is_empty() {
                            "none".to_string()
                        } else {
                            environments.join(", ")
                        },
                        e = env.get_ref()
                    ),
                );
            }
            let dlabel = format!("{label}: deploy.{}", env.get_ref());
            if let Some(t) = deploy_target(ctx, &dlabel, target) {
                deploy.insert(env.get_ref().clone(), t);
            }
        }
        // Every environment has a target: those not configured are dry runs.
        for env in &environments {
            deploy.entry(env.clone()).or_insert_with(|| DeployTarget {
                url: None,
                secret_env: None,
                timeout: Duration::minutes(DEFAULT_DEPLOY_TIMEOUT),
                github_actions: false,
            });
        }

        if let (true, Some(timezone), Some(change_duration)) = (keep, tz, change_duration) {
            out.insert(
                name.clone(),
                Service {
                    name: name.clone(),
                    repos,
                    owners: s.owners.get_ref().clone(),
                    environments,
                    windows: s.windows.iter().map(|w| w.get_ref().clone()).collect(),
                    channel: s.channel.as_ref().map(|c| c.get_ref().clone()),
                    timezone,
                    change_duration,
                    deploy,
                },
            );
        }
    }
    out
}

fn environments(ctx: &mut Ctx<'_>, label: &str, s: &RawService) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if s.environments.get_ref().is_empty() {
        ctx.error_at(
            &s.environments,
            format!("{label}: environments must list at least one"),
        );
    }
    for e in s.environments.get_ref() {
        let env = e.get_ref();
        if !is_word(env) {
            ctx.error_at(
                e,
                format!("{label}: environment `{env}` must be a single word"),
            );
        } else if out.contains(env) {
            ctx.error_at(e, format!("{label}: environment {env} is listed twice"));
        } else {
            out.push(env.clone());
        }
    }
    out
}

/// A change of the service's default duration must fit inside at least one of its windows.
fn check_fits(ctx: &mut Ctx<'_>, label: &str, s: &RawService, d: Duration, known: &Known<'_>) {
    let windows: Vec<&Window> = s
        .windows
        .iter()
        .filter_map(|w| known.windows.get(w.get_ref()))
        .collect();
    if windows.is_empty() || windows.iter().any(|w| w.recurrence.duration >= d) {
        return;
    }
    let at: &Text = s.change_duration.as_ref().unwrap_or(&s.name);
    ctx.error_at(
        at,
        format!(
            "{label}: change_duration ({} min) is longer than every window it may deploy in; \
             no change could ever be booked",
            d.num_minutes()
        ),
    );
}

fn deploy_target(ctx: &mut Ctx<'_>, label: &str, raw: &RawDeploy) -> Option<DeployTarget> {
    let url = http_url(ctx, &format!("{label}: url"), &raw.url);
    let secret_env = env_name(ctx, &format!("{label}: secret_env"), &raw.secret_env);
    if let (Some(u), None) = (&raw.url, &raw.secret_env) {
        ctx.error_at(
            u,
            format!(
                "{label} has a url but no secret_env (the environment variable holding the \
                 HMAC secret its requests are signed with)"
            ),
        );
    }
    if let (Some(_), Some(name), Some(at)) = (&raw.url, &secret_env, &raw.secret_env)
        && ctx.env_var(name).is_none()
    {
        ctx.error_at(
            at,
            format!("{label}: secret env var {name} is not set (needed to sign deployment calls)"),
        );
    }
    let timeout = match &raw.timeout {
        Some(t) => duration(ctx, label, "timeout", t)?,
        None => Duration::minutes(DEFAULT_DEPLOY_TIMEOUT),
    };
    let github_actions = raw.github_actions.as_ref().is_some_and(|g| *g.get_ref());
    if let (true, Some(u)) = (github_actions, &raw.url) {
        ctx.error_at(
            u,
            format!(
                "{label} has both a url and github_actions = true: a GitHub Actions workflow \
                 deploys it, so changebot calls no webhook (remove one)"
            ),
        );
    }
    Some(DeployTarget {
        url,
        secret_env,
        timeout,
        github_actions,
    })
}
