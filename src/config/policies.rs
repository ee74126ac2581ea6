//! `[[policy]]`: which changes a policy matches and whose approvals it needs.

use std::collections::BTreeMap;
use std::str::FromStr;

use toml::Spanned;

use crate::domain::change::{ChangeType, Risk};
use crate::domain::organisation::{Organisation, Service};
use crate::domain::policy::{OWNERS, Policy, PolicyMatch, Requirement, reachable};

use super::people::{People, check_name};
use super::raw::{OneOrMany, RawPolicy, RawRequirement};
use super::read::Section;
use super::report::Ctx;
use super::services::Declared;

pub fn build(
    ctx: &mut Ctx<'_>,
    raw: &Section<RawPolicy>,
    people: &People,
    services: &BTreeMap<String, Service>,
    declared: &Declared,
) -> Vec<Policy> {
    let mut out: Vec<Policy> = Vec::new();
    let mut seen = BTreeMap::new();
    for p in &raw.entries {
        let keep = check_name(ctx, "policy", &p.name, &mut seen);
        let label = format!("policy {}", p.name.get_ref());
        let w = &p.when;
        let types = words::<ChangeType>(ctx, &label, "when.type", w.kind.as_ref());
        let risks = words::<Risk>(ctx, &label, "when.risk", w.risk.as_ref());
        let when_services = list(w.service.as_ref());
        let environments = list(w.environment.as_ref());
        if let Some(at) = &w.service {
            for s in &when_services {
                if !declared.names.resolves(s) {
                    ctx.error_at(
                        at,
                        format!("{label}: when.service `{s}` is not a [[service]]"),
                    );
                }
            }
        }
        if let (Some(at), true) = (&w.environment, declared.names.complete) {
            let in_scope = |s: &String| when_services.is_empty() || when_services.contains(s);
            for e in &environments {
                let known = declared
                    .environments
                    .iter()
                    .any(|(s, envs)| in_scope(s) && envs.contains(e));
                if !known {
                    let whose = if when_services.is_empty() {
                        "any service"
                    } else {
                        "the services it names"
                    };
                    ctx.error_at(
                        at,
                        format!("{label}: when.environment `{e}` is not an environment of {whose}"),
                    );
                }
            }
        }
        let scope = Scope {
            services,
            when_services: &when_services,
            services_complete: declared.names.complete,
        };
        let require = p
            .require
            .iter()
            .filter_map(|r| requirement(ctx, &label, r, people, &scope))
            .collect();
        let policy = Policy {
            name: p.name.get_ref().clone(),
            when: PolicyMatch {
                types,
                risks,
                services: when_services,
                environments,
            },
            require,
            reset_on_push: p.reset_on_push.unwrap_or(true),
            checks: checks(ctx, &label, &p.checks),
        };
        if let Some(earlier) = out.iter().find(|e| shadows(&e.when, &policy.when)) {
            ctx.warn(format!(
                "{label} can never apply: policy {} before it matches every change it would",
                earlier.name
            ));
        }
        if keep {
            out.push(policy);
        }
    }
    out
}

/// A policy's `checks`: names of check runs or commit statuses, each once.
fn checks(ctx: &mut Ctx<'_>, label: &str, raw: &[Spanned<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in raw {
        let text = name.get_ref().trim();
        if text.is_empty() || text.chars().any(char::is_control) || text.chars().count() > 200 {
            ctx.error_at(
                name,
                format!(
                    "{label}: checks: `{}` is not a check name (the name of a check run or the context of a commit status, 1 to 200 printable characters)",
                    text.escape_debug()
                ),
            );
        } else if text == crate::domain::effect::STATUS_CONTEXT {
            ctx.error_at(
                name,
                format!(
                    "{label}: checks: `{text}` is changebot's own status, which turns green only once the policy is met; it can never be evidence for it"
                ),
            );
        } else if out.iter().any(|c| c == text) {
            ctx.error_at(name, format!("{label}: checks: `{text}` is listed twice"));
        } else {
            out.push(text.to_string());
        }
    }
    out
}

/// The services a policy's `owners` requirement can stand for.
struct Scope<'a> {
    services: &'a BTreeMap<String, Service>,
    when_services: &'a [String],
    services_complete: bool,
}

fn requirement(
    ctx: &mut Ctx<'_>,
    label: &str,
    r: &RawRequirement,
    people: &People,
    scope: &Scope<'_>,
) -> Option<Requirement> {
    let group = r.group.get_ref();
    let count = r.count.as_ref().map_or(1, |c| *c.get_ref());
    let count = match u32::try_from(count) {
        Ok(c) if c >= 1 => c,
        _ => {
            let at = r.count.as_ref().map_or(r.group.span(), Spanned::span);
            ctx.error(
                Some(at),
                format!("{label}: group {group}: count must be at least 1"),
            );
            return None;
        }
    };
    let plural = |n: usize| if n == 1 { "member" } else { "members" };
    if group == OWNERS {
        if !people.complete || (scope.when_services.is_empty() && !scope.services_complete) {
            return Some(Requirement {
                group: group.clone(),
                count,
            });
        }
        for s in scope.services.values() {
            let in_scope = scope.when_services.is_empty() || scope.when_services.contains(&s.name);
            let members = people.member_count(&s.owners);
            if in_scope && people.group_exists(&s.owners) && members < count as usize {
                ctx.error_at(
                    &r.group,
                    format!(
                        "{label}: owners of {} ({}) needs {count} approval{} but has {members} {}",
                        s.name,
                        s.owners,
                        if count == 1 { "" } else { "s" },
                        plural(members)
                    ),
                );
            }
        }
    } else if people.check_group(ctx, &r.group, label) && people.complete {
        let members = people.member_count(group);
        if members < count as usize {
            ctx.error_at(
                &r.group,
                format!(
                    "{label}: {group} needs {count} approval{} but has {members} {}",
                    if count == 1 { "" } else { "s" },
                    plural(members)
                ),
            );
        }
    }
    Some(Requirement {
        group: group.clone(),
        count,
    })
}

fn list(v: Option<&Spanned<OneOrMany>>) -> Vec<String> {
    v.map(|l| l.get_ref().0.clone()).unwrap_or_default()
}

/// Parses each word of a `when` list (`type`, `risk`), reporting the ones that are not valid.
fn words<T>(ctx: &mut Ctx<'_>, label: &str, key: &str, v: Option<&Spanned<OneOrMany>>) -> Vec<T>
where
    T: FromStr + PartialEq,
    T::Err: std::fmt::Display,
{
    let mut out = Vec::new();
    let Some(at) = v else { return out };
    for word in &at.get_ref().0 {
        match word.parse::<T>() {
            Ok(t) if !out.contains(&t) => out.push(t),
            Ok(_) => {}
            Err(e) => ctx.error_at(at, format!("{label}: {key}: {e}")),
        }
    }
    out
}

/// Whether every change `later` matches is already matched by `earlier`.
fn shadows(earlier: &PolicyMatch, later: &PolicyMatch) -> bool {
    fn covers<T: PartialEq>(e: &[T], l: &[T]) -> bool {
        e.is_empty() || (!l.is_empty() && l.iter().all(|x| e.contains(x)))
    }
    covers(&earlier.types, &later.types)
        && covers(&earlier.risks, &later.risks)
        && covers(&earlier.services, &later.services)
        && covers(&earlier.environments, &later.environments)
}

/// Flags policies that can never be approved: an error when nobody at all could request an
/// approvable change (the groups lack distinct people for the seats), a warning naming the
/// people whose own requests could never be approved (the requester never counts, and one
/// person fills one seat). Runs on the finished organisation.
pub fn check_reachable(ctx: &mut Ctx<'_>, raw: &Section<RawPolicy>, org: &Organisation) {
    for policy in &org.policies {
        let needs: Vec<String> = policy
            .require
            .iter()
            .map(|r| format!("{} from {}", r.count, r.group))
            .collect();
        let needs = needs.join(", ");
        let scope: Vec<&str> = match policy.when.services.is_empty() {
            true => org.services.keys().map(String::as_str).collect(),
            false => policy.when.services.iter().map(String::as_str).collect(),
        };
        // Who is stuck → on which services.
        let mut stuck_on: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
        for service in scope {
            let (most, total) = reachable(org, policy, service, None);
            if most < total {
                let message = format!(
                    "policy {}: a {service} change can never be approved: it needs {total} approval{} from different people ({needs}) and only {most} such people exist",
                    policy.name,
                    plural(total),
                );
                match raw
                    .entries
                    .iter()
                    .find(|p| *p.name.get_ref() == policy.name)
                {
                    Some(p) => ctx.error_at(&p.name, message),
                    None => ctx.error(None, message),
                }
                continue;
            }
            let stuck: Vec<&str> = org
                .people
                .keys()
                .map(String::as_str)
                .filter(|p| reachable(org, policy, service, Some(p)).0 < total)
                .collect();
            if !stuck.is_empty() {
                stuck_on.entry(stuck).or_default().push(service);
            }
        }
        for (people, services) in stuck_on {
            ctx.warn(format!(
                "policy {}: a change to {} requested by {} can never be approved: the requester's own approval never counts and one person fills one seat, so {needs} cannot be found among the others",
                policy.name,
                services.join(" or "),
                people.join(" or "),
            ));
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broader_earlier_policy_shadows_a_narrower_later_one() {
        let any = PolicyMatch::default();
        let normal = PolicyMatch {
            types: vec![ChangeType::Normal],
            ..PolicyMatch::default()
        };
        let normal_high = PolicyMatch {
            risks: vec![Risk::High],
            ..normal.clone()
        };
        assert!(shadows(&any, &normal));
        assert!(shadows(&normal, &normal_high));
        assert!(!shadows(&normal_high, &normal));
        assert!(!shadows(&normal, &any));
    }
}
