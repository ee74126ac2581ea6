//! `[[person]]` and `[[group]]`: who is who, and which groups exist.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::organisation::Person;
use crate::domain::policy::OWNERS;

use super::raw::{RawGroup, RawPerson, Text};
use super::read::{Declared, Section};
use super::report::{Ctx, is_word, line_of};

/// People and groups as validated, plus what later checks need to know about groups.
#[derive(Debug, Default)]
pub struct People {
    pub people: BTreeMap<String, Person>,
    pub descriptions: BTreeMap<String, String>,
    /// Group → number of members (counting entries that could not be read but name groups).
    pub members: BTreeMap<String, usize>,
    /// Names of `[[group]]` entries that could not be read.
    pub broken_groups: BTreeSet<String>,
    /// Every person name written, valid or not.
    pub declared: Declared,
    /// False when some `[[person]]` or `[[group]]` could not be read at all: group checks stay
    /// quiet.
    pub complete: bool,
}

impl People {
    /// A group exists when someone is in it or it has a `[[group]]` entry.
    pub fn group_exists(&self, group: &str) -> bool {
        self.members.contains_key(group)
            || self.descriptions.contains_key(group)
            || self.broken_groups.contains(group)
    }

    pub fn member_count(&self, group: &str) -> usize {
        self.members.get(group).copied().unwrap_or(0)
    }

    /// Reports `group` (written at `at`, by `owner`, e.g. "service payments-api: owners") when
    /// it exists nowhere. Returns whether it exists (or might, when people are incomplete).
    pub fn check_group(&self, ctx: &mut Ctx<'_>, at: &Text, owner: &str) -> bool {
        let group = at.get_ref();
        if self.group_exists(group) || !self.complete {
            return true;
        }
        ctx.error_at(
            at,
            format!(
                "{owner}: group `{group}` is dangling: no [[person]] lists it in `groups` and \
                 there is no [[group]] entry for it"
            ),
        );
        false
    }
}

pub fn build(
    ctx: &mut Ctx<'_>,
    persons: &Section<RawPerson>,
    groups: &Section<RawGroup>,
) -> People {
    let mut out = People {
        complete: persons.complete() && groups.complete(),
        declared: Declared::of(persons, |p| p.name.get_ref()),
        broken_groups: groups.broken_names().map(str::to_string).collect(),
        ..People::default()
    };
    for b in &persons.broken {
        let listed: BTreeSet<&String> = b.list("groups").iter().collect();
        for g in listed {
            *out.members.entry(g.clone()).or_default() += 1;
        }
    }
    // First line each name/identity was seen on, to say where the clash is.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut logins: BTreeMap<String, String> = BTreeMap::new();
    let mut discord_ids: BTreeMap<String, String> = BTreeMap::new();

    for raw in &persons.entries {
        let name = raw.name.get_ref();
        let keep = check_name(ctx, "person", &raw.name, &mut names);
        let label = format!("person {name}");
        let github = raw.github.as_ref().and_then(|g| {
            let login = g.get_ref().trim_start_matches('@');
            if !is_word(login) {
                ctx.error_at(
                    g,
                    format!("{label}: `{}` is not a GitHub login", g.get_ref()),
                );
                return None;
            }
            if let Some(other) = logins.insert(login.to_ascii_lowercase(), name.clone()) {
                ctx.error_at(
                    g,
                    format!("{label}: GitHub login `{login}` is already mapped to {other}"),
                );
            }
            Some(login.to_string())
        });
        let discord = raw.discord.as_ref().and_then(|d| {
            let id = d.get_ref();
            if !is_snowflake(id) {
                ctx.error_at(
                    d,
                    format!("{label}: discord `{id}` is not a Discord user id (digits only)"),
                );
                return None;
            }
            if let Some(other) = discord_ids.insert(id.clone(), name.clone()) {
                ctx.error_at(
                    d,
                    format!("{label}: Discord id {id} is already mapped to {other}"),
                );
            }
            Some(id.clone())
        });
        let mut member_of: Vec<String> = Vec::new();
        for g in &raw.groups {
            if check_group_name(ctx, &label, g) && !member_of.contains(g.get_ref()) {
                member_of.push(g.get_ref().clone());
            }
        }
        if !keep {
            continue;
        }
        for g in &member_of {
            *out.members.entry(g.clone()).or_default() += 1;
        }
        out.people.insert(
            name.clone(),
            Person {
                name: name.clone(),
                github,
                discord,
                groups: member_of,
            },
        );
    }

    let mut group_names: BTreeMap<String, usize> = BTreeMap::new();
    for raw in &groups.entries {
        if check_name(ctx, "group", &raw.name, &mut group_names)
            && check_group_name(ctx, "[[group]]", &raw.name)
        {
            out.descriptions
                .insert(raw.name.get_ref().clone(), raw.description.clone());
        }
    }
    out
}

/// Checks an entry's `name`: a single word, not used before by the same kind of entry.
/// Returns whether the entry should be kept.
pub fn check_name(
    ctx: &mut Ctx<'_>,
    kind: &str,
    name: &Text,
    seen: &mut BTreeMap<String, usize>,
) -> bool {
    let n = name.get_ref();
    if !is_word(n) {
        ctx.error_at(
            name,
            format!("{kind} name `{n}` must be a single word without spaces"),
        );
        return false;
    }
    let line = line_of(ctx.text, name.span().start);
    if let Some(first) = seen.get(n) {
        ctx.error_at(
            name,
            format!("{kind} {n} is defined twice (first on line {first})"),
        );
        return false;
    }
    seen.insert(n.clone(), line);
    true
}

fn check_group_name(ctx: &mut Ctx<'_>, label: &str, g: &Text) -> bool {
    let group = g.get_ref();
    if !is_word(group) {
        ctx.error_at(
            g,
            format!("{label}: group name `{group}` must be a single word"),
        );
        false
    } else if group == OWNERS {
        ctx.error_at(
            g,
            format!(
                "{label}: `{OWNERS}` is reserved (in a policy it means the service's owner group); \
                 name the group after the service instead"
            ),
        );
        false
    } else {
        true
    }
}

/// Discord ids ("snowflakes") are decimal numbers.
pub fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}
