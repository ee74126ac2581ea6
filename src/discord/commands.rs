//! The slash commands, derived from the one chat command definition (`chat::spec`): `change`,
//! `release` and `freeze` with a subcommand per command, `calendar` and `help` as they are.
//! Services and environments are choices from config; change ids autocomplete open changes.

use std::collections::BTreeSet;

use serenity::all::{CommandOptionType, CreateCommand, CreateCommandOption};

use crate::chat::spec::{ArgDef, ArgKind, CommandDef, commands};
use crate::domain::organisation::Organisation;

/// Discord's limit on choices per option.
const CHOICES_MAX: usize = 25;

fn option(arg: &ArgDef, org: &Organisation) -> CreateCommandOption {
    let kind = match arg.kind {
        ArgKind::Switch => CommandOptionType::Boolean,
        ArgKind::Integer { .. } => CommandOptionType::Integer,
        _ => CommandOptionType::String,
    };
    let mut o = CreateCommandOption::new(kind, arg.name, arg.help).required(arg.required);
    match arg.kind {
        ArgKind::ChangeId => o = o.set_autocomplete(true),
        ArgKind::Integer { min, max } => o = o.min_int_value(min as u64).max_int_value(max as u64),
        ArgKind::Choice(words) => {
            for w in words.iter().take(CHOICES_MAX) {
                o = o.add_string_choice(*w, *w);
            }
        }
        ArgKind::Service => {
            for s in org.services.keys().take(CHOICES_MAX) {
                o = o.add_string_choice(s, s);
            }
        }
        ArgKind::Environment => {
            let envs: BTreeSet<&String> = org
                .services
                .values()
                .flat_map(|s| s.environments.iter())
                .collect();
            for e in envs.into_iter().take(CHOICES_MAX) {
                o = o.add_string_choice(e, e);
            }
        }
        ArgKind::Word | ArgKind::Text | ArgKind::Time | ArgKind::Switch => {}
    }
    o
}

/// The options of a command, required ones first (Discord's rule), otherwise in definition
/// order.
fn options(def: &CommandDef, org: &Organisation) -> Vec<CreateCommandOption> {
    let mut args: Vec<&ArgDef> = def.args.iter().collect();
    args.sort_by_key(|a| !a.required);
    args.into_iter().map(|a| option(a, org)).collect()
}

/// What each top-level slash command says about itself.
fn group_description(word: &str) -> &'static str {
    match word {
        "change" => "Open, inspect, approve and schedule changes",
        "release" => "Start a release now or see how it went",
        "freeze" => "Start, end and list change freezes",
        _ => "changebot",
    }
}

/// Every slash command, as registered in bulk.
pub fn definitions(org: &Organisation) -> Vec<CreateCommand> {
    let mut out: Vec<CreateCommand> = Vec::new();
    let mut groups: Vec<(&'static str, Vec<CreateCommandOption>)> = Vec::new();
    for def in commands() {
        match def.words {
            [single] => {
                let mut c = CreateCommand::new(*single).description(def.summary);
                for o in options(def, org) {
                    c = c.add_option(o);
                }
                out.push(c);
            }
            [group, sub, ..] => {
                let mut s =
                    CreateCommandOption::new(CommandOptionType::SubCommand, *sub, def.summary);
                for o in options(def, org) {
                    s = s.add_sub_option(o);
                }
                match groups.iter_mut().find(|(g, _)| g == group) {
                    Some((_, subs)) => subs.push(s),
                    None => groups.push((*group, vec![s])),
                }
            }
            [] => {}
        }
    }
    for (group, subs) in groups {
        let mut c = CreateCommand::new(group).description(group_description(group));
        for s in subs {
            c = c.add_option(s);
        }
        out.push(c);
    }
    out
}

/// The definition for a slash command's name and subcommand.
pub fn find(name: &str, sub: Option<&str>) -> Option<&'static CommandDef> {
    commands().iter().find(|d| match (d.words, sub) {
        ([single], None) => *single == name,
        ([group, s, ..], Some(sub)) => *group == name && *s == sub,
        _ => false,
    })
}
